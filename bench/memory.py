#!/usr/bin/env python3
"""The daemon's memory idle and under load: RTSP readers, WebSocket clients and WebRTC
viewers at once.

    .venv/bin/python bench/memory.py [--rtsp 200] [--ws 100] [--webrtc 10]
                                     [--transport tcp] [--hold 10]

A daemon runs on its default test-pattern camera (stream1 1080p30). The script reports
its RSS, PSS and USS (/proc/PID/smaps_rollup; USS = private pages) idle, then while
every client is connected at once, then after they have all left. Each kind of client
runs in a process of its own so that none of them starves the others:

- RTSP readers: packet-level, TCP-interleaved by default (bench/rtsp_client.py), of
  stream1, counting packets only;
- WebSocket clients of /api/v1 that read every message (the `websockets` package);
- WebRTC viewers of stream1 (aiortc, bench/webrtc.py's receivers, no decoding). They are
  CPU-heavy on 2 cores: keep ``--hold`` short.

The loaded figure is the largest of the samples taken every 2 s over ``--hold`` seconds.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
from bench._daemon import NO_LIMITS, BenchDaemon  # noqa: E402

WEBRTC = '[webrtc]\naddresses = ["127.0.0.1"]\nmax_sessions = 64\nmax_sessions_per_address = 64\n'
RTSP = "[rtsp]\nmax_sessions = 1000\nmax_sessions_per_address = 1000\n"
CONFIG = NO_LIMITS + WEBRTC + RTSP


def memory(pid):
    """RSS, PSS and USS of ``pid`` in MB (from /proc/PID/smaps_rollup)."""
    values = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":"):
                values[parts[0][:-1]] = int(parts[1])
    uss = values.get("Private_Clean", 0) + values.get("Private_Dirty", 0)
    return {"rss": values["Rss"] / 1024, "pss": values["Pss"] / 1024, "uss": uss / 1024}


def fmt(m):
    """One sample as text."""
    return "RSS %.1f MB, PSS %.1f MB, USS %.1f MB" % (m["rss"], m["pss"], m["uss"])


def rtsp_reader(port, transport, index, start):
    """One packet-counting reader of stream1 joining at ``start`` (monotonic) and staying
    until its task is cancelled: (its Reader, the task)."""
    from rtsp_client import Reader, reader_task
    stats = Reader(index)
    return stats, asyncio.ensure_future(reader_task(
        "127.0.0.1", port, "stream1", transport, stats, start, time.monotonic() + 86400))


async def rtsp_readers(port, n, transport, stop_after, ready):
    """``n`` packet-counting readers of stream1; ``ready()`` once each has a packet."""
    now = time.monotonic()
    # A few ms apart, as a camera's viewers join.
    readers = [rtsp_reader(port, transport, i, now + i * 0.005) for i in range(n)]
    deadline = time.monotonic() + 60
    while min(s.packets for s, _ in readers) == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)   # a benchmark's start-up poll
    ready("%d/%d readers receiving" % (sum(1 for s, _ in readers if s.packets), n))
    await stop_after()
    for _, task in readers:
        task.cancel()
    await asyncio.wait([task for _, task in readers], timeout=5)
    return sum(s.packets for s, _ in readers)


async def ws_clients(http_port, n, stop_after, ready):
    """``n`` WebSocket clients of /api/v1 that read every message."""
    import websockets
    url = "ws://127.0.0.1:%d/api/v1" % http_port
    conns = [await websockets.connect(url, max_queue=None) for _ in range(n)]
    received = [0]

    async def drain(ws):
        try:
            async for _ in ws:
                received[0] += 1
        except websockets.ConnectionClosed:
            pass
    tasks = [asyncio.ensure_future(drain(ws)) for ws in conns]
    ready("%d clients connected" % n)
    await stop_after()
    for ws in conns:
        await ws.close()
    await asyncio.wait(tasks, timeout=5)
    return received[0]


def child(args):
    """One kind of client in this process: READY on stdout, then held until stdin closes."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    def ready(what):
        print("READY " + what, flush=True)

    async def stop_after():
        # The parent closes our stdin when it has measured.
        await loop.run_in_executor(None, sys.stdin.read)
    if args.role == "rtsp":
        done = rtsp_readers(args.port, args.count, args.transport, stop_after, ready)
    else:
        done = ws_clients(args.port, args.count, stop_after, ready)
    print("DONE %s" % loop.run_until_complete(done), flush=True)


