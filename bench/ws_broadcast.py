#!/usr/bin/env python3
"""WebSocket broadcast: time from one client's change to receipt by all N clients,
and sustained changes per second with every client receiving.

    .venv/bin/python bench/ws_broadcast.py [--clients 100 500] [--changes 1000] [--client node]

p99 needs enough samples to mean anything: of 100 changes it is the slowest
one, so the default is 1000 (p99 is then the 10th slowest) and the maximum is
printed beside it. 100 unmeasured warm-up changes come first. The Node client
also checks the reference's batching tip: three keys in one message against
three messages, the time until every client has all three.

``--client python`` (default) runs the clients with the `websockets` package in
this process; ``--client node`` runs the same measurement in Node.js
(bench/ws_clients.mjs, Node's built-in WebSocket), a client cheap enough that
500 connections measure the server more than the client.
"""

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _daemon import PASSWORD, BenchDaemon  # noqa: E402


WARMUP = 100  # unmeasured changes first: JIT and cold caches cost up to 15 ms each


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


async def run(url, n, changes):
    readers = [await websockets.connect(url, max_queue=None) for _ in range(n)]
    writer = await websockets.connect(url)
    await writer.send(json.dumps({"username": "admin", "password": PASSWORD}))
    await writer.recv()
    latencies = []

    async def change(value):
        """Send one change; the time until every reader has it, in ms."""
        t0 = time.perf_counter()
        await writer.send(json.dumps({"brightness": value}))

        async def wait(ws):
            while True:
                msg = json.loads(await ws.recv())
                if msg.get("brightness") == value:
                    return time.perf_counter()
        done = await asyncio.gather(*(wait(ws) for ws in readers))
        await writer.recv()
        return (max(done) - t0) * 1000
    for i in range(WARMUP + changes):
        latency = await change(i % 99 + 1)  # 1..99, each differs from the last
        if i >= WARMUP:
            latencies.append(latency)
    # Sustained: send changes back to back for 3 s, then see that everyone got them all.
    sent = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 3:
        sent += 1
        await writer.send(json.dumps({"contrast": sent % 100}))
        await writer.recv()
    final = sent % 100

    async def until_final(ws):
        while json.loads(await ws.recv()).get("contrast") != final:
            pass
    await asyncio.wait_for(asyncio.gather(*(until_final(ws) for ws in readers)), 60)
    elapsed = time.perf_counter() - t0
    for ws in readers + [writer]:
        await ws.close()
    return latencies, sent / elapsed


def run_node(url, n, changes):
    """The Node.js clients' figures (dict: p50, p99, max, rate, batch_one, batch_three)."""
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is not installed")
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ws_clients.mjs")
    out = subprocess.run([node, "--experimental-websocket", "--no-warnings", script, url,
                          PASSWORD, str(n), str(changes)], capture_output=True, text=True,
                         timeout=600, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--client", choices=["python", "node"], default="python")
    args = parser.parse_args()
    d = BenchDaemon(settings={"resolution": "1280x720", "fps": 30})
    try:
        url = "ws://127.0.0.1:%d/api/v1" % d.http_port
        print("ws broadcast bench: %d cores, %s, %s clients, daemon encoding 720p30 meanwhile"
              % (os.cpu_count(), time.strftime("%Y-%m-%d"), args.client))
        for n in args.clients:
            if args.client == "node":
                result = run_node(url, n, args.changes)
                p50, p99, worst, rate = (result[k] for k in ("p50", "p99", "max", "rate"))
            else:
                lat, rate = asyncio.run(run(url, n, args.changes))
                p50, p99, worst = pct(lat, 0.5), pct(lat, 0.99), max(lat)
            print("%4d clients: change->all received p50 %.1f ms p99 %.1f ms max %.1f ms "
                  "(%d changes) | sustained %.0f changes/s to all"
                  % (n, p50, p99, worst, args.changes, rate), flush=True)
            if args.client == "node":
                print("     three keys to all: one message p50 %.1f ms, three messages p50 %.1f ms"
                      % (result["batch_one"], result["batch_three"]), flush=True)
    finally:
        d.stop()


if __name__ == "__main__":
    main()
