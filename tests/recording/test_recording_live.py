"""Recording against a running daemon: REST, WebSocket, settings, downloads, crashes, full disks, RTSP playback."""

import asyncio
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time

import av
import pytest
import requests
import websockets

from rotordream.recording.mp4 import trim_torn_tail
from tests.conftest import require_tool
from tests.support.live import StateWatcher, wait_frames
from tests.web.test_websocket_live import recv_until, run

FPS = 30


def admin(d):
    return ("admin", d.admin_password)


def api(d, method, path, auth=True, **kw):
    r = requests.request(method, d.http + path, auth=admin(d) if auth else None, timeout=30, **kw)
    return r


def recordings(d, **params):
    r = api(d, "GET", "/api/recordings", params=params)
    assert r.status_code == 200, r.text
    return r.json()["data"]["recordings"]


def finished(d, name):
    """Stop (which answers once the files are closed) and return ``name``'s finished entries."""
    r = api(d, "POST", "/api/recording/stop")
    assert r.status_code == 200 and r.json()["data"]["recording"] is False
    return [e for e in recordings(d) if e["name"] == name and not e["recording"]]


def record(d, seconds, name):
    """Record ``seconds`` through REST (the recorder's own duration limit); the entry."""
    with StateWatcher(d) as watch:
        r = api(d, "POST", "/api/recording/start", json={"name": name, "duration": seconds})
        assert r.status_code == 200, r.text
        status = r.json()["data"]
        assert status["recording"] is True and status["name"] == name
        watch.wait("record", True)
        watch.wait("record", False, timeout=seconds + 30)
    return finished(d, name)[0]


def download(d, entry, path):
    r = api(d, "GET", "/api/recordings/" + entry["id"])
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "video/mp4"
    assert r.headers["Accept-Ranges"] == "bytes"
    assert int(r.headers["Content-Length"]) == len(r.content) == entry["size"]
    with open(path, "wb") as f:
        f.write(r.content)
    return path


def frame_times(path_or_url, options=None, seek=None):
    """Decoded frame times (seconds) of a file or RTSP URL."""
    with av.open(path_or_url, options=options or {}) as c:
        if seek is not None:
            c.seek(int(seek * av.time_base))
        # RTSP clients may hand out the first frames before they know their time.
        return [float(f.time) for f in c.decode(video=0) if f.time is not None]


def assert_continuous(times):
    steps = [b - a for a, b in zip(times, times[1:])]
    assert steps and min(steps) > 0, "timestamps must increase"
    # Timestamps are capture times: a loaded machine delays a capture by up to ~20 ms (a
    # step of 1.6/FPS, seen in CI, the next step short by as much); a lost frame is 2/FPS.
    assert max(steps) < 1.8 / FPS, "a gap of %.3f s" % max(steps)


@pytest.fixture(scope="module")
def ten_seconds(daemon, tmp_path_factory):
    """One 10 s recording made through REST on the shared daemon, downloaded."""
    entry = record(daemon, 10, "ten")
    path = download(daemon, entry, str(tmp_path_factory.mktemp("dl") / "ten.mp4"))
    return entry, path


def test_a_10s_recording_plays_in_pyav_and_ffprobe_without_gaps(daemon, ten_seconds):
    entry, path = ten_seconds
    # It starts at the cached keyframe before the command: up to one GOP (1 s) more.
    assert 10.0 <= entry["duration"] <= 11.5
    assert entry["resolution"] == "1280x720"
    times = frame_times(path)
    assert times[0] == 0.0
    assert len(times) == entry["frames"]
    assert_continuous(times)
    probe = subprocess.run([require_tool("ffprobe"), "-v", "error", "-show_entries",
                            "format=duration:stream=codec_name,width,height", "-of", "json",
                            path], capture_output=True, text=True, timeout=30)
    info = json.loads(probe.stdout)
    assert info["streams"][0]["codec_name"] == "h264"
    assert (info["streams"][0]["width"], info["streams"][0]["height"]) == (1280, 720)
    assert abs(float(info["format"]["duration"]) - entry["duration"]) < 0.05


def test_the_index_lists_times_and_filters(daemon, ten_seconds):
    entry, _ = ten_seconds
    [listed] = [e for e in recordings(daemon) if e["id"] == entry["id"]]
    assert listed["start"].endswith("Z") and listed["end"] > listed["start"]
    assert recordings(daemon, since="2000-01-01T00:00:00Z", limit=1000)
    assert not [e for e in recordings(daemon, until="2000-01-01") if e["id"] == entry["id"]]
    r = api(daemon, "GET", "/api/recordings", params={"limit": "0"})
    assert r.status_code == 400 and r.json()["code"] == "BAD_REQUEST"


