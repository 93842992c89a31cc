"""Large request bodies against a real daemon: refused while they arrive, never in memory
or on disk (a chunked upload could grow RSS by hundreds of MB, or fill the recordings'
filesystem with a temp file before authentication)."""

import json
import os
import socket
import subprocess
import threading
import time

import pytest
import requests

from tests.conftest import Daemon, free_port, require_tool, seed_state
from tests.support.live import wait_frames

SMALL = {"resolution": "320x240", "stream2-resolution": "320x180"}
MB = 1024 * 1024


def proc_status(pid, field):
    """A /proc/<pid>/status field in bytes (VmRSS, VmHWM)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def test_a_100_mb_chunked_login_is_refused_early_and_memory_stays_low(fresh_daemon):
    curl = require_tool("curl")
    d = fresh_daemon(settings=SMALL)
    pid = d.proc.pid
    requests.get(d.http + "/api/info")
    rss_before = proc_status(pid, "VmRSS")
    # curl -T - streams stdin as a chunked body; the feeder stops when curl hangs up.
    proc = subprocess.Popen([curl, "-s", "-S", "-o", "-", "-w", "\n%{http_code} %{size_upload}",
                             "-X", "POST", "-T", "-", "-H", "Content-Type: application/json",
                             d.http + "/api/login"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    fed = [0]

    def feed():
        piece = b"0" * 65536
        try:
            while fed[0] < 100 * MB:
                proc.stdin.write(piece)
                fed[0] += len(piece)
            proc.stdin.close()
        except (BrokenPipeError, ValueError, OSError):
            pass

    feeder = threading.Thread(target=feed, daemon=True)
    started = time.monotonic()
    feeder.start()
    out = proc.stdout.read()  # (communicate() would close curl's stdin)
    err = proc.stderr.read()
    proc.wait(timeout=60)
    elapsed = time.monotonic() - started
    body, _, tail = out.decode().rpartition("\n")
    code, uploaded = tail.split()
    assert code == "413", (out, err)
    answer = json.loads(body)
    assert answer["code"] == "PAYLOAD_TOO_LARGE" and answer["limit"] == 65536
    assert int(uploaded) < 20 * MB and elapsed < 20
    rss_after = proc_status(pid, "VmRSS")
    assert rss_after - rss_before < 20 * MB, (rss_before, rss_after)
    # The daemon is fine and the next client is served.
    r = requests.post(d.http + "/api/login", json={"username": "admin",
                                                   "password": d.admin_password})
    assert r.status_code == 200
    assert "Traceback" not in d.log()


def test_a_declared_length_over_the_limit_is_413_without_reading_it(daemon):
    with socket.create_connection(("127.0.0.1", daemon.http_port), timeout=10) as s:
        s.sendall(b"POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n")
        got = b""
        while True:
            data = s.recv(65536)
            if not data:
                break  # and the daemon closed its side
            got += data
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ") and b"Connection: close" in head
    assert json.loads(body)["code"] == "PAYLOAD_TOO_LARGE"


class TmpfsDaemon(Daemon):
    """A daemon whose state dir (recordings) and TMPDIR are on a small tmpfs of its own,
    mounted in a mount namespace private to it."""

    size_mb = 64
    seed = None  # a state.json to start from (copied in once the tmpfs is mounted)

    def command(self):
        unshare = require_tool("unshare", "util-linux")
        prefix = [unshare, "-m"] if os.geteuid() == 0 else [unshare, "-r", "-m"]
        mount = os.path.dirname(self.state_dir)
        script = ('mount -t tmpfs -o size=%dm tmpfs "$0" && mkdir -p "$0/tmp" "$0/state" '
                  '&& cp "%s" "$0/state/state.json" && exec "$@"' % (self.size_mb, self.seed))
        return prefix + ["sh", "-c", script, mount] + super().command()


def test_a_large_unfinished_upload_deletes_no_recording(tmp_path):
    require_tool("mount")
    top = tmp_path / "fs"
    top.mkdir()
    conf = tmp_path / "rec.toml"
    conf.write_text("[recording]\nsegment_seconds = 2\nmin_free_mb = 16\n[http]\nrate_limit = 0\n")
    seed_state(str(tmp_path), SMALL)
    d = TmpfsDaemon(str(top / "state"), free_port(), free_port(),
                    ["--config", str(conf)], {"TMPDIR": str(top / "tmp")})
    d.seed = str(tmp_path / "state.json")
    d.start()
    try:
        auth = ("admin", d.admin_password)
        r = requests.post(d.http + "/api/recording/start", json={"name": "keep"}, auth=auth,
                          timeout=30)
        assert r.status_code == 200, r.text

        def listing():
            r = requests.get(d.http + "/api/recordings", auth=auth, timeout=30)
            return r.json()["data"]["recordings"]

        # The camera's own clock: 6 s of live frames (after the up to 1 s GOP it replays
        # first) cut at least two 2 s segments.
        wait_frames(d, 210)
        before = {e["id"] for e in listing() if not e["recording"]}
        assert len(before) >= 2, listing()
        # 56 MB of a chunked body that never ends, anonymous, to a JSON endpoint.
        s = socket.create_connection(("127.0.0.1", d.http_port), timeout=10)
        s.sendall(b"POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        piece = b"%x\r\n%s\r\n" % (MB, b"0" * MB)
        sent = 0
        try:
            for _ in range(56):
                s.sendall(piece)
                sent += 1
        except OSError:
            pass  # refused and cut off
        s.settimeout(2)
        try:
            answer = s.recv(65536)
        except OSError:
            answer = b""
        # Leave it open past the recorder's storage check (every 5 s): 7 s of live frames.
        wait_frames(d, 240)
        s.close()
        after = listing()
        assert before <= {e["id"] for e in after}, "recordings were deleted"
        status = requests.get(d.http + "/api/recording/status", auth=auth, timeout=30)
        assert status.json()["data"]["recording"] is True, status.text
        assert sent < 56 or answer.startswith(b"HTTP/1.1 413"), (sent, answer[:200])
        grown = len(after)
        wait_frames(d, 120)  # 3 s more: a new 2 s segment has opened since
        assert len(listing()) > grown, "recording stopped"
        assert "INSUFFICIENT_STORAGE" not in d.log() and "Traceback" not in d.log()
    finally:
        d.stop()


@pytest.mark.parametrize("method,path", [("POST", "/"), ("POST", "/nothing"),
                                         ("GET", "/"), ("PUT", "/api/v1")])
def test_routes_that_take_no_body_refuse_one(daemon, method, path):
    r = requests.request(method, daemon.http + path, data=b"x" * 5000,
                         headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 413 and r.json()["code"] == "PAYLOAD_TOO_LARGE"
