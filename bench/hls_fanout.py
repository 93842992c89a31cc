"""Low-Latency HLS fan-out through an nginx cache: many players, about one request per part
and playlist update reaching the camera.

Starts a daemon (rate limits off), Debian's nginx as a caching reverse proxy in front
of /hls (``proxy_cache_lock``: concurrent misses for one URL become one upstream
request; the daemon's Cache-Control decides how long answers live), then N players
(asyncio, HTTP/1.1 keep-alive) that each follow the live edge part by part as hls.js
does: a blocking playlist reload for the next part, then that part. Reports what
the players asked, what reached the daemon (its rotordream_hls_requests_total),
CPU of the daemon and nginx, and how far behind capture each part arrived.

    .venv/bin/python bench/hls_fanout.py --clients 200 --seconds 20 [--direct]

``--direct`` sends the players to the daemon itself (no cache), for comparison.
"""

import argparse
import asyncio
import datetime
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _daemon import NO_LIMITS, BenchDaemon, free_port  # noqa: E402

NGINX_CONF = """daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    proxy_cache_path {dir}/cache levels=1:2 keys_zone=hls:10m max_size=512m inactive=2m
                     use_temp_path=off;
    upstream camera {{
        server 127.0.0.1:{camera};
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        location /hls/ {{
            proxy_pass http://camera;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache hls;
            # The query is part of the key: each blocking reload (_HLS_msn/_HLS_part) is
            # its own entry, filled once while the others wait on the lock.
            proxy_cache_key $uri$is_args$args;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 5s;
            proxy_cache_lock_age 5s;
            add_header X-Cache-Status $upstream_cache_status;
        }}
    }}
}}
"""


