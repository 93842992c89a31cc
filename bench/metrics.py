#!/usr/bin/env python3
"""What /metrics costs under load: daemon CPU with 100 RTSP viewers, without and with a
Prometheus-like scrape of /metrics every second.

Alternates windows without and with the scrape (the viewers play throughout) and prints the
daemon's CPU (% of one core) for each, their means and the difference, plus the time and
size of one scrape and the viewer count /metrics reports. The difference of two noisy
windows is coarse, so it also measures the daemon's CPU per scrape directly: a burst of
back-to-back scrapes, less what the same wall time costs without them.

    .venv/bin/python bench/metrics.py [--clients 100] [--window 10] [--rounds 4]
"""

import argparse
import asyncio
import os
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _daemon import NO_LIMITS, BenchDaemon  # noqa: E402
import rtsp_client  # noqa: E402


class Scraper(threading.Thread):
    """GET /metrics once a second while :attr:`on` is set (Prometheus' scrape_interval: 1s)."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url = url
        self.on = threading.Event()
        self.done = threading.Event()
        self.times, self.sizes = [], []

    def run(self):
        while not self.done.is_set():
            if not self.on.wait(0.1):
                continue
            t0 = time.monotonic()
            body = urllib.request.urlopen(self.url, timeout=5).read()
            self.times.append(time.monotonic() - t0)
            self.sizes.append(len(body))
            self.done.wait(max(0.0, 1.0 - (time.monotonic() - t0)))


def burst(d, url, count, baseline_percent):
    """Daemon CPU seconds per scrape: ``count`` scrapes in a row, less the baseline."""
    c0, t0 = d.cpu_seconds(), time.monotonic()
    for _ in range(count):
        urllib.request.urlopen(url, timeout=5).read()
    used = d.cpu_seconds() - c0 - baseline_percent / 100.0 * (time.monotonic() - t0)
    return used / count


def sample(text, name):
    """The value of the sample line ``name`` (with its labels) in exposition ``text``."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--window", type=float, default=10, help="seconds per window")
    parser.add_argument("--rounds", type=int, default=4, help="pairs of windows")
    parser.add_argument("--transport", choices=("tcp", "udp"), default="tcp")
    parser.add_argument("--burst", type=int, default=200, help="scrapes in the burst")
    args = parser.parse_args()
    n = args.clients
    config = NO_LIMITS + "[rtsp]\nmax_sessions = %d\nmax_sessions_per_address = %d\n" % (
        n + 10, n + 10)
    d = BenchDaemon(config=config)
    url = d.http + "/metrics"
    total = 10 + 2 * args.rounds * args.window + 20  # and the burst
    viewers = threading.Thread(target=lambda: asyncio.run(rtsp_client.run(
        "127.0.0.1", d.rtsp_port, "stream1", args.transport, n, total)), daemon=True)
    scraper = Scraper(url)
    try:
        viewers.start()
        scraper.start()
        time.sleep(10)  # the viewers connect and their first keyframes go out
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        playing = sample(text, 'rotordream_clients{protocol="rtsp"}')
        print("metrics bench: %d cores, %s, %d %s viewers of stream1 (/metrics reports %s), "
              "%d x %g s windows each way" % (os.cpu_count(), time.strftime("%Y-%m-%d"), n,
                                             args.transport, playing, args.rounds, args.window),
              flush=True)
        off, on = [], []
        for r in range(args.rounds):
            scraper.on.clear()
            off.append(d.cpu_percent(args.window))
            scraper.on.set()
            on.append(d.cpu_percent(args.window))
            print("round %d: no scrape %.1f %%, scrape every 1 s %.1f %%" % (r + 1, off[-1],
                                                                             on[-1]), flush=True)
        scraper.on.clear()
        per_scrape = burst(d, url, args.burst, sum(off) / len(off))
        mean_off, mean_on = sum(off) / len(off), sum(on) / len(on)
        times = sorted(scraper.times)
        print("daemon CPU: %.2f %% without, %.2f %% with a 1 s scrape: %+.2f %% of one core"
              % (mean_off, mean_on, mean_on - mean_off))
        print("scrape: %d done, %.1f ms median, %.1f ms max, %d bytes"
              % (len(times), 1000 * times[len(times) // 2], 1000 * times[-1],
                 scraper.sizes[-1]))
        print("burst of %d back-to-back scrapes: %.2f ms of daemon CPU per scrape, i.e. "
              "%.2f %% of one core at one scrape per second"
              % (args.burst, 1000 * per_scrape, 100 * per_scrape))
    finally:
        scraper.done.set()
        d.stop()


if __name__ == "__main__":
    main()
