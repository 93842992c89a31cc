"""RTSP push from a running daemon to real receivers the tests start: FFmpeg listening as an
RTSP server, and gst-rtsp-server in record mode with Digest auth.

Each receiver is killed mid-stream and started again on the same port: frames must
arrive again within 10 s, with no daemon restart. A wrong password shows in
/api/push and the next attempt waits the longest backoff.
"""

import os
import queue
import signal
import subprocess
import threading
import time

import pytest
import requests

from tests.conftest import (REQUIRE_ALL, free_port, make_daemon, require_module,
                            require_tool)
from tests.support.live import eventually

HERE = os.path.dirname(os.path.abspath(__file__))
SIZE = (640, 360)
SETTINGS = {"resolution": "%dx%d" % SIZE, "fps": 30}


@pytest.fixture(scope="module")
def camera(tmp_path_factory):
    """A daemon of this module's own at 640x360 (cheap to push and decode)."""
    d = make_daemon(tmp_path_factory, settings=SETTINGS)
    yield d
    d.stop()


def call(camera, method, path, body=None, auth=True):
    auth = ("admin", camera.admin_password) if auth else None
    r = requests.request(method, camera.http + path, json=body, auth=auth, timeout=30)
    return r.status_code, r.json()


def wait_for(what, predicate, timeout):
    """Poll ``predicate()`` until it returns something true; fail after ``timeout`` s."""
    return eventually(predicate, timeout=timeout, what=what)


def target(camera, ident):
    code, body = call(camera, "GET", "/api/push")
    assert code == 200, body
    return next(t for t in body["data"]["targets"] if t["id"] == ident)


class Receiver:
    """An external receiver process; its stdout lines go to a queue."""

    def __init__(self, argv):
        self.argv = argv
        self.lines = queue.Queue()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, bufsize=1)
        self.stderr = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines.put),
                         daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr.append),
                         daemon=True).start()

    @staticmethod
    def _pump(stream, put):
        for line in stream:
            put(line.strip())

    def wait_line(self, predicate, timeout):
        """The first stdout line for which ``predicate`` holds; AssertionError after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(0.01, left))
            except queue.Empty:
                line = None
            if line is not None and predicate(line):
                return line
            if left <= 0:
                raise AssertionError("no such line from %s within %s s; stderr:\n%s"
                                     % (self.argv[0], timeout, "\n".join(self.stderr[-20:])))

    def kill(self):
        """SIGKILL: the receiver vanishes mid-stream, as a crash would."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def ffmpeg_listener(port, out, seconds=None):
    """FFmpeg as a listening RTSP server writing what it receives to ``out`` (MPEG-TS,
    readable even when FFmpeg is killed); progress lines on stdout."""
    ffmpeg = require_tool("ffmpeg")
    argv = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "warning", "-rtsp_flags", "listen",
            "-i", "rtsp://127.0.0.1:%d/live" % port, "-c", "copy"]
    if seconds:
        argv += ["-t", str(seconds)]
    argv += ["-progress", "pipe:1", "-stats_period", "0.2", "-f", "mpegts", "-y", str(out)]
    return Receiver(argv)


def frames_line(line):
    return line.startswith("frame=") and int(line.split("=")[1]) > 0


def gst_receiver(port, user, password, pem=None):
    """gst-rtsp-server in record mode (Digest auth; RTSPS with ``pem``), started with the
    system Python (its ``gi`` has GstRtspServer)."""
    check = subprocess.run(["/usr/bin/python3", "-c", "import gi; gi.require_version("
                            "'GstRtspServer', '1.0'); from gi.repository import GstRtspServer"],
                           capture_output=True) if os.path.exists("/usr/bin/python3") else None
    if check is None or check.returncode:
        message = "gst-rtsp-server for /usr/bin/python3 missing: apt-get install " \
                  "python3-gst-1.0 gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-bad"
        if REQUIRE_ALL:
            pytest.fail(message)
        pytest.skip(message)
    r = Receiver(["/usr/bin/python3", os.path.join(HERE, "gst_record_server.py"), str(port),
                  user, password] + ([str(pem)] if pem else []))
    r.wait_line(lambda l: l == "READY", 15)
    return r