def test_range_requests_return_exactly_the_bytes_asked(daemon, ten_seconds):
    entry, path = ten_seconds
    with open(path, "rb") as f:
        whole = f.read()
    url = daemon.http + "/api/recordings/" + entry["id"]
    r = requests.get(url, headers={"Range": "bytes=1000-1999"}, auth=admin(daemon))
    assert r.status_code == 206
    assert r.content == whole[1000:2000]
    assert r.headers["Content-Range"] == "bytes 1000-1999/%d" % len(whole)
    assert r.headers["Content-Length"] == "1000"
    r = requests.get(url, headers={"Range": "bytes=-500"}, auth=admin(daemon))
    assert r.status_code == 206 and r.content == whole[-500:]
    r = requests.get(url, headers={"Range": "bytes=%d-" % (len(whole) - 10)}, auth=admin(daemon))
    assert r.status_code == 206 and r.content == whole[-10:]
    r = requests.get(url, headers={"Range": "bytes=%d-" % (len(whole) + 10)}, auth=admin(daemon))
    assert r.status_code == 416


@pytest.mark.parametrize("raw", ["../state.json", "..%2Fstate.json", "%2E%2E%2Fusers.json",
                                 "%2Fetc%2Fpasswd", "..%5Cusers.json", "index", "x.mp4",
                                 "ten%00"])
def test_ids_outside_the_recordings_directory_are_404(daemon, raw):
    conn = http.client.HTTPConnection("127.0.0.1", daemon.http_port, timeout=10)
    conn.putrequest("GET", "/api/recordings/" + raw, skip_accept_encoding=True)
    import base64
    conn.putheader("Authorization", "Basic " + base64.b64encode(
        ("admin:" + daemon.admin_password).encode()).decode())
    conn.endheaders()
    resp = conn.getresponse()
    body = resp.read()
    assert resp.status == 404, body
    assert json.loads(body)["code"] == "NOT_FOUND"


def test_viewers_list_and_download_but_do_not_control_or_delete(daemon, ten_seconds):
    entry, _ = ten_seconds
    name = "viewer%d" % (int(time.time() * 1000) % 100000)
    r = api(daemon, "POST", "/api/users", json={"username": name, "password": "viewer-pass-1",
                                                 "role": "viewer"})
    assert r.status_code == 201, r.text
    try:
        viewer = (name, "viewer-pass-1")
        assert requests.get(daemon.http + "/api/recordings", auth=viewer).status_code == 200
        r = requests.get(daemon.http + "/api/recordings/" + entry["id"],
                         headers={"Range": "bytes=0-9"}, auth=viewer)
        assert r.status_code == 206
        for method, path in (("POST", "/api/recording/start"), ("POST", "/api/recording/stop"),
                             ("DELETE", "/api/recordings/" + entry["id"])):
            r = requests.request(method, daemon.http + path, auth=viewer)
            assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN"
        r = requests.post(daemon.http + "/api/recording/start")
        assert r.status_code == 401
    finally:
        api(daemon, "DELETE", "/api/users/" + name)


def test_websocket_record_key_starts_and_stops_and_everyone_hears_it(daemon):
    before = {e["id"] for e in recordings(daemon)}

    def frames(n):
        return asyncio.get_running_loop().run_in_executor(None, wait_frames, daemon, n)

    async def go():
        r = requests.post(daemon.http + "/api/login",
                          json={"username": "admin", "password": daemon.admin_password})
        token = r.json()["token"]
        async with websockets.connect(daemon.ws + "?token=" + token) as writer, \
                websockets.connect(daemon.ws) as watcher:
            await writer.send(json.dumps({"record": True}))
            await recv_until(writer, lambda m: m.get("record") is True)
            await recv_until(watcher, lambda m: m.get("record") is True)
            await frames(60)
            await writer.send(json.dumps({"record": "pause"}))
            await recv_until(watcher, lambda m: m.get("record") == "paused")
            await writer.send(json.dumps({"record": "pause_release"}))
            await recv_until(watcher, lambda m: m.get("record") is True)
            await frames(30)
            await writer.send(json.dumps({"record": "off"}))
            await recv_until(watcher, lambda m: m.get("record") is False)
    run(go())
    api(daemon, "POST", "/api/recording/stop")   # answers once the file is closed
    new = [e for e in recordings(daemon) if e["id"] not in before]
    # Decoding 90 live frames took at least 2 s of the camera's clock (30 fps, a 1 s GOP
    # replayed first), all of it recorded but the pause.
    assert len(new) == 1 and not new[0]["recording"] and new[0]["duration"] >= 2.0


