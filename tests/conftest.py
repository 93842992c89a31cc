"""Shared test fixtures: tool requirements, free ports, a running daemon.

The `daemon` fixture is one daemon shared by the session; `fresh_daemon` makes
daemons private to one test.
"""

import os
import shutil

import pytest

REQUIRE_ALL = os.environ.get("ROTORDREAM_REQUIRE_ALL") == "1"


def require_tool(name, hint=""):
    """Return the path of command ``name``; skip without it, fail under ROTORDREAM_REQUIRE_ALL=1."""
    path = shutil.which(name)
    if path is None:
        message = "%s not installed%s" % (name, (": " + hint) if hint else "")
        if REQUIRE_ALL:
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_module(name):
    """Import and return module ``name``; skip without it, fail under ROTORDREAM_REQUIRE_ALL=1."""
    try:
        return __import__(name, fromlist=["_"])
    except ImportError as e:
        if REQUIRE_ALL:
            pytest.fail("python module %s missing: %s" % (name, e))
        pytest.skip("python module %s missing" % name)


def run_in_netns(script, work, timeout, complete):
    """Run ``python SCRIPT RESULT.json WORK`` in a network namespace of its own; its result.

    ``unshare -n`` as root (``-rn`` otherwise): the script sees only ``lo`` plus what it
    makes, so nothing it sends can leave the machine. ``complete(result)`` says whether
    the script got far enough; if not, the test fails with its output.
    """
    import json
    unshare = require_tool("unshare", "util-linux")
    require_tool("ip", "iproute2")
    result = work / "result.json"
    prefix = [unshare, "-n"] if os.geteuid() == 0 else [unshare, "-r", "-n"]
    proc = subprocess.run(prefix + [sys.executable, script, str(result), str(work)],
                          capture_output=True, text=True, timeout=timeout)
    data = json.loads(result.read_text()) if result.exists() else None
    if data is None or not complete(data):
        pytest.fail("namespace helper failed (%d):\n%s\n%s\n%s"
                    % (proc.returncode, proc.stdout[-3000:], proc.stderr[-5000:],
                       result.read_text()[-4000:] if result.exists() else ""))
    return data


# -- a running daemon ---------------------------------------------------------

import secrets
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field

ADMIN_PASSWORD = "test-admin-" + secrets.token_hex(4)
VENV_BIN = os.path.dirname(sys.executable)


def free_port(kind=socket.SOCK_STREAM):
    """A port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Daemon:
    """A ``twistd -n rotordream`` subprocess on loopback ports with its own state dir."""

    state_dir: str
    http_port: int
    rtsp_port: int
    extra: list = field(default_factory=list)
    env: dict = field(default_factory=dict)
    admin_password: str = ADMIN_PASSWORD
    proc: subprocess.Popen = None
    output: list = field(default_factory=list)

    @property
    def http(self):
        """Base URL of the HTTP server, e.g. http://127.0.0.1:PORT"""
        return "http://127.0.0.1:%d" % self.http_port

    @property
    def ws(self):
        """URL of the control WebSocket."""
        return "ws://127.0.0.1:%d/api/v1" % self.http_port

    def rtsp(self, path="stream1"):
        """RTSP URL of ``path``."""
        return "rtsp://127.0.0.1:%d/%s" % (self.rtsp_port, path)

    def command(self):
        """The command line that starts this daemon."""
        # Never the installed /etc/rotordream/rotordream.toml: it turns WS-Discovery on,
        # and a test's daemon must not multicast on a real network.
        config = [] if "--config" in self.extra else ["--config", os.devnull]
        # The password key lives beside the state dir, never in it (and never in /etc).
        secret = [] if "--secret-file" in self.extra else \
            ["--secret-file", self.state_dir.rstrip("/") + ".key"]
        return [os.path.join(VENV_BIN, "twistd"), "-n", "--pidfile=", "rotordream",
                "--http", "tcp:%d:interface=127.0.0.1" % self.http_port,
                "--rtsp", "tcp:%d:interface=127.0.0.1" % self.rtsp_port,
                "--state-dir", self.state_dir] + config + secret + list(self.extra)

    def start(self, timeout=60):
        """Start the process and wait for its ready banner (or fail with its output)."""
        env = dict(os.environ, ROTORDREAM_ADMIN_PASSWORD=self.admin_password, **self.env)
        self.output = []
        self.ended = False
        self._lines = threading.Condition()
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env, text=True, bufsize=1)

        def pump():
            for line in self.proc.stdout:
                with self._lines:
                    self.output.append(line)
                    self._lines.notify_all()
            with self._lines:
                self.ended = True
                self._lines.notify_all()

        threading.Thread(target=pump, daemon=True).start()
        # The banner's last line: the URLs above it are all in ``output`` once it is.
        if not self.wait_output(lambda out: any("log in as admin" in l for l in out), timeout):
            self.stop()
            raise RuntimeError("daemon did not start:\n" + "".join(self.output[-60:]))
        return self

    def wait_output(self, predicate, timeout=60):
        """Wait until ``predicate(lines printed so far)`` holds; False if the process ended
        or ``timeout`` passed first."""
        with self._lines:
            return self._lines.wait_for(lambda: predicate(self.output) or self.ended, timeout) \
                and predicate(self.output)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Stop the process; return its exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log(self):
        """Everything the daemon printed so far."""
        return "".join(self.output)