def decode(path):
    """(frames, seconds, width, height) of a video file, decoded with PyAV."""
    av = require_module("av")
    with av.open(str(path)) as c:
        frames = [f for f in c.decode(video=0)]
    assert frames, "no frame decoded from %s" % path
    seconds = float(frames[-1].pts - frames[0].pts) * frames[0].time_base
    return len(frames), seconds, frames[0].width, frames[0].height


def test_push_to_ffmpeg_survives_a_receiver_restart(camera, tmp_path):
    port = free_port()
    first = ffmpeg_listener(port, tmp_path / "first.ts")
    url = "rtsp://127.0.0.1:%d/live" % port
    code, body = call(camera, "POST", "/api/push", {"url": url, "stream": "stream1"})
    assert code == 201, body
    ident = body["data"]["id"]
    try:
        first.wait_line(frames_line, 20)
        wait_for("recording", lambda: target(camera, ident)["state"] == "recording", 10)
        first.kill()
        # The next listener on the same port, stopping by itself after 3 s of video.
        restarted = time.monotonic()
        second = ffmpeg_listener(port, tmp_path / "second.ts", seconds=3)
        second.wait_line(frames_line, 10)
        assert time.monotonic() - restarted < 10
        second.proc.wait(20)
        status = target(camera, ident)
        assert status["reconnects"] >= 1 and status["bytes"] > 100000
        assert status["last_error"]
    finally:
        call(camera, "DELETE", "/api/push/%s" % ident)
        for r in (first, locals().get("second")):
            if r is not None:
                r.kill()
    frames, seconds, width, height = decode(tmp_path / "second.ts")
    assert (width, height) == SIZE
    assert 2.5 <= seconds <= 3.2 and frames >= 60, (frames, seconds)
    code, body = call(camera, "GET", "/api/push")
    assert ident not in [t["id"] for t in body["data"]["targets"]]
    code, _ = call(camera, "DELETE", "/api/push/%s" % ident)
    assert code == 404


def test_push_over_udp_to_ffmpeg(camera, tmp_path):
    port = free_port()
    r = ffmpeg_listener(port, tmp_path / "udp.ts", seconds=2)
    code, body = call(camera, "POST", "/api/push", {"url": "rtsp://127.0.0.1:%d/live" % port,
                                                    "stream": "stream2", "transport": "udp"})
    assert code == 201, body
    try:
        assert r.proc.wait(30) == 0, "\n".join(r.stderr[-20:])
    finally:
        call(camera, "DELETE", "/api/push/%s" % body["data"]["id"])
        r.kill()
    frames, seconds, width, height = decode(tmp_path / "udp.ts")
    assert seconds >= 1.5 and frames >= 20


def test_push_to_gst_rtsp_server_with_digest(camera):
    port = free_port()
    gst = gst_receiver(port, "cam", "right-pass")
    url = "rtsp://cam:right-pass@127.0.0.1:%d/live" % port
    code, body = call(camera, "POST", "/api/push", {"url": url})
    assert code == 201, body
    assert "right-pass" not in str(body) and body["data"]["url"] == \
        "rtsp://cam@127.0.0.1:%d/live" % port
    ident = body["data"]["id"]
    try:
        line = gst.wait_line(lambda l: l.startswith("FRAME 30 "), 20)
        assert line.endswith("%dx%d" % SIZE)
        code, listing = call(camera, "GET", "/api/push")
        assert "right-pass" not in str(listing)
        assert any(t["id"] == ident and t["state"] == "recording"
                   for t in listing["data"]["targets"])
        metrics = requests.get(camera.http + "/metrics", timeout=10).text
        assert 'rotordream_push_up{target="%s"} 1.0' % ident in metrics
        assert "right-pass" not in metrics
        gst.kill()
        restarted = time.monotonic()
        gst = gst_receiver(port, "cam", "right-pass")
        gst.wait_line(lambda l: l.startswith("FRAME "), 10 - (time.monotonic() - restarted))
        assert target(camera, ident)["reconnects"] >= 1
    finally:
        call(camera, "DELETE", "/api/push/%s" % ident)
        gst.kill()


