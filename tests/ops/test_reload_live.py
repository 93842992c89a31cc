"""SIGHUP against a running daemon: new limits and ports apply while viewers stay connected,
and a broken file changes nothing."""

import json
import os
import signal
import threading
import time

import requests
from websockets.sync.client import connect

from tests.conftest import Daemon, free_port
from tests.support.rawrtsp import RawRtsp
from tests.support.live import eventually

SMALL = {"resolution": "320x240", "fps": 15, "stream2-resolution": "320x180"}
LOOPBACK = "tcp:%d:interface=127.0.0.1"


class FileDaemon(Daemon):
    """A daemon whose HTTP endpoint comes from its config file (the command line would
    win over the file, so a reload could not move it)."""

    def command(self):
        cmd = super().command()
        at = cmd.index("--http")
        return cmd[:at] + cmd[at + 2:]


def config_file(tmp_path, text):
    path = tmp_path / "rotordream.toml"
    path.write_text(text)
    return path


def reload(daemon, path, text, outcome="configuration reloaded"):
    """Write ``text`` to ``path``, send SIGHUP and wait for the daemon's ``outcome`` line."""
    before = sum(outcome in line for line in daemon.output)
    path.write_text(text)
    os.kill(daemon.proc.pid, signal.SIGHUP)
    assert daemon.wait_output(lambda out: sum(outcome in line for line in out) > before, 20), \
        daemon.log()[-3000:]


class RtpWatch:
    """An RTSP viewer over TCP that notes when each chunk of interleaved RTP arrives."""

    def __init__(self, daemon, stream="stream2"):
        self.rtsp = RawRtsp(daemon.rtsp_port)
        status, sid, _, _ = self.rtsp.setup(stream + "/trackID=0",
                                            "RTP/AVP/TCP;unicast;interleaved=0-1")
        assert status == 200 and sid
        status, _, _ = self.rtsp.ask("PLAY", stream, Session=sid)
        assert status == 200
        self.arrivals = []
        self.error = None
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        sock = self.rtsp.sock
        try:
            while not self._stop:
                if not sock.recv(65536):
                    self.error = "closed by the server"
                    return
                self.arrivals.append(time.monotonic())
        except OSError as e:
            if not self._stop:
                self.error = str(e)

    def wait_packets(self, count, timeout=15):
        """Wait until ``count`` more chunks than now arrived."""
        target = len(self.arrivals) + count
        eventually(lambda: len(self.arrivals), lambda n: n >= target or self.error, timeout)
        assert self.error is None, self.error

    def longest_gap(self, since, until):
        """The longest silence between ``since`` and ``until`` (monotonic seconds)."""
        times = [since] + [t for t in self.arrivals if since <= t <= until] + [until]
        return max(b - a for a, b in zip(times, times[1:]))

    def close(self):
        self._stop = True
        self.rtsp.close()


def start(tmp_path_factory, conf, http_port=None, env=None):
    """A daemon on ``conf`` (HTTP from the file when ``http_port`` is given), small video."""
    state = str(tmp_path_factory.mktemp("state"))
    with open(os.path.join(state, "state.json"), "w") as f:
        json.dump({"version": 1, "values": SMALL}, f)
    cls = FileDaemon if http_port else Daemon
    return cls(state, http_port or free_port(), free_port(), ["--config", str(conf)],
               dict(env or {})).start()


def test_a_new_rate_limit_applies_to_the_next_request_while_viewers_stay(tmp_path,
                                                                         tmp_path_factory):
    limited = "[http]\nrate_limit = 3\nrate_period = 600\n"
    conf = config_file(tmp_path, limited)
    d = start(tmp_path_factory, conf)
    try:
        viewer = RtpWatch(d)
        ws = connect(d.ws)
        ws.send(json.dumps({"get": "*"}))
        assert "brightness" in json.loads(ws.recv(timeout=10))
        viewer.wait_packets(20)
        codes = [requests.get(d.http + "/api/health", timeout=10).status_code
                 for _ in range(5)]
        assert codes[-1] == 429, codes

        before = time.monotonic()
        reload(d, conf, "[http]\nrate_limit = 1000\nrate_period = 600\n")
        assert requests.get(d.http + "/api/health", timeout=10).status_code == 200
        viewer.wait_packets(20)
        after = time.monotonic()
        assert viewer.error is None
        assert viewer.longest_gap(before, after) < 1.0

        # The WebSocket client is still connected and still gets broadcasts.
        r = requests.post(d.http + "/api/settings", json={"brightness": 61},
                         auth=("admin", d.admin_password), timeout=10)
        assert r.status_code == 200, r.text
        while True:
            msg = json.loads(ws.recv(timeout=10))
            if "brightness" in msg:
                break
        assert msg["brightness"] == 61
        ws.close()
        viewer.close()
        assert "event=config_reloaded" in d.log() or "configuration reloaded" in d.log()
    finally:
        d.stop()


def test_a_new_http_port_serves_there_and_the_old_port_closes(tmp_path, tmp_path_factory):
    old, new = free_port(), free_port()
    conf = config_file(tmp_path, "[server]\nhttp = \"%s\"\n" % (LOOPBACK % old))
    d = start(tmp_path_factory, conf, http_port=old)
    try:
        ws = connect(d.ws)   # accepted on the old port: stays up after the move
        ws.send(json.dumps({"get": "*"}))
        ws.recv(timeout=10)
        reload(d, conf, "[server]\nhttp = \"%s\"\n" % (LOOPBACK % new))
        assert requests.get("http://127.0.0.1:%d/api/health" % new, timeout=10).status_code \
            == 200
        try:
            requests.get("http://127.0.0.1:%d/api/health" % old, timeout=10)
            raise AssertionError("the old port still accepts connections")
        except requests.ConnectionError:
            pass
        ws.send(json.dumps({"get": ["brightness"]}))
        assert "brightness" in json.loads(ws.recv(timeout=10))
        ws.close()
        info = requests.get("http://127.0.0.1:%d/api/info" % new, timeout=10)
        assert info.status_code == 200
    finally:
        d.stop()


def test_a_broken_file_keeps_the_old_configuration(tmp_path, tmp_path_factory):
    conf = config_file(tmp_path, "[metrics]\npublic = true\n")
    d = start(tmp_path_factory, conf)
    try:
        reload(d, conf, "[metrics]\npublic = false\n[http]\nrate_limit = \"many\"\n",
               outcome="not reloaded")
        line = next(l for l in d.output if "not reloaded" in l)
        assert "[http] rate_limit" in line
        # public = false was not applied: anonymous scrapes still work.
        r = requests.get(d.http + "/metrics", timeout=10)
        assert r.status_code == 200
        assert "rotordream_config_reload_failures_total 1.0" in r.text
        # A valid file afterwards applies.
        reload(d, conf, "[metrics]\npublic = false\n")
        assert requests.get(d.http + "/metrics", timeout=10).status_code == 401
    finally:
        d.stop()