def start(cmd, what):
    """Start a client process and wait for its READY line."""
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    if not line.startswith("READY"):
        proc.kill()
        raise RuntimeError("%s did not start: %r" % (what, line))
    print("  %s: %s" % (what, line[6:] or "ready"), flush=True)
    return proc


def sample(pid, seconds):
    """Samples every 2 s for ``seconds``; the largest RSS one and all of them."""
    samples = []
    end = time.monotonic() + seconds
    while True:
        samples.append(memory(pid))
        if time.monotonic() >= end:
            break
        time.sleep(2)   # a sampling interval, not a wait for an event
    return max(samples, key=lambda m: m["rss"]), samples


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rtsp", type=int, default=200, help="RTSP readers")
    ap.add_argument("--ws", type=int, default=100, help="WebSocket clients")
    ap.add_argument("--webrtc", type=int, default=10, help="WebRTC viewers")
    ap.add_argument("--transport", choices=["tcp", "udp"], default="tcp")
    ap.add_argument("--hold", type=float, default=10, help="seconds under load")
    ap.add_argument("--role", choices=["rtsp", "ws"], help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role:
        return child(args)

    print("memory bench: %d cores, %s, test pattern (stream1 1080p30)"
          % (os.cpu_count(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())), flush=True)
    d = BenchDaemon(config=CONFIG)
    procs = []
    try:
        time.sleep(3)   # past the first GOPs: the encoders' buffers are all allocated
        idle = memory(d.proc.pid)
        print("idle: %s" % fmt(idle), flush=True)
        me = [sys.executable, os.path.abspath(__file__)]
        if args.rtsp:
            procs.append(start(me + ["--role", "rtsp", "--port", str(d.rtsp_port), "--count",
                                     str(args.rtsp), "--transport", args.transport],
                               "%d RTSP %s readers" % (args.rtsp, args.transport.upper())))
        if args.ws:
            procs.append(start(me + ["--role", "ws", "--port", str(d.http_port), "--count",
                                     str(args.ws)], "%d WebSocket clients" % args.ws))
        if args.webrtc:
            # bench/webrtc.py's receivers hold for the given seconds, then print frames/s.
            procs.append(start([sys.executable, os.path.join(HERE, "webrtc.py"), "--client",
                                d.http, str(args.webrtc), str(args.hold + 6)],
                               "%d WebRTC viewers" % args.webrtc))
        time.sleep(2)   # the last joiners' catch-up bursts are sent
        loaded, samples = sample(d.proc.pid, args.hold)
        print("loaded: %s (largest of %d samples; RSS %.1f-%.1f MB)"
              % (fmt(loaded), len(samples), min(m["rss"] for m in samples),
                 max(m["rss"] for m in samples)), flush=True)
        for proc in procs:
            out, _ = proc.communicate(timeout=60)
            last = out.strip().splitlines()[-1] if out.strip() else ""
            if last.startswith("["):   # the WebRTC viewers' frames/s
                fps = json.loads(last)
                last = "frames/s each %.1f-%.1f" % (min(fps), max(fps)) if fps else "no frames"
            print("  client: %s" % last, flush=True)
        procs = []
        time.sleep(5)   # the daemon notices the closed connections
        after = memory(d.proc.pid)
        print("after all left: %s" % fmt(after), flush=True)
        print("| idle RSS | loaded RSS (PSS, USS) | after RSS |\n|---|---|---|\n"
              "| %.1f MB | %.1f MB (%.1f, %.1f) | %.1f MB |"
              % (idle["rss"], loaded["rss"], loaded["pss"], loaded["uss"], after["rss"]))
    finally:
        for proc in procs:
            proc.kill()
        d.stop()


if __name__ == "__main__":
    main()