def test_the_record_setting_through_rest(daemon):
    r = api(daemon, "POST", "/api/settings", json={"record": "on"})
    assert r.status_code == 200, r.text
    status = api(daemon, "GET", "/api/recording/status").json()["data"]
    assert status["recording"] is True and status["free"] > 0
    assert api(daemon, "POST", "/api/recording/start").status_code == 409
    assert api(daemon, "POST", "/api/settings", json={"record": "pause"}).status_code == 200
    assert api(daemon, "GET", "/api/recording/status").json()["data"]["state"] == "paused"
    assert api(daemon, "POST", "/api/settings", json={"record": False}).status_code == 200
    status = api(daemon, "GET", "/api/recording/status").json()["data"]
    assert status["recording"] is False
    r = api(daemon, "POST", "/api/settings", json={"record": "sometimes"})
    assert r.status_code == 400


def test_start_rejects_bad_bodies(daemon):
    for body in ('{"duration": -1}', '{"duration": "long"}', '{"name": 5}', '[1]',
                 '{"color": "red"}', "{nope"):
        r = api(daemon, "POST", "/api/recording/start", data=body,
                headers={"Content-Type": "application/json"})
        assert r.status_code == 400, body
        assert r.json()["status"] == "error"
    assert api(daemon, "GET", "/api/recording/status").json()["data"]["recording"] is False


def test_duration_limit_and_delete(daemon):
    with StateWatcher(daemon) as watch:
        r = api(daemon, "POST", "/api/recording/start", json={"name": "short", "duration": 1.5})
        assert r.status_code == 200
        watch.wait("record", True)
        watch.wait("record", False, timeout=20)   # stopped by itself
    [entry] = finished(daemon, "short")
    assert 1.4 <= entry["duration"] <= 3.0
    r = api(daemon, "DELETE", "/api/recordings/" + entry["id"])
    assert r.status_code == 200 and r.json()["data"]["deleted"] == entry["id"]
    assert api(daemon, "GET", "/api/recordings/" + entry["id"]).status_code == 404
    assert api(daemon, "DELETE", "/api/recordings/" + entry["id"]).status_code == 404


def test_a_recording_being_written_is_listed_downloaded_and_played(daemon, tmp_path):
    r = api(daemon, "POST", "/api/recording/start", json={"name": "live"})
    assert r.status_code == 200
    try:
        wait_frames(daemon, 150)                  # 5 s of live frames, at least 4 s after start
        [entry] = [e for e in recordings(daemon) if e["name"] == "live"]
        assert entry["recording"] is True and entry["size"] > 0 and entry["duration"] >= 3
        r = api(daemon, "GET", "/api/recordings/" + entry["id"])
        assert r.status_code == 200 and len(r.content) > 0
        path = tmp_path / "live.mp4"
        path.write_bytes(r.content)
        # Complete fragments only are guaranteed; a torn tail is the writer's current one.
        trim_torn_tail(str(path))
        assert len(frame_times(str(path))) >= 60
        times = frame_times(daemon.rtsp("recording/" + entry["id"]), {"rtsp_transport": "tcp"})
        assert len(times) >= 60
    finally:
        api(daemon, "POST", "/api/recording/stop")


# -- RTSP playback -------------------------------------------------------------

def test_rtsp_playback_from_the_start_in_pyav(daemon, ten_seconds):
    entry, _ = ten_seconds
    url = daemon.rtsp("recording/" + entry["id"])
    times = frame_times(url, {"rtsp_transport": "tcp"})
    assert times[0] < 0.1
    assert len(times) >= entry["frames"] - 2
    assert times[-1] == pytest.approx(entry["duration"] - 1 / FPS, abs=0.1)


def test_rtsp_playback_seeks_to_npt_5(daemon, ten_seconds):
    entry, _ = ten_seconds
    times = frame_times(daemon.rtsp("recording/" + entry["id"]), {"rtsp_transport": "udp"},
                        seek=5.0)
    # From the keyframe at or before 5 s (one GOP is 1 s here).
    assert 3.9 <= times[0] <= 5.1
    assert times[-1] == pytest.approx(entry["duration"] - 1 / FPS, abs=0.1)
    assert len(times) >= (entry["duration"] - times[0]) * FPS - 3


