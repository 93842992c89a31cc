"""RTSP interop with real players against a running daemon: FFmpeg, PyAV, GStreamer, OpenCV."""

import socket
import subprocess
import threading
import time

import av
import pytest

from tests.conftest import require_module, require_tool

SIZES = {"stream1": (1280, 720), "stream2": (640, 360)}


def ffprobe(url, *args):
    exe = require_tool("ffprobe")
    return subprocess.run([exe, "-v", "error", *args, "-show_entries",
                           "stream=codec_name,width,height", "-of", "csv=p=0", url],
                          capture_output=True, text=True, timeout=30)


def gst_play(url, *props, buffers=10, timeout=60):
    exe = require_tool("gst-launch-1.0")
    return subprocess.run([exe, "rtspsrc", "location=" + url, *props, "!",
                           "rtph264depay", "!", "h264parse", "!", "avdec_h264", "!", "fakesink",
                           "num-buffers=%d" % buffers], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("stream", ["stream1", "stream2"])
@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_ffprobe_reports_h264_at_the_configured_size(daemon, stream, transport):
    out = ffprobe(daemon.rtsp(stream), "-rtsp_transport", transport)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "h264,%d,%d" % SIZES[stream]


@pytest.mark.parametrize("stream", ["stream1", "stream2"])
@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_pyav_decodes_frames(daemon, stream, transport):
    with av.open(daemon.rtsp(stream), options={"rtsp_transport": transport},
                 timeout=15) as c:
        frames = []
        for frame in c.decode(video=0):
            frames.append(frame)
            if len(frames) == 20:
                break
    assert {(f.width, f.height) for f in frames} == {SIZES[stream]}


def played(result):
    """True when gst-launch decoded all its buffers: the sink's EOS reached the pipeline.

    (rtspsrc over UDP sometimes reports "Could not send message" while it tears down
    after that EOS: its PAUSE and CLOSE commands race inside the client.)
    """
    return "Got EOS from element" in result.stdout


@pytest.mark.parametrize("protocols", ["tcp", "udp"])
def test_gstreamer_rtspsrc_decodes(daemon, protocols):
    out = gst_play(daemon.rtsp("stream1"), "protocols=" + protocols, buffers=30)
    assert played(out), out.stdout + out.stderr


def test_opencv_reference_example(daemon):
    cv2 = require_module("cv2")
    cap = cv2.VideoCapture(daemon.rtsp("stream2"))
    try:
        frames = []
        while len(frames) < 10:
            ret, frame = cap.read()
            if not ret:
                break
            frames.append(frame)
    finally:
        cap.release()
    assert len(frames) == 10 and frames[0].shape == (360, 640, 3)


def test_query_pins_transport(daemon):
    # FFmpeg reads ?tcp itself, so GStreamer shows the server side: UDP only is refused
    # (461), and a client allowed to fall back retries over TCP.
    refused = gst_play(daemon.rtsp("stream2?tcp"), "protocols=udp")
    assert not played(refused) and "No supported stream" in refused.stdout + refused.stderr
    assert played(gst_play(daemon.rtsp("stream2?tcp"), "protocols=udp+tcp"))
    assert not played(gst_play(daemon.rtsp("stream2?udp"), "protocols=tcp"))


def test_credentials_in_the_url(fresh_daemon, tmp_path):
    conf = tmp_path / "guest.toml"
    conf.write_text('[auth]\nanonymous = "guest"\n')
    d = fresh_daemon(extra=["--config", str(conf)],
                     settings={"resolution": "640x360", "stream2-resolution": "320x180"})
    url = d.rtsp("stream2")
    out = ffprobe(url, "-rtsp_transport", "tcp")
    assert out.returncode != 0 and "401" in out.stderr
    good = url.replace("rtsp://", "rtsp://admin:%s@" % d.admin_password)
    out = ffprobe(good, "-rtsp_transport", "tcp")  # FFmpeg answers the Digest challenge
    assert out.returncode == 0 and out.stdout.strip() == "h264,320,180", out.stderr
    bad = url.replace("rtsp://", "rtsp://admin:wrong-password@")
    out = ffprobe(bad, "-rtsp_transport", "tcp")
    assert out.returncode != 0 and "401" in out.stderr
    run = gst_play(url, "user-id=admin", "user-pw=" + d.admin_password, "protocols=tcp")
    assert played(run), run.stdout + run.stderr


def test_many_quick_connections_do_not_disturb_a_running_player(daemon):
    result = {}

    def play():
        stamps = []
        with av.open(daemon.rtsp("stream2"), options={"rtsp_transport": "tcp"}, timeout=15) as c:
            for frame in c.decode(video=0):
                stamps.append(time.monotonic())
                if len(stamps) == 16:
                    playing.set()
                if len(stamps) == 60:  # 4 s at 15 fps
                    break
        result["stamps"] = stamps

    playing = threading.Event()
    player = threading.Thread(target=play)
    player.start()
    assert playing.wait(30)
    cycles_started = time.monotonic()
    for i in range(200):
        with socket.create_connection(("127.0.0.1", daemon.rtsp_port), timeout=5) as s:
            if i % 2:
                s.sendall(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n")
                assert s.recv(4096).startswith(b"RTSP/1.0 200")
            else:
                s.sendall(b"\x00garbage\r\n\r\n")
    cycles_ended = time.monotonic()
    player.join(60)
    # The cycles ran while the player was receiving.
    assert result["stamps"][-1] > cycles_ended > cycles_started > result["stamps"][15]
    stamps = result["stamps"][15:]  # after the start-up burst of the cached GOP
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    # 15 fps: frames arrive 1/15 s apart; no stall of more than a few frames.
    assert len(stamps) == 45 and max(gaps) < 0.4, max(gaps)


def test_resolution_change_mid_stream_and_both_streams_from_one_client(fresh_daemon):
    import requests
    d = fresh_daemon(settings={"resolution": "640x360", "stream2-resolution": "320x180"})
    sizes = []
    changed = threading.Event()

    def play():
        with av.open(d.rtsp("stream1"), options={"rtsp_transport": "tcp"}, timeout=15) as c:
            for frame in c.decode(video=0):
                sizes.append((frame.width, frame.height))
                if len(sizes) == 10:
                    changed.set()
                if (1280, 720) in sizes and len(sizes) > 10 and sizes[-1] == (1280, 720) \
                        and sizes.count((1280, 720)) >= 15:
                    break

    player = threading.Thread(target=play)
    player.start()
    assert changed.wait(30)
    r = requests.post(d.http + "/api/settings/resolution", json="1280x720",
                      auth=("admin", d.admin_password))
    assert r.status_code == 200
    # Meanwhile one client reads both streams at once (FFmpeg and GStreamer clients do this).
    with av.open(d.rtsp("stream2"), options={"rtsp_transport": "udp"}, timeout=15) as c2:
        small = [f for _, f in zip(range(5), c2.decode(video=0))]
    player.join(60)
    assert {(f.width, f.height) for f in small} == {(320, 180)}
    assert sizes[0] == (640, 360) and sizes[-1] == (1280, 720)
    assert sizes.count((1280, 720)) >= 15  # kept decoding after the new SPS/PPS


def test_a_tcp_client_that_stops_reading_is_skipped_to_keyframes(fresh_daemon, tmp_path):
    import requests
    conf = tmp_path / "q.toml"
    conf.write_text("[rtsp]\nclient_queue = 65536\n")
    d = fresh_daemon(extra=["--config", str(conf)], settings={"resolution": "1280x720"})
    s = socket.create_connection(("127.0.0.1", d.rtsp_port), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    url = d.rtsp("stream1")

    def ask(text):
        s.sendall(text.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(1)
        return data.decode()

    reply = ask("SETUP %s/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;"
                "interleaved=0-1\r\n\r\n" % url)
    session = [l.split(": ")[1].split(";")[0] for l in reply.split("\r\n")
               if l.startswith("Session")][0]
    ask("PLAY %s RTSP/1.0\r\nCSeq: 2\r\nSession: %s\r\n\r\n" % (url, session))
    # Now never read again; a well-behaved player keeps playing meanwhile. The stalled
    # client's buffers (kernel and ours) take a second or two of video before skipping starts:
    # keep playing, a second of frames at a time, until the server reports it.
    decoded = 0
    with av.open(d.rtsp("stream1"), options={"rtsp_transport": "tcp"}, timeout=15) as c:
        for decoded, _ in enumerate(c.decode(video=0), 1):
            if decoded % 30:
                continue
            stalled = [x for x in requests.get(d.http + "/api/status",
                                               auth=("admin", d.admin_password))
                       .json()["data"]["clients"]["rtsp_sessions"] if x["session"] == session][0]
            if stalled["dropped_units"] > 0 or decoded >= 600:
                break
    assert decoded >= 60
    assert stalled["dropped_units"] > 0
    s.close()
