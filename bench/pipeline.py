#!/usr/bin/env python3
"""Capture/encode pipeline figures: encode headroom, capture-to-hub latency, CPU, RSS.

Runs the real VideoPipeline (testsrc, libx264) in-process on the asyncio
reactor for each configuration and prints one line per configuration:

    .venv/bin/python bench/pipeline.py [--seconds 20]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from rotordream.service import install_asyncio_reactor  # noqa: E402

install_asyncio_reactor()
from twisted.internet import defer, reactor, task  # noqa: E402

from rotordream.auth.roles import SYSTEM  # noqa: E402
from rotordream.media.pipeline import VideoPipeline  # noqa: E402
from rotordream.media.sources import TestPatternSource  # noqa: E402
from rotordream.state import CameraState  # noqa: E402

CONFIGS = [
    ("1920x1080@30 + 640x360@15", {"resolution": "1920x1080", "fps": 30,
                                   "stream2-resolution": "640x360", "stream2-fps": 15}),
    ("1280x720@30 + 640x360@15", {"resolution": "1280x720", "fps": 30,
                                  "stream2-resolution": "640x360", "stream2-fps": 15}),
]


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0


@defer.inlineCallbacks
def measure(name, settings, seconds):
    state = CameraState()
    state.set(settings, SYSTEM)
    pipeline = VideoPipeline(reactor, state, TestPatternSource(), reactor.getThreadPool())
    pipeline.startService()
    yield task.deferLater(reactor, 2.0, lambda: None)  # warm up: encoders open, caches fill
    pipeline.latency_ms.clear()
    for c in pipeline.counters.values():
        c.encode_ms.clear()
    before = pipeline.stats()
    t0, c0 = time.monotonic(), os.times()
    yield task.deferLater(reactor, seconds, lambda: None)
    t1, c1 = time.monotonic(), os.times()
    stats = pipeline.stats()
    yield pipeline.stopService()
    wall = t1 - t0
    cpu = (c1.user - c0.user + c1.system - c0.system) / wall * 100
    parts = ["%-28s" % name]
    for stream, fps_key in (("stream1", "fps"), ("stream2", "stream2-fps")):
        s, b = stats["streams"][stream], before["streams"][stream]
        fps = (s["encoded"] - b["encoded"]) / wall
        capacity = 1000.0 / s["encode_ms_avg"] if s["encode_ms_avg"] else 0
        parts.append("%s %.1f fps (encode %.1f ms avg, headroom x%.1f)"
                     % (stream, fps, s["encode_ms_avg"] or 0, capacity / settings[fps_key]))
    parts.append("capture->hub p50 %.1f ms p99 %.1f ms" % (stats["latency_ms_p50"],
                                                           stats["latency_ms_p99"]))
    parts.append("CPU %.0f%% of one core" % cpu)
    parts.append("RSS %.0f MB" % rss_mb())
    parts.append("dropped %d" % (stats["dropped"] - before["dropped"]))
    print(" | ".join(parts), flush=True)


@defer.inlineCallbacks
def main(args):
    try:
        print("pipeline bench: %d s per configuration, %d cores, %s" % (
            args.seconds, os.cpu_count(), time.strftime("%Y-%m-%d")), flush=True)
        for name, settings in CONFIGS:
            yield measure(name, settings, args.seconds)
    finally:
        reactor.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    reactor.callWhenRunning(main, args)
    reactor.run()
