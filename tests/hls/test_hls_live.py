"""HLS from a running daemon: played by FFmpeg (ffprobe, PyAV), blocking reloads and preload
hints timed, headers for caches, viewer auth (token, Bearer), the idle timeout."""

import re
import subprocess
import time

import pytest
import requests

from tests.conftest import make_daemon, require_module, require_tool

SETTINGS = {"resolution": "640x360", "fps": 30}


@pytest.fixture(scope="module")
def camera(tmp_path_factory):
    """A daemon of this module's own: 640x360, anonymous viewers allowed (the default)."""
    d = make_daemon(tmp_path_factory, settings=SETTINGS)
    yield d
    d.stop()


def get(camera, path, **kw):
    return requests.get(camera.http + path, timeout=30, **kw)


def tags(text):
    """(msn of the last segment listed, parts it has, its complete flag) of an LL playlist."""
    last = max(int(m) for m in re.findall(r"part-([0-9]+)-[0-9]+\.m4s", text))
    parts = len(re.findall(r"#EXT-X-PART:.*part-%d-" % last, text))
    return last, parts, ("seg-%d.m4s" % last) in text


def test_ffprobe_and_pyav_play_both_playlists(camera):
    ffprobe = require_tool("ffprobe")
    for name in ("index.m3u8", "classic.m3u8"):
        out = subprocess.run([ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries",
                              "stream=codec_name,width,height", "-of", "csv=p=0",
                              camera.http + "/hls/stream1/" + name],
                             capture_output=True, text=True, timeout=60)
        lines = [l for l in out.stdout.splitlines() if l.strip()]
        assert lines and lines[0] == "h264,640,360", (out.stdout, out.stderr)
    av = require_module("av")
    with av.open(camera.http + "/hls/stream1/index.m3u8", timeout=15) as c:
        frames = []
        for frame in c.decode(video=0):
            frames.append(frame)
            if len(frames) == 45:
                break
    assert (frames[0].width, frames[0].height) == (640, 360)
    assert float(frames[-1].pts - frames[0].pts) * frames[0].time_base == pytest.approx(
        44 / 30, abs=0.2)


def assert_part_durations(text, target):
    """RFC 8216bis 4.4.4.9: no part longer than PART-TARGET; none shorter than 85 % of it
    but an independent one or the last of its segment."""
    segment = []
    for line in text.splitlines():
        m = re.match(r"#EXT-X-PART:DURATION=([0-9.]+),.*?(,INDEPENDENT=YES)?$", line)
        if m:
            segment.append((float(m.group(1)), bool(m.group(2))))
        elif line.startswith("#EXTINF"):
            for i, (duration, independent) in enumerate(segment):
                assert duration <= target, text
                if not independent and i < len(segment) - 1:
                    assert duration >= 0.85 * target, text
            segment = []


