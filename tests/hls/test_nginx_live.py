"""LL-HLS through Debian's nginx as a caching reverse proxy (the config of bench/hls_fanout.py):
many players, about one request per part and playlist update reaching the daemon."""

import asyncio
import concurrent.futures
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

import requests

from tests.conftest import free_port, make_daemon, require_tool

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench")


def hls_requests(daemon):
    text = requests.get(daemon.http + "/metrics", timeout=10).text
    return sum(float(v) for v in re.findall(
        r'rotordream_hls_requests_total\{[^}]*\} ([0-9.e+]+)', text))


def test_twenty_players_behind_nginx_cost_the_daemon_one_request_per_update(
        tmp_path_factory, tmp_path):
    # /usr/sbin is not on every user's PATH.
    nginx = shutil.which("/usr/sbin/nginx") or require_tool("nginx", "apt-get install nginx-light")
    sys.path.insert(0, BENCH)
    try:
        import hls_fanout
    finally:
        sys.path.remove(BENCH)
    conf = tmp_path / "hls.toml"
    conf.write_text("[hls]\nrate_limit = 0\n")
    d = make_daemon(tmp_path_factory, extra=["--config", str(conf)],
                    settings={"resolution": "640x360", "fps": 30})
    # Started as root, nginx's workers run as another user: its directory must be reachable
    # for them (pytest's own temporary directories are not).
    work = pathlib.Path(tempfile.mkdtemp(prefix="rd-nginx-"))
    os.chmod(work, 0o755)
    for sub in ("cache", "body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (work / sub).mkdir()
        os.chmod(work / sub, 0o777)
    port = free_port()
    (work / "nginx.conf").write_text(hls_fanout.NGINX_CONF.format(dir=work, camera=d.http_port,
                                                                  port=port))
    proxy = subprocess.Popen([nginx, "-c", str(work / "nginx.conf"), "-p", str(work)],
                             stderr=subprocess.PIPE, text=True)
    try:
        path = "/hls/stream1/index.m3u8"
        deadline = time.monotonic() + 20
        while True:
            try:
                r = requests.get("http://127.0.0.1:%d%s" % (port, path), timeout=10)
                if r.status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline and proxy.poll() is None, \
                "nginx did not answer: %s" % (work / "error.log").read_text()
            time.sleep(0.2)   # an external process starting: polled with a deadline
        assert r.headers["x-cache-status"] in ("MISS", "EXPIRED", "HIT", "UPDATING")
        before, started = hls_requests(d), time.monotonic()
        # In a thread of its own: the test process's asyncio loop runs the reactor.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            stats = pool.submit(asyncio.run, hls_fanout.players("127.0.0.1", port, path, 20,
                                                                6)).result(60)
        wall = time.monotonic() - started
        upstream = hls_requests(d) - before - 1   # the metrics scrape is not HLS; "before" is
    finally:
        proxy.terminate()
        proxy.wait(10)
        d.stop()
        shutil.rmtree(work, ignore_errors=True)
    assert stats["parts"] >= 20 * 20 and stats["errors"] == 0, stats
    # 5 parts a second: a playlist update and a part each, whatever the number of players.
    assert upstream <= 14 * wall, (upstream, stats["requests"], wall)
    assert stats["requests"] >= 10 * upstream
    assert max(stats["latency"]) < 2.0