SHARED_SETTINGS = {"resolution": "1280x720", "fps": 30}


def seed_state(state_dir, values):
    """Write camera settings into a state dir before the daemon starts."""
    import json
    with open(os.path.join(state_dir, "state.json"), "w") as f:
        json.dump({"version": 1, "values": values}, f)


def make_daemon(tmp_path_factory, extra=(), env=None, state_dir=None, settings=None):
    """A started :class:`Daemon` on fresh ports (callers stop it).

    ``settings`` seeds camera state (e.g. a smaller resolution to save CPU).
    """
    state_dir = state_dir or str(tmp_path_factory.mktemp("state"))
    if settings:
        seed_state(state_dir, settings)
    return Daemon(state_dir, free_port(), free_port(), list(extra), dict(env or {})).start()


# The shared daemon must not lock 127.0.0.1 out when one test sends wrong passwords
# or many requests: limits are tested on daemons of their own. WebRTC offers
# 127.0.0.1 (aioice leaves loopback out) so viewers on this machine connect.
NO_LIMITS = """
[http]
rate_limit = 0
[auth]
login_failures = 100000
attempts_per_address = 0
[websocket]
rate_limit = 0
"""
SHARED_CONFIG = NO_LIMITS + """[rtsp]
max_sessions_per_address = 10
[webrtc]
addresses = ["127.0.0.1"]
max_sessions_per_address = 10
"""


@pytest.fixture(scope="session")
def daemon(tmp_path_factory):
    """One daemon shared by the whole session: testsrc at 1280x720@30, simulated motors,
    HTTP/WebSocket rate limits and login lockout off.

    Tests that change settings must put them back or use ``fresh_daemon``.
    """
    conf = tmp_path_factory.mktemp("conf") / "shared.toml"
    conf.write_text(SHARED_CONFIG)
    d = make_daemon(tmp_path_factory, extra=["--config", str(conf)], settings=SHARED_SETTINGS)
    yield d
    d.stop()


@pytest.fixture
def fresh_daemon(tmp_path_factory):
    """A factory of daemons private to one test, stopped afterwards: fresh_daemon(extra=[...])."""
    started = []

    def factory(extra=(), env=None, state_dir=None, settings=None):
        d = make_daemon(tmp_path_factory, extra, env, state_dir, settings)
        started.append(d)
        return d

    yield factory
    for d in started:
        d.stop()