def test_low_latency_playlist_blocking_reload_and_preload_hint(camera):
    r = get(camera, "/hls/stream1/index.m3u8")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert r.headers["cache-control"] == "public, max-age=1"
    assert r.headers["access-control-allow-origin"] == "*"
    text = r.text
    assert "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.660" in text
    assert "#EXT-X-PART-INF:PART-TARGET=0.220" in text
    assert_part_durations(text, 0.220)
    hint = re.search(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="(part-([0-9]+)-([0-9]+)\.m4s)"', text)
    assert hint, text
    # The hinted part is answered as soon as it exists: within about one part's time.
    start = time.monotonic()
    r = get(camera, "/hls/stream1/" + hint.group(1))
    waited = time.monotonic() - start
    if r.status_code == 404:   # the hinted part began a new segment instead: ask the playlist
        assert waited < 1.0
    else:
        assert r.status_code == 200 and r.content[4:8] == b"moof" and waited < 0.6
        assert r.headers["cache-control"] == "public, max-age=86400, immutable"
        assert r.headers["content-type"] == "video/mp4"
    # Blocking reload: the playlist that has the part after the current last one.
    last, parts, complete = tags(get(camera, "/hls/stream1/index.m3u8").text)
    msn, part = (last + 1, 0) if complete else (last, parts)
    start = time.monotonic()
    r = get(camera, "/hls/stream1/index.m3u8", params={"_HLS_msn": msn, "_HLS_part": part})
    waited = time.monotonic() - start
    assert r.status_code == 200 and waited < 0.6
    assert r.headers["cache-control"] == "public, max-age=3"
    now_last, now_parts, _ = tags(r.text)
    assert now_last > msn or (now_last == msn and now_parts > part)
    r = get(camera, "/hls/stream1/index.m3u8", params={"_HLS_msn": msn + 50})
    assert r.status_code == 400
    r = get(camera, "/hls/stream1/index.m3u8", params={"_HLS_part": 1})
    assert r.status_code == 400
    init = re.search(r'#EXT-X-MAP:URI="(init-[0-9]+\.mp4)"', text).group(1)
    r = get(camera, "/hls/stream1/" + init)
    assert r.status_code == 200 and r.content[4:8] == b"ftyp"
    for bad in ("seg-999999.m4s", "../index.m3u8", "index.m3u8/x", "nothing.ts"):
        assert get(camera, "/hls/stream1/" + bad).status_code == 404
    assert get(camera, "/hls/stream9/index.m3u8").status_code == 404


def test_latency_of_parts_under_2_s(camera):
    """A client following the live edge part by part gets each part well within 2 s of the
    capture of its first frame (the playlist's PROGRAM-DATE-TIME plus part durations)."""
    latencies = []
    text = get(camera, "/hls/stream1/index.m3u8").text
    for _ in range(10):
        last, parts, complete = tags(text)
        msn, part = (last + 1, 0) if complete else (last, parts)
        text = get(camera, "/hls/stream1/index.m3u8",
                   params={"_HLS_msn": msn, "_HLS_part": part}).text
        r = get(camera, "/hls/stream1/part-%d-%d.m4s" % (msn, part))
        arrived = time.time()
        if r.status_code != 200:
            continue
        block = text[text.index("seg-%d" % (msn - 1)):] if msn else text
        pdt = re.findall(r"#EXT-X-PROGRAM-DATE-TIME:(\S+)", block)[-1 if msn else 0]
        start = _epoch(pdt) + sum(float(d) for d in re.findall(
            r"#EXT-X-PART:DURATION=([0-9.]+),URI=\"part-%d-(?:%s)\.m4s\"" % (
                msn, "|".join(str(i) for i in range(part)) or "x"), text))
        latencies.append(arrived - start)
    assert len(latencies) >= 8, latencies
    assert max(latencies) < 2.0, latencies


def _epoch(iso):
    import datetime
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_viewer_auth_token_and_bearer_make_answers_private(tmp_path_factory, tmp_path):
    conf = tmp_path / "guest.toml"
    conf.write_text('[auth]\nanonymous = "guest"\n')
    d = make_daemon(tmp_path_factory, extra=["--config", str(conf)], settings=SETTINGS)
    try:
        r = get(d, "/hls/stream2/index.m3u8")
        assert r.status_code == 401
        login = requests.post(d.http + "/api/login", json={"username": "admin",
                                                           "password": d.admin_password},
                              timeout=30).json()["data"]
        r = get(d, "/hls/stream2/index.m3u8", params={"token": login["token"]})
        assert r.status_code == 200 and r.headers["cache-control"] == "private, max-age=1"
        r = get(d, "/hls/stream2/index.m3u8",
                headers={"Authorization": "Bearer " + login["token"]})
        assert r.status_code == 200
        assert get(d, "/hls/stream2/index.m3u8", params={"token": "nope"}).status_code == 401
        session = requests.Session()   # the dashboard's way: the login cookie
        assert session.post(d.http + "/api/login", json={
            "username": "admin", "password": d.admin_password}, timeout=30).status_code == 200
        r = session.get(d.http + "/hls/stream2/classic.m3u8", timeout=30)
        assert r.status_code == 200 and r.headers["cache-control"] == "private, max-age=1"
    finally:
        d.stop()


def test_packaging_stops_when_nobody_asks(tmp_path_factory, tmp_path):
    conf = tmp_path / "idle.toml"
    conf.write_text("[hls]\nidle_timeout = 1\n")
    d = make_daemon(tmp_path_factory, extra=["--config", str(conf)], settings=SETTINGS)

    def active():
        text = get(d, "/metrics").text
        return re.search(r'rotordream_hls_active\{stream="stream1"\} ([0-9.]+)', text).group(1)
    try:
        assert active() == "0.0"
        assert get(d, "/hls/stream1/index.m3u8").status_code == 200
        assert active() == "1.0"
        deadline = time.monotonic() + 10
        while active() != "0.0":
            assert time.monotonic() < deadline, "still packaging after the idle timeout"
            time.sleep(0.2)   # the daemon's own timer: polled with a deadline
        assert "hls_stop" in d.log()
        assert re.search(r'rotordream_hls_requests_total\{stream="stream1"\} 1\.0',
                         get(d, "/metrics").text)
    finally:
        d.stop()