def cpu_seconds(pid):
    """User+system CPU seconds of ``pid`` and its children now running (nginx's workers)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def hls_requests(http):
    text = urllib.request.urlopen(http + "/metrics", timeout=10).read().decode()
    return sum(float(v) for v in re.findall(r'rotordream_hls_requests_total\{[^}]*\} ([0-9.e+]+)',
                                             text))


def epoch(iso):
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class Player:
    """One LL-HLS player on one keep-alive connection."""

    def __init__(self, host, port, path, stats):
        self.host, self.port, self.path, self.stats = host, port, path, stats
        self.reader = self.writer = None

    async def get(self, target):
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(("GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n"
                           % (target, self.host, self.port)).encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = int(re.search(rb"(?i)content-length: *([0-9]+)", head).group(1))
        body = await self.reader.readexactly(length)
        self.stats["requests"] += 1
        self.stats["bytes"] += len(body)
        return status, body

    async def run(self, until):
        base = self.path.rsplit("/", 1)[0]
        status, body = await self.get(self.path)
        text = body.decode()
        while time.monotonic() < until:
            last = max(int(m) for m in re.findall(r"part-([0-9]+)-[0-9]+\.m4s", text))
            parts = len(re.findall(r"#EXT-X-PART:.*part-%d-" % last, text))
            complete = ("seg-%d.m4s" % last) in text
            msn, part = (last + 1, 0) if complete else (last, parts)
            status, body = await self.get("%s?_HLS_msn=%d&_HLS_part=%d" % (self.path, msn, part))
            if status != 200:
                self.stats["errors"] += 1
                continue
            text = body.decode()
            status, data = await self.get("%s/part-%d-%d.m4s" % (base, msn, part))
            if status != 200:
                self.stats["misses"] += 1
                continue
            arrived = time.time()
            self.stats["parts"] += 1
            seg = text.find("seg-%d.m4s" % (msn - 1)) if msn else 0
            pdt = re.search(r"#EXT-X-PROGRAM-DATE-TIME:(\S+)", text[max(seg, 0):])
            durations = re.findall(r'#EXT-X-PART:DURATION=([0-9.]+),URI="part-%d-([0-9]+)\.m4s"'
                                   % msn, text)
            offset = sum(float(d) for d, i in durations if int(i) < part)
            if pdt:
                self.stats["latency"].append(arrived - (epoch(pdt.group(1)) + offset))
        self.writer.close()


async def players(host, port, path, count, seconds):
    stats = {"requests": 0, "bytes": 0, "errors": 0, "misses": 0, "parts": 0, "latency": []}
    until = time.monotonic() + seconds
    await asyncio.gather(*(Player(host, port, path, stats).run(until) for _ in range(count)))
    return stats


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--stream", default="stream1")
    parser.add_argument("--resolution", default="1280x720")
    parser.add_argument("--direct", action="store_true", help="no cache: players ask the daemon")
    args = parser.parse_args()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    daemon = BenchDaemon(NO_LIMITS + "[hls]\nrate_limit = 0\nmax_waiting = 5000\n",
                         settings={"resolution": args.resolution, "fps": 30})
    work = tempfile.mkdtemp(prefix="rd-nginx-")
    proxy = None
    try:
        port = daemon.http_port
        if not args.direct:
            port = free_port()
            # Started as root, nginx's workers run as another user: they need to write here.
            os.chmod(work, 0o755)
            for sub in ("cache", "body", "proxy", "fastcgi", "uwsgi", "scgi"):
                os.makedirs(os.path.join(work, sub), mode=0o777, exist_ok=True)
                os.chmod(os.path.join(work, sub), 0o777)
            with open(os.path.join(work, "nginx.conf"), "w") as f:
                f.write(NGINX_CONF.format(dir=work, camera=daemon.http_port, port=port))
            proxy = subprocess.Popen([nginx, "-c", os.path.join(work, "nginx.conf"),
                                      "-p", work], stderr=subprocess.PIPE)
            deadline = time.time() + 10
            while True:
                try:
                    urllib.request.urlopen("http://127.0.0.1:%d/hls/%s/index.m3u8"
                                           % (port, args.stream), timeout=5).read()
                    break
                except OSError:
                    if time.time() > deadline or proxy.poll() is not None:
                        raise RuntimeError("nginx did not start")
                    time.sleep(0.2)  # start-up poll
        path = "/hls/%s/index.m3u8" % args.stream
        urllib.request.urlopen(daemon.http + path, timeout=10).read()  # packaging on
        before = hls_requests(daemon.http)
        d0, t0 = daemon.cpu_seconds(), time.monotonic()
        n0 = cpu_seconds(proxy.pid) if proxy else 0.0
        stats = asyncio.run(players("127.0.0.1", port, path, args.clients, args.seconds))
        wall = time.monotonic() - t0
        daemon_cpu = 100 * (daemon.cpu_seconds() - d0) / wall
        nginx_cpu = 100 * (cpu_seconds(proxy.pid) - n0) / wall if proxy else 0.0
        upstream = hls_requests(daemon.http) - before
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(10)
        daemon.stop()
        shutil.rmtree(work, ignore_errors=True)
    lat = sorted(stats["latency"])
    print("mode: %s, %d players, %.1f s, %s %s" % ("direct" if args.direct else "nginx cache",
                                                    args.clients, wall, args.stream,
                                                    args.resolution))
    print("players: %d requests (%.0f/s), %.1f MB, %d parts, %d playlist errors, %d part misses"
          % (stats["requests"], stats["requests"] / wall, stats["bytes"] / 1e6, stats["parts"],
             stats["errors"], stats["misses"]))
    print("daemon: %d HLS requests (%.1f/s), %.1f %% of a core; nginx %.1f %% of a core"
          % (upstream, upstream / wall, daemon_cpu, nginx_cpu))
    if lat:
        print("part latency after capture: median %.2f s, p95 %.2f s, max %.2f s"
              % (statistics.median(lat), lat[int(0.95 * (len(lat) - 1))], lat[-1]))


if __name__ == "__main__":
    main()
