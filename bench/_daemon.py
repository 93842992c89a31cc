"""Start and stop a daemon for a benchmark (loopback ports, temp state dir, limits off)."""

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
PASSWORD = "bench-admin-password"
NO_LIMITS = "[http]\nrate_limit = 0\n[auth]\nlogin_failures = 100000\n[websocket]\nrate_limit = 0\n"


def cpu_seconds(pid):
    """User+system CPU seconds process ``pid`` has used (all its threads)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid):
    """Resident memory of process ``pid`` in MB (VmRSS)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def free_ports(count):
    """``count`` distinct free loopback TCP ports (held together while chosen)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port():
    """A free loopback TCP port."""
    return free_ports(1)[0]


class BenchDaemon:
    """``twistd -n rotordream`` on loopback with rate limits off (or ``config`` text).

    ``extra``: more command-line options, e.g. ``["--source", "file:clip.mp4"]``.
    """

    def __init__(self, config=NO_LIMITS, settings=None, extra=()):
        self.dir = tempfile.mkdtemp(prefix="rd-bench-")
        self.http_port, self.rtsp_port = free_ports(2)
        conf = os.path.join(self.dir, "bench.toml")
        with open(conf, "w") as f:
            f.write(config)
        state = os.path.join(self.dir, "state")
        os.makedirs(state)
        if settings:
            import json
            with open(os.path.join(state, "state.json"), "w") as f:
                json.dump({"version": 1, "values": settings}, f)
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        self.proc = subprocess.Popen(
            [twistd, "-n", "--pidfile=", "rotordream", "--config", conf,
             "--http", "tcp:%d:interface=127.0.0.1" % self.http_port,
             "--rtsp", "tcp:%d:interface=127.0.0.1" % self.rtsp_port, "--state-dir", state,
             "--secret-file", os.path.join(self.dir, "secret.key")] + list(extra),
            stdout=open(os.path.join(self.dir, "daemon.log"), "w"), stderr=subprocess.STDOUT,
            env=dict(os.environ, ROTORDREAM_ADMIN_PASSWORD=PASSWORD))
        self.http = "http://127.0.0.1:%d" % self.http_port
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(self.http + "/api/health", timeout=1).read()
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    with open(os.path.join(self.dir, "daemon.log")) as log:
                        tail = log.read()[-2000:]
                    raise RuntimeError("daemon did not start:\n" + tail)
                time.sleep(0.2)  # a benchmark's start-up poll, not a test
        time.sleep(2)  # let the encoders settle before measuring

    def cpu_seconds(self):
        """User+system CPU seconds the daemon has used."""
        return cpu_seconds(self.proc.pid)

    def rss_mb(self):
        """The daemon's resident memory in MB."""
        return rss_mb(self.proc.pid)

    def cpu_percent(self, seconds):
        """The daemon's CPU use (% of one core) over the next ``seconds`` of wall time."""
        c0, t0 = self.cpu_seconds(), time.monotonic()
        time.sleep(seconds)  # a measurement window, not a wait for an event
        return 100.0 * (self.cpu_seconds() - c0) / (time.monotonic() - t0)

    def stop(self):
        """Stop the daemon."""
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("daemon did not stop within 10 s of SIGTERM")
