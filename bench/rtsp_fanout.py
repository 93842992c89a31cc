#!/usr/bin/env python3
"""RTSP fan-out: N clients of stream1 (1080p30, 4 Mbit/s) over UDP and TCP, against
RotorDream and against gst-rtsp-server (shared factory) in the same run.

Prints per N: server CPU %, marginal CPU per client, RTP loss, capture-to-receive latency
p50/p99 (from RTCP SR), time from connect to the first complete keyframe.

    .venv/bin/python bench/rtsp_fanout.py [--clients 1 10 50 100] [--seconds 8]
"""

import argparse
import asyncio
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _daemon import BenchDaemon, free_port  # noqa: E402
import rtsp_client  # noqa: E402


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")


def measure(name, pid, port, transport, counts, seconds, results):
    for n in counts:
        t0, c0 = time.monotonic(), cpu_seconds(pid)
        stats = asyncio.run(rtsp_client.run("127.0.0.1", port, "stream1", transport, n,
                                            seconds))
        cpu = (cpu_seconds(pid) - c0) / (time.monotonic() - t0) * 100
        packets = sum(s.packets for s in stats)
        lost = sum(s.lost for s in stats)
        lat = [v for s in stats for v in s.latencies[30:]]
        first = [s.first_keyframe * 1000 for s in stats if s.first_keyframe is not None]
        results[(name, transport, n)] = cpu
        print("%-11s %s N=%-4d CPU %5.1f%%  loss %.3f%% (%d pkts)  latency p50 %.1f p99 %.1f ms"
              "  first keyframe p50 %.0f ms max %.0f ms (%d/%d got one)"
              % (name, transport, n, cpu, 100.0 * lost / max(1, packets + lost), packets,
                 pct(lat, .5), pct(lat, .99), pct(first, .5), max(first or [float("nan")]),
                 len(first), n), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 10, 50, 100])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--no-gst", action="store_true")
    args = parser.parse_args()
    print("rtsp fan-out bench: %d cores, %s, clients in one asyncio process on the same machine"
          % (os.cpu_count(), time.strftime("%Y-%m-%d")))
    results = {}
    d = BenchDaemon(config="[rtsp]\nmax_sessions = 400\nmax_sessions_per_address = 400\n",
                    settings={"resolution": "1920x1080", "fps": 30, "stream1-bitrate": 4000})
    try:
        for transport in ("udp", "tcp"):
            measure("rotordream", d.proc.pid, d.rtsp_port, transport, args.clients,
                    args.seconds, results)
    finally:
        d.stop()
    if not args.no_gst and os.path.exists("/usr/bin/python3"):
        port = free_port()
        gst = subprocess.Popen(["/usr/bin/python3", os.path.join(os.path.dirname(__file__),
                                                                 "gst_server.py"), str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            if gst.stdout.readline().strip() == "ready":
                for transport in ("udp", "tcp"):
                    measure("gst-rtsp", gst.pid, port, transport, args.clients, args.seconds,
                            results)
        finally:
            gst.terminate()
            gst.wait(10)
    lo, hi = min(args.clients), max(args.clients)
    for transport in ("udp", "tcp"):
        line = []
        for name in ("rotordream", "gst-rtsp"):
            if (name, transport, hi) in results and hi > lo:
                marginal = (results[(name, transport, hi)] - results[(name, transport, lo)]) / (
                    hi - lo)
                line.append("%s %.2f%%/client" % (name, marginal))
        print("marginal CPU per client (%s, N=%d..%d): %s" % (transport, lo, hi, ", ".join(line)))


if __name__ == "__main__":
    main()