def test_wrong_password_is_reported_and_not_retried_at_once(camera):
    port = free_port()
    gst = gst_receiver(port, "cam", "right-pass")
    url = "rtsp://cam:wrong-pass@127.0.0.1:%d/live" % port
    code, body = call(camera, "POST", "/api/push", {"url": url})
    assert code == 201, body
    ident = body["data"]["id"]
    try:
        status = wait_for("auth failure", lambda: (lambda s: s if s["state"] == "auth_failed"
                                                   else None)(target(camera, ident)), 15)
        assert "password" in status["last_error"]
        assert status["reconnects"] == 1
        # The next attempt waits the longest backoff (30 s), not a moment.
        assert status["next_attempt"] - time.time() > 20
        assert gst.lines.empty()   # no frame reached the receiver
        # /api/status shows it too: whole to operators, its state only to anyone else, and
        # the password to nobody.
        for auth in (True, False):
            r = requests.get(camera.http + "/api/status", timeout=30,
                             auth=("admin", camera.admin_password) if auth else None)
            assert r.status_code == 200 and "wrong-pass" not in r.text
            [shown] = [t for t in r.json()["data"]["push"] if t.get("state") == "auth_failed"]
            if auth:
                assert shown["id"] == ident and shown["url"].endswith(":%d/live" % port)
            else:
                assert shown == {"stream": "stream1", "state": "auth_failed"}
    finally:
        call(camera, "DELETE", "/api/push/%s" % ident)
        gst.kill()


def test_api_checks_input_and_needs_an_operator(camera):
    code, body = call(camera, "GET", "/api/push", auth=False)
    assert code == 401
    code, body = call(camera, "POST", "/api/push", {"url": "http://x/y"})
    assert code == 400 and body["code"] == "INVALID_VALUE"
    code, body = call(camera, "POST", "/api/push", {"url": "rtsp://127.0.0.1:1/x", "stream": "s9"})
    assert code == 400 and body["key"] == "stream"
    code, body = call(camera, "POST", "/api/push", {"url": "rtsp://127.0.0.1:1/x", "bogus": 1})
    assert code == 400 and body["key"] == "bogus"
    code, body = call(camera, "DELETE", "/api/push/nope")
    assert code == 404


def test_config_push_tables_start_with_the_daemon(tmp_path_factory, tmp_path):
    port = free_port()
    r = ffmpeg_listener(port, tmp_path / "config.ts", seconds=2)
    conf = tmp_path / "push.toml"
    conf.write_text('[[push]]\nurl = "rtsp://u:secret-word@127.0.0.1:%d/live"\n'
                    'stream = "stream2"\n' % port)
    d = make_daemon(tmp_path_factory, extra=["--config", str(conf)], settings=SETTINGS)
    try:
        assert r.proc.wait(40) == 0, "\n".join(r.stderr[-20:])
        code, body = call(d, "GET", "/api/push")
        (t,) = body["data"]["targets"]
        assert t["origin"] == "config" and t["bytes"] > 0 and "secret-word" not in str(body)
    finally:
        r.kill()
        d.stop()
    assert "secret-word" not in d.log()
    frames, seconds, _, _ = decode(tmp_path / "config.ts")
    assert seconds >= 1.5


def test_push_over_rtsps_checks_the_certificate_unless_told_not_to(camera, tmp_path):
    openssl = require_tool("openssl")
    pem = tmp_path / "server.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(pem), "-out", str(pem)],
                   check=True, capture_output=True)
    port = free_port()
    gst = gst_receiver(port, "cam", "tls-pass", pem)
    url = "rtsps://cam:tls-pass@127.0.0.1:%d/live" % port
    idents = []
    try:
        # A self-signed certificate is refused by default ...
        code, body = call(camera, "POST", "/api/push", {"url": url})
        assert code == 201, body
        idents.append(body["data"]["id"])
        status = wait_for("refused certificate", lambda: (lambda s: s if s["last_error"]
                                                          else None)(target(camera, idents[0])),
                          15)
        assert status["state"] != "recording" and "certificate" in status["last_error"].lower()
        call(camera, "DELETE", "/api/push/%s" % idents[0])
        # ... and taken with tls_verify false: the stream goes over TLS.
        code, body = call(camera, "POST", "/api/push", {"url": url, "tls_verify": False})
        assert code == 201, body
        idents.append(body["data"]["id"])
        gst.wait_line(lambda l: l.startswith("FRAME 10 "), 20)
        assert target(camera, idents[1])["state"] == "recording"
    finally:
        for ident in idents:
            call(camera, "DELETE", "/api/push/%s" % ident)
        gst.kill()
