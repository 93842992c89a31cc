#!/usr/bin/env python3
"""Memory over a long run with viewers joining and leaving every second.

    .venv/bin/python bench/soak.py [--minutes 30] [--readers 50] [--ws 5] [--interval 10]

A daemon runs on its default test-pattern camera (stream1 1080p30). A client process
keeps ``--readers`` packet-level RTSP TCP readers of stream1 (bench/rtsp_client.py) and
``--ws`` WebSocket clients connected; every second the oldest reader leaves and a new
one joins, and one WebSocket client reconnects; an admin changes the device name every
10 s, which every WebSocket client receives (an image setting would add the capture
thread's per-frame adjustment to what is measured). The daemon's RSS is sampled every ``--interval``
seconds after a warm-up. The script prints each sample, then first, last, min and max
and the drift: (last - first) / first and (max - min) / first, in %.
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
from bench._daemon import PASSWORD, BenchDaemon  # noqa: E402
from bench.memory import CONFIG, memory, rtsp_reader  # noqa: E402


async def churn(rtsp_port, http_port, readers, ws_count):
    """Keep the clients churning until stdin closes; counts of joins and leaves."""
    import websockets
    loop = asyncio.get_running_loop()
    url = "ws://127.0.0.1:%d/api/v1" % http_port
    done = loop.run_in_executor(None, sys.stdin.read)   # the parent closes our stdin
    counts = {"rtsp_joined": 0, "rtsp_left": 0, "ws_reconnects": 0, "ws_messages": 0,
              "changes": 0, "rtsp_packets": 0, "rtsp_failed": 0}
    live = []   # (Reader, task), oldest first

    def join():
        live.append(rtsp_reader(rtsp_port, "tcp", counts["rtsp_joined"], time.monotonic()))
        counts["rtsp_joined"] += 1

    def leave():
        stats, task = live.pop(0)
        task.cancel()   # the reader closes its connection
        counts["rtsp_left"] += 1
        counts["rtsp_packets"] += stats.packets

    async def ws_client():
        ws = await websockets.connect(url, max_queue=None)

        async def drain():
            try:
                async for _ in ws:
                    counts["ws_messages"] += 1
            except websockets.ConnectionClosed:
                pass
        return ws, asyncio.ensure_future(drain())

    for _ in range(readers):
        join()
        await asyncio.sleep(0.02)   # joining 20 ms apart
    sockets = [await ws_client() for _ in range(ws_count)]
    admin = await websockets.connect(url, max_queue=None)
    await admin.send(json.dumps({"username": "admin", "password": PASSWORD}))
    await admin.recv()

    async def drain_admin():
        # Read every broadcast: a client that stops reading stops answering pings too,
        # and its connection ends with a keep-alive timeout.
        try:
            async for _ in admin:
                pass
        except websockets.ConnectionClosed:
            pass
    admin_drain = asyncio.ensure_future(drain_admin())
    print("READY", flush=True)
    tick = 0
    while not done.done():
        await asyncio.wait([done], timeout=1.0)   # one churn step a second
        tick += 1
        leave()
        join()
        if sockets:
            ws, task = sockets.pop(0)
            await ws.close()
            await task
            sockets.append(await ws_client())
            counts["ws_reconnects"] += 1
        if tick % 10 == 0:
            await admin.send(json.dumps({"device-name": "soak %d" % (tick // 10)}))
            counts["changes"] += 1
        # Readers that ended on their own (a refused or dropped session) are replaced too.
        for entry in [e for e in live if e[1].done()]:
            live.remove(entry)
            counts["rtsp_failed"] += 1
            join()
    while live:
        leave()
    for ws, task in sockets:
        await ws.close()
    await admin.close()
    await asyncio.wait([t for _, t in sockets] + [admin_drain], timeout=5)
    await asyncio.sleep(1)   # the cancelled readers close their connections
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--readers", type=int, default=50, help="RTSP TCP readers at any time")
    ap.add_argument("--ws", type=int, default=5, help="WebSocket clients at any time")
    ap.add_argument("--interval", type=float, default=10, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=30, help="seconds before the first sample")
    ap.add_argument("--role", choices=["churn"], help=argparse.SUPPRESS)
    ap.add_argument("--ports", type=int, nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role:
        counts = asyncio.run(churn(args.ports[0], args.ports[1], args.readers, args.ws))
        print("DONE " + json.dumps(counts), flush=True)
        return

    print("soak: %d cores, %s, test pattern (stream1 1080p30), %d RTSP TCP readers and %d "
          "WebSocket clients, one of each replaced every second, %.1f min"
          % (os.cpu_count(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
             args.readers, args.ws, args.minutes), flush=True)
    d = BenchDaemon(config=CONFIG)
    proc = None
    try:
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--role", "churn",
                                 "--ports", str(d.rtsp_port), str(d.http_port),
                                 "--readers", str(args.readers), "--ws", str(args.ws)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if proc.stdout.readline().strip() != "READY":
            raise RuntimeError("the churning clients did not start")
        time.sleep(args.warmup)   # every buffer and cache has been through its first cycle
        samples = []
        t0 = time.monotonic()
        end = t0 + args.minutes * 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError("the churning clients stopped (exit %s): the soak is not "
                                   "valid" % proc.returncode)
            m = memory(d.proc.pid)
            samples.append(m["rss"])
            print("%6.0f s  RSS %.1f MB  PSS %.1f MB  USS %.1f MB"
                  % (time.monotonic() - t0, m["rss"], m["pss"], m["uss"]), flush=True)
            if time.monotonic() + args.interval > end:
                break
            time.sleep(args.interval)   # a sampling interval, not a wait for an event
        proc.stdin.close()
        out = proc.stdout.read().strip().splitlines()
        proc.wait(60)
        proc = None
        counts = json.loads(out[-1][5:]) if out and out[-1].startswith("DONE ") else {}
        first, last = samples[0], samples[-1]
        lo, hi = min(samples), max(samples)
        print("clients: %s" % json.dumps(counts))
        print("RSS first %.1f MB, last %.1f MB, min %.1f MB, max %.1f MB over %d samples"
              % (first, last, lo, hi, len(samples)))
        print("drift: last vs first %+.1f %%, max - min %.1f %% of first"
              % (100.0 * (last - first) / first, 100.0 * (hi - lo) / first))
    finally:
        if proc is not None:
            proc.kill()
        d.stop()


if __name__ == "__main__":
    main()