def test_rtsp_playback_of_the_latest_in_ffprobe_and_gstreamer(daemon, ten_seconds):
    latest = recordings(daemon, limit=1)[0]
    out = subprocess.run([require_tool("ffprobe"), "-v", "error", "-rtsp_transport", "tcp",
                          "-show_entries", "format=duration:stream=codec_name,width,height",
                          "-of", "json", daemon.rtsp("recording")],
                         capture_output=True, text=True, timeout=60)
    info = json.loads(out.stdout)
    assert info["streams"][0]["codec_name"] == "h264"
    assert float(info["format"]["duration"]) == pytest.approx(latest["duration"], abs=0.01)
    entry, _ = ten_seconds
    gst = subprocess.run([require_tool("gst-launch-1.0"), "rtspsrc",
                          "location=" + daemon.rtsp("recording/" + entry["id"]),
                          "protocols=tcp", "!", "rtph264depay", "!", "h264parse", "!",
                          "avdec_h264", "!", "fakesink"],
                         capture_output=True, text=True, timeout=60)
    assert gst.returncode == 0, gst.stdout + gst.stderr
    assert "Got EOS" in gst.stdout  # the end of the recording ends the stream cleanly


class RawRtsp:
    """A minimal RTSP/TCP client for what players do not expose (PAUSE, headers)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.cseq = 0

    def request(self, method, url, **headers):
        self.cseq += 1
        lines = ["%s %s RTSP/1.0" % (method, url), "CSeq: %d" % self.cseq]
        lines += ["%s: %s" % (k.replace("_", "-"), v) for k, v in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while True:
            self._skip_interleaved()
            if b"\r\n\r\n" in self.buf and self.buf.startswith(b"RTSP/"):
                break
            self.buf += self.sock.recv(65536)
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        m = re.search(rb"Content-Length: (\d+)", head)
        n = int(m.group(1)) if m else 0
        while len(self.buf) < n:
            self.buf += self.sock.recv(65536)
        body, self.buf = self.buf[:n], self.buf[n:]
        return head.decode(), body.decode()

    def _skip_interleaved(self):
        while self.buf.startswith(b"$"):
            if len(self.buf) < 4:
                return
            size = int.from_bytes(self.buf[2:4], "big")
            if len(self.buf) < 4 + size:
                self.buf += self.sock.recv(65536)
                continue
            self.buf = self.buf[4 + size:]

    def rtp_bytes(self, seconds):
        """Interleaved bytes received in ``seconds``."""
        self.sock.settimeout(0.2)
        n, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                n += len(self.sock.recv(65536))
            except socket.timeout:
                pass
        self.sock.settimeout(10)
        return n


def test_rtsp_describe_play_range_pause_resume_and_unknown_ids(daemon, ten_seconds):
    entry, _ = ten_seconds
    url = daemon.rtsp("recording/" + entry["id"])
    c = RawRtsp(daemon.rtsp_port)
    head, sdp = c.request("DESCRIBE", url)
    assert " 200 " in head.splitlines()[0]
    assert "a=range:npt=0-%.3f" % entry["duration"] in sdp
    head, _ = c.request("SETUP", url + "/trackID=0", Transport="RTP/AVP/TCP;unicast;interleaved=0-1")
    session = re.search(r"Session: ([0-9a-f]+)", head).group(1)
    head, _ = c.request("PLAY", url, Session=session, Range="npt=3.5-")
    start = float(re.search(r"Range: npt=([0-9.]+)-%.3f" % entry["duration"], head).group(1))
    assert 2.4 <= start <= 3.5  # the keyframe at or before 3.5 s (a GOP is 1 s)
    assert "rtptime=" in head
    assert c.rtp_bytes(1.0) > 10000
    head, _ = c.request("PAUSE", url, Session=session)
    assert " 200 " in head.splitlines()[0]
    c.rtp_bytes(0.3)                      # what was in flight
    assert c.rtp_bytes(1.0) < 200         # at most an RTCP report while paused
    head, _ = c.request("PLAY", url, Session=session)
    assert " 200 " in head.splitlines()[0]
    assert c.rtp_bytes(1.0) > 10000
    head, _ = c.request("PLAY", url, Session=session, Range="npt=abc-")
    assert " 457 " in head.splitlines()[0]
    c.request("TEARDOWN", url, Session=session)
    head, _ = c.request("DESCRIBE", daemon.rtsp("recording/no-such-recording"))
    assert " 404 " in head.splitlines()[0]
    head, _ = c.request("DESCRIBE", daemon.rtsp("recording/..%2Fstate.json"))
    assert " 404 " in head.splitlines()[0]


# -- segments, crashes and full disks on daemons of their own -------------------------------

SMALL = {"resolution": "640x360", "fps": 30}


def test_segments_follow_each_other_without_a_lost_frame(fresh_daemon, tmp_path):
    conf = tmp_path / "seg.toml"
    conf.write_text("[recording]\nsegment_seconds = 2\n")
    d = fresh_daemon(extra=["--config", str(conf)], settings=SMALL)
    record(d, 7, "seg")
    parts = sorted((e for e in recordings(d) if e["name"] == "seg"), key=lambda e: e["segment"])
    assert len(parts) >= 3 and len({e["session"] for e in parts}) == 1
    for a, b in zip(parts, parts[1:]):
        start_a = time.mktime(time.strptime(a["start"][:19], "%Y-%m-%dT%H:%M:%S")) + \
            int(a["start"][20:23]) / 1000
        start_b = time.mktime(time.strptime(b["start"][:19], "%Y-%m-%dT%H:%M:%S")) + \
            int(b["start"][20:23]) / 1000
        # The next file starts where the last one ended: a lost frame would leave 1/FPS.
        assert abs(start_b - (start_a + a["duration"])) < 0.02
    for e in parts:
        times = frame_times(download(d, e, str(tmp_path / (e["id"] + ".mp4"))))
        assert times[0] == 0.0 and len(times) == e["frames"]
        assert_continuous(times)


def test_kill_9_during_recording_leaves_a_playable_indexed_file(fresh_daemon, tmp_path):
    d = fresh_daemon(settings=SMALL)
    assert api(d, "POST", "/api/recording/start", json={"name": "crash"}).status_code == 200
    wait_frames(d, 120)                          # 4 s of the camera's clock: 3 fragments
    d.stop(sig=signal.SIGKILL)
    d.start()
    [entry] = [e for e in recordings(d) if e["name"] == "crash"]
    assert entry["recovered"] is True and entry["recording"] is False
    assert entry["duration"] >= 2.0          # everything up to the last 1 s fragment
    times = frame_times(download(d, entry, str(tmp_path / "crash.mp4")))
    assert len(times) == entry["frames"] >= 60
    assert_continuous(times)
    assert api(d, "GET", "/api/recording/status").json()["data"]["recording"] is False


def test_a_full_disk_stops_recording_cleanly_and_keeps_the_data(fresh_daemon, tmp_path):
    unshare = require_tool("unshare", "util-linux")
    recdir = tmp_path / "small-disk"
    recdir.mkdir()
    conf = tmp_path / "disk.toml"
    conf.write_text('[recording]\ndirectory = "%s"\nmin_free_mb = 0\n' % recdir)
    # A 4 MB tmpfs seen only by the daemon: its own mount namespace (user namespace when not root).
    ns = ["-m"] if os.geteuid() == 0 else ["-rm"]
    wrapper = [unshare, *ns, "--propagation", "private", "sh", "-c",
               'mount -t tmpfs -o size=4m tmpfs "$0" && exec "$@"', str(recdir)]
    from tests.conftest import Daemon, free_port, seed_state
    state = tmp_path / "state"
    state.mkdir()
    seed_state(str(state), {"resolution": "1280x720", "fps": 30, "stream1-bitrate": 8000})
    d = Daemon(str(state), free_port(), free_port(), ["--config", str(conf)])
    d.command = (lambda base=d.command: wrapper + base())
    d.start()
    try:
        async def watch():
            async with websockets.connect(d.ws) as ws:
                r = await asyncio.get_running_loop().run_in_executor(
                    None, lambda: api(d, "POST", "/api/recording/start", json={"name": "full"}))
                assert r.status_code == 200, r.text
                seen = []
                await recv_until(ws, lambda m: seen.append(m) or
                                 m.get("code") == "INSUFFICIENT_STORAGE", timeout=60)
                return seen
        seen = run(watch())
        error = seen[-1]
        assert error["key"] == "record" and "disk full" in error["error"]
        assert {"record": True} in seen and {"record": False} in seen
        status = api(d, "GET", "/api/recording/status").json()["data"]
        assert status["recording"] is False
        [entry] = [e for e in recordings(d) if e["name"] == "full"]
        assert entry["recording"] is False and entry["size"] > 1_000_000
        times = frame_times(download(d, entry, str(tmp_path / "full.mp4")))
        assert len(times) >= 30
        assert_continuous(times)
        # The daemon goes on serving everyone else.
        assert api(d, "GET", "/api/snapshot").status_code == 200
    finally:
        d.stop()
