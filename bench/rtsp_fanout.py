#!/usr/bin/env python3
"""RTSP fan-out at equal bitrate: RotorDream against gst-rtsp-server, one after the other.

Both servers are fed the same noisy 1080p30 clip (made with ffmpeg unless ``--clip`` names
one) and encode it at ``--bitrate`` kbit/s: RotorDream from ``--source file:CLIP``,
gst-rtsp-server (bench/gst_server.py, shared media) with x264 CBR. Packet-counting readers
(bench/rtsp_client.py) spread over ``--procs`` processes join ``--ramp-ms`` apart over UDP
and over TCP. For each N the server's CPU is read from /proc over a window of ``--seconds``
after every reader has joined and settled, and printed with: packets/s delivered (in all
and per reader, with the bitrate per reader so equal load is visible), loss from sequence
gaps, silent readers, first packet and first complete keyframe p50/p99 (from each
reader's start), capture-to-receive latency p50/p99 (RTCP SR), the server's RSS, and the
reader processes' CPU. Then the marginal cost per 1,000 packets/s delivered,
(CPU at N - CPU at the smallest N) / (extra packets/s) x 1000, per server and transport,
and RotorDream's cost over gst-rtsp-server's; ``--runs K`` repeats and gives ranges.
``--together`` adds RotorDream series with every reader joining at once (first packet).

    .venv/bin/python bench/rtsp_fanout.py --runs 1 --seconds 4 --udp 1 20 --tcp 1 20  # check
    .venv/bin/python bench/rtsp_fanout.py --runs 3 --together  # all of it, ~27 min, quiet machine

Every row says when the machine was saturated (then nothing in it is comparable), when a
reader process was near 100 % CPU, and when a server exited (gst-rtsp-server is restarted;
the step is left out of the costs).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _daemon import NO_LIMITS, BenchDaemon, cpu_seconds, free_port, rss_mb  # noqa: E402

SERVERS = ("rotordream", "gst")
LABEL = {"rotordream": "RotorDream", "gst": "gst-rtsp"}
START_MARGIN = 1.5   # s from spawning the reader processes to the first join
READER_BUSY = 90.0   # % of a core: above this a reader process limits what is measured
HOST_BUSY = 95.0     # % of every core: above this the servers were starved
LOAD_SPREAD = 0.15   # per-reader bitrates further apart than this are not equal load
PHASES = ("connect", "describe", "setup", "play")  # the RTSP join, step by step


def pct(values, p):
    """The ``p`` quantile (0..1) of ``values``, nan when empty."""
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")


def host_cpu():
    """(busy, total) jiffies of the whole machine."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def udp_rcvbuf_errors():
    """The kernel's count of UDP datagrams dropped for a full receive buffer (this netns)."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    return int(rows[1][rows[0].index("RcvbufErrors")])


def make_clip(args):
    """The clip to feed both servers (made once and kept in the temp dir) and its Annex B copy."""
    clip = args.clip
    if not clip:
        clip = os.path.join(tempfile.gettempdir(), "rotordream-bench-clip-%dp%d-noise%d-%ds.mp4"
                            % (args.height, args.fps, args.noise, args.clip_seconds))
        if not os.path.exists(clip):
            print("making %s (ffmpeg testsrc2 + noise, %d s)" % (clip, args.clip_seconds),
                  flush=True)
            subprocess.run(
                ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                 "testsrc2=size=%dx%d:rate=%d,noise=alls=%d:allf=t+u"
                 % (args.width, args.height, args.fps, args.noise),
                 "-t", str(args.clip_seconds), "-c:v", "libx264", "-preset", "veryfast",
                 "-crf", "30", "-g", str(args.fps), "-pix_fmt", "yuv420p", clip + ".part.mp4"],
                check=True)
            os.rename(clip + ".part.mp4", clip)
    # gst_server.py loops an H.264 elementary stream (multifilesrc); no re-encoding.
    annexb = os.path.join(tempfile.gettempdir(), "rotordream-bench-%d-%s.h264"
                          % (os.getpid(), os.path.basename(clip)))
    done = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", clip,
                           "-an", "-c:v", "copy", "-bsf:v", "h264_mp4toannexb", "-f", "h264",
                           annexb])
    if done.returncode:
        raise SystemExit("%s: the clip must be H.264 (gst-rtsp-server loops it as an "
                         "elementary stream)" % clip)
    return os.path.abspath(clip), annexb


class RotorDream:
    """The daemon under test, fed the clip, with session limits raised for the bench."""

    name = "rotordream"

    def __init__(self, args, clip, annexb):
        most = max(args.udp + args.tcp + [1]) + 20
        config = NO_LIMITS + ("[rtsp]\nmax_sessions = %d\nmax_sessions_per_address = %d\n"
                              "reserved_sessions = 0\n" % (most, most))
        self.daemon = BenchDaemon(
            config=config, extra=["--source", "file:" + clip],
            settings={"resolution": "%dx%d" % (args.width, args.height), "fps": args.fps,
                      "stream1-bitrate": args.bitrate})
        self.pid, self.port = self.daemon.proc.pid, self.daemon.rtsp_port

    def alive(self):
        """Whether the server is still running."""
        return self.daemon.proc.poll() is None

    def stop(self):
        """Stop the daemon."""
        self.daemon.stop()


class GstServer:
    """bench/gst_server.py (Debian's python3 with gi) fed the same clip."""

    name = "gst"

    def __init__(self, args, clip, annexb):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(HERE, "gst_server.py"), str(self.port),
             "--clip", annexb, "--bitrate", str(args.bitrate), "--width", str(args.width),
             "--height", str(args.height), "--fps", str(args.fps)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("gst_server.py did not start (exit %s)" % self.proc.poll())
        self.pid = self.proc.pid

    def alive(self):
        """Whether the server is still running."""
        return self.proc.poll() is None

    def stop(self):
        """Stop the server."""
        if self.alive():
            self.proc.terminate()
        self.proc.wait(10)


def sleep_until(t):
    """Wait for monotonic time ``t`` (a measuring window's edge)."""
    time.sleep(max(0.0, t - time.monotonic()))


def step(server, transport, n, ramp, args):
    """N readers join ``ramp`` s apart; measure one window; return the row's figures."""
    procs = max(1, min(args.procs, n))
    t0 = time.monotonic() + START_MARGIN
    w0 = t0 + (n - 1) * ramp + args.settle
    w1 = w0 + args.seconds
    base = {"port": server.port, "transport": transport, "t0": t0, "ramp": ramp,
            "w0": w0, "w1": w1, "end": w1 + 0.3, "rcvbuf": args.rcvbuf}
    readers = [subprocess.Popen(
        [sys.executable, os.path.join(HERE, "rtsp_client.py"),
         json.dumps(dict(base, indices=list(range(p, n, procs))))],
        stdout=subprocess.PIPE, text=True) for p in range(procs)]
    sleep_until(w0)
    c0, h0, d0 = cpu_seconds(server.pid), host_cpu(), udp_rcvbuf_errors()
    r0 = [cpu_seconds(p.pid) for p in readers]
    sleep_until(w1)
    t = time.monotonic() - w0
    try:
        cpu = 100.0 * (cpu_seconds(server.pid) - c0) / t
        rss = rss_mb(server.pid)
    except OSError:
        cpu = rss = float("nan")
    h1, drops = host_cpu(), udp_rcvbuf_errors() - d0
    reader_cpu = []
    for p, c in zip(readers, r0):
        try:
            reader_cpu.append(100.0 * (cpu_seconds(p.pid) - c) / t)
        except OSError:
            reader_cpu.append(float("nan"))
    rows, latencies = [], []
    for p in readers:
        out, _ = p.communicate(timeout=60)
        if p.returncode == 0 and out.strip():
            got = json.loads(out.strip().splitlines()[-1])
            rows += got["readers"]
            latencies += got["latencies"]
    secs = args.seconds
    ok = [r for r in rows if not r["error"]]
    packets = sum(r["win_packets"] for r in rows)
    lost = sum(r["win_lost"] for r in rows)
    live = [r for r in ok if r["win_packets"]]
    firsts = [r["first"] * 1000 for r in rows if r["first"] is not None]
    keys = [r["key"] * 1000 for r in rows if r["key"] is not None]
    phases = {k: pct([r["phases"][k] * 1000 for r in rows if r["phases"].get(k) is not None], .5)
              for k in PHASES}
    return {
        "server": server.name, "transport": transport, "n": n, "ramp_ms": round(ramp * 1000, 3),
        "cpu": cpu, "rss": rss, "pps": packets / secs,
        "pps_each": sum(r["win_packets"] for r in live) / secs / max(1, len(live)),
        "kbps_each": sum(r["win_octets"] for r in live) * 8 / 1000 / secs / max(1, len(live)),
        "bytes_per_packet": sum(r["win_octets"] for r in live) / max(1, packets),
        "lost": lost, "lost_pct": 100.0 * lost / max(1, packets + lost),
        "lost_since_join": sum(r["lost"] for r in rows),
        "silent": n - len(live), "errors": len(rows) - len(ok) + (n - len(rows)),
        "error_sample": next((r["error"] for r in rows if r["error"]), None),
        "first_p50": pct(firsts, .5), "first_p99": pct(firsts, .99),
        "first_at_key": sum(1 for r in rows if r["first_at_key"]), "got_first": len(firsts),
        "phases_p50": phases,
        "key_p50": pct(keys, .5), "key_p99": pct(keys, .99), "got_key": len(keys),
        "lat_p50": pct(latencies, .5), "lat_p99": pct(latencies, .99),
        "reader_cpu": max(reader_cpu), "procs": procs,
        "host_busy": 100.0 * (h1[0] - h0[0]) / max(1, h1[1] - h0[1]) * os.cpu_count(),
        "udp_drops": drops, "died": not server.alive(),
    }


def show(row):
    """Print one measured row."""
    print("%-10s %-3s N=%-4d ramp %2.0f ms  CPU %5.1f%%  %7.0f pkt/s (%3.0f/reader, %4.0f kbit/s, "
          "%4.0f B/pkt)  lost %d (%.3f%%; %d since joining)  silent %d  "
          "first pkt p50/p99 %.0f/%.0f ms (%d/%d at a keyframe)  keyframe p50/p99 %.0f/%.0f ms  "
          "latency p50/p99 %.1f/%.1f ms  "
          "RSS %.0f MB  readers %d procs max %.0f%% CPU  host %.0f%%  UDP rcvbuf drops (host) %d"
          % (LABEL[row["server"]], row["transport"], row["n"], row["ramp_ms"], row["cpu"],
             row["pps"], row["pps_each"], row["kbps_each"], row["bytes_per_packet"], row["lost"],
             row["lost_pct"], row["lost_since_join"], row["silent"], row["first_p50"],
             row["first_p99"],
             row["first_at_key"], row["got_first"], row["key_p50"], row["key_p99"],
             row["lat_p50"], row["lat_p99"], row["rss"], row["procs"], row["reader_cpu"],
             row["host_busy"], row["udp_drops"]), flush=True)
    print("    join p50: " + ", ".join("%s done at %.0f ms" % (k, row["phases_p50"][k])
                                     for k in PHASES), flush=True)
    if row["errors"]:
        print("    %d readers failed, e.g. %s" % (row["errors"], row["error_sample"]), flush=True)
    if row["reader_cpu"] >= READER_BUSY:
        print("    reader processes near 100 %% CPU (%.0f %%): the readers limit this row; "
              "raise --procs" % row["reader_cpu"], flush=True)
    if row["died"]:
        print("    the server exited during this step", flush=True)
    if row["host_busy"] >= HOST_BUSY * os.cpu_count():
        print("    the machine was saturated (%.0f %% of %d cores busy): this row's CPU and "
              "delivery are not comparable" % (row["host_busy"], os.cpu_count()), flush=True)


def series(args):
    """(server, transport, ramp in s, counts) in the order they run."""
    ramp = args.ramp_ms / 1000.0
    out = []
    for name in args.servers:
        todo = [(name, "udp", ramp, args.udp), (name, "tcp", ramp, args.tcp)]
        if args.together and name == "rotordream":
            todo += [(name, "udp", 0.0, args.udp), (name, "tcp", 0.0, args.tcp)]
        out += [t for t in todo if t[3]]
    return out


def estimate(args):
    """Expected duration of the whole run in seconds."""
    steps = sum(START_MARGIN + (n - 1) * ramp + args.settle + args.seconds + 1.5
                for _, _, ramp, counts in series(args) for n in counts)
    return args.runs * (steps + 15 * len(args.servers))


def marginal(rows):
    """{(server, transport, ramp, N): cost per 1,000 packets/s} against the smallest N."""
    out = {}
    groups = {}
    for r in rows:
        groups.setdefault((r["server"], r["transport"], r["ramp_ms"]), []).append(r)
    for key, group in groups.items():
        base = min(group, key=lambda r: r["n"])
        for r in group:
            extra = r["pps"] - base["pps"]
            if r is not base and extra > 0:
                out[key + (r["n"],)] = (r["cpu"] - base["cpu"]) / extra * 1000
    return out


def slopes(rows):
    """{(server, transport, ramp): least-squares CPU per 1,000 packets/s over every N}."""
    groups, out = {}, {}
    for r in rows:
        if r["cpu"] == r["cpu"]:
            groups.setdefault((r["server"], r["transport"], r["ramp_ms"]), []).append(r)
    for key, group in groups.items():
        if len(group) < 2:
            continue
        mx = sum(r["pps"] for r in group) / len(group)
        my = sum(r["cpu"] for r in group) / len(group)
        sxx = sum((r["pps"] - mx) ** 2 for r in group)
        if sxx > 0:
            out[key] = sum((r["pps"] - mx) * (r["cpu"] - my) for r in group) / sxx * 1000
    return out


def span(values, fmt):
    """``fmt`` of the single value, or "lo to hi" over runs."""
    values = [v for v in values if v == v]
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    return fmt % lo if fmt % lo == fmt % hi else "%s to %s" % (fmt % lo, fmt % hi)


def check_load(runs, args):
    """Print each server's delivered bitrate and packets/s per reader at the smallest N."""
    print("\n== load per reader at the smallest N (asked: %d kbit/s) ==" % args.bitrate)
    for transport, counts in (("udp", args.udp), ("tcp", args.tcp)):
        if not counts:
            continue
        kbps = {}
        for name in args.servers:
            rs = [r for rows in runs for r in rows if r["server"] == name and
                  r["transport"] == transport and r["n"] == counts[0] and
                  r["ramp_ms"] == args.ramp_ms]
            kbps[name] = [r["kbps_each"] for r in rs]
            print("%-10s %s N=%d: %s kbit/s, %s packets/s, %s bytes/packet per reader"
                  % (LABEL[name], transport.upper(), counts[0], span(kbps[name], "%.0f"),
                     span([r["pps_each"] for r in rs], "%.0f"),
                     span([r["bytes_per_packet"] for r in rs], "%.0f")))
        every = [v for vs in kbps.values() for v in vs]
        if every and (min(every) < (1 - LOAD_SPREAD) * args.bitrate or
                      max(every) - min(every) > LOAD_SPREAD * max(every)):
            print("    NOT equal load over %s: per-reader bitrates %s kbit/s (a starved "
                  "server, or a clip that does not fill %d kbit/s: see --noise)"
                  % (transport.upper(), span(every, "%.0f"), args.bitrate))


def report(runs, args):
    """Costs, ratios and ranges over the runs (rows where the server exited left out)."""
    died = [r for rows in runs for r in rows if r["died"]]
    if died:
        print("\nthe server exited during %d step(s), left out below: %s" % (len(died), ", ".join(
            "%s %s N=%d" % (LABEL[r["server"]], r["transport"], r["n"]) for r in died)))
    runs = [[r for r in rows if not r["died"]] for rows in runs]
    check_load(runs, args)
    costs = [marginal(rows) for rows in runs]
    ramp = args.ramp_ms
    print("\n== marginal CPU per 1,000 packets/s delivered (%% of one core), against the smallest "
          "N; %d run(s), ranges over runs ==" % len(runs))
    for transport, counts in (("udp", args.udp), ("tcp", args.tcp)):
        for n in counts[1:] if counts else []:
            parts = []
            for name in args.servers:
                parts.append("%s %s" % (LABEL[name], span(
                    [c.get((name, transport, ramp, n), float("nan")) for c in costs], "%.3f")))
            if set(SERVERS) <= set(args.servers):
                ratios = [c[("rotordream", transport, ramp, n)] / c[("gst", transport, ramp, n)]
                          for c in costs if ("rotordream", transport, ramp, n) in c and
                          ("gst", transport, ramp, n) in c and c[("gst", transport, ramp, n)] > 0]
                parts.append("RotorDream/gst %s" % span(ratios, "%.2f"))
            print("%s N=%d: %s" % (transport.upper(), n, ", ".join(parts)))
    fits = [slopes(rows) for rows in runs]
    for transport in ("udp", "tcp"):
        parts = []
        for name in args.servers:
            parts.append("%s %s" % (LABEL[name], span(
                [f.get((name, transport, ramp), float("nan")) for f in fits], "%.3f")))
        if set(SERVERS) <= set(args.servers):
            parts.append("RotorDream/gst %s" % span(
                [f[("rotordream", transport, ramp)] / f[("gst", transport, ramp)] for f in fits
                 if ("rotordream", transport, ramp) in f and ("gst", transport, ramp) in f and
                 f[("gst", transport, ramp)] > 0], "%.2f"))
        print("%s, least-squares slope over every N: %s" % (transport.upper(), ", ".join(parts)))
    print("\n== per N over runs ==")
    keys = []
    for rows in runs:
        for r in rows:
            k = (r["server"], r["transport"], r["ramp_ms"], r["n"])
            if k not in keys:
                keys.append(k)
    for k in keys:
        rs = [r for rows in runs for r in rows
              if (r["server"], r["transport"], r["ramp_ms"], r["n"]) == k]
        print("%-10s %-3s ramp %2.0f ms N=%-4d CPU %s %%  pkt/s %s (%s/reader, %s kbit/s)  "
              "lost %s (%s since joining)  silent %s  first pkt p50 %s ms p99 %s ms  "
              "keyframe p50 %s ms  RSS %s MB"
              % (LABEL[k[0]], k[1], k[2], k[3], span([r["cpu"] for r in rs], "%.1f"),
                 span([r["pps"] for r in rs], "%.0f"), span([r["pps_each"] for r in rs], "%.0f"),
                 span([r["kbps_each"] for r in rs], "%.0f"), span([r["lost"] for r in rs], "%d"),
                 span([r["lost_since_join"] for r in rs], "%d"),
                 span([r["silent"] for r in rs], "%d"), span([r["first_p50"] for r in rs], "%.0f"),
                 span([r["first_p99"] for r in rs], "%.0f"),
                 span([r["key_p50"] for r in rs], "%.0f"), span([r["rss"] for r in rs], "%.0f")))
    busy = [r for rows in runs for r in rows if r["reader_cpu"] >= READER_BUSY]
    if busy:
        print("\nreader processes were near 100 %% CPU in %d row(s): those rows measure the "
              "readers too; raise --procs" % len(busy))
    starved = [r for rows in runs for r in rows if r["host_busy"] >= HOST_BUSY * os.cpu_count()]
    if starved:
        print("\nthe machine was saturated in %d of %d rows: run again on a quiet machine"
              % (len(starved), sum(len(rows) for rows in runs)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--udp", type=int, nargs="*", default=[1, 50, 100, 200, 300],
                        help="reader counts over UDP")
    parser.add_argument("--tcp", type=int, nargs="*", default=[1, 50, 100, 200, 300, 500],
                        help="reader counts over TCP")
    parser.add_argument("--clients", type=int, nargs="+",
                        help="the same reader counts over UDP and TCP (the older option)")
    parser.add_argument("--max", type=int, help="leave out counts above this")
    parser.add_argument("--seconds", type=float, default=8, help="measuring window")
    parser.add_argument("--settle", type=float, default=2,
                        help="seconds after the last join before the window")
    parser.add_argument("--ramp-ms", type=float, default=20,
                        help="between two readers' joins (gst-rtsp-server 1.22 aborts when "
                             "dozens SETUP at once)")
    parser.add_argument("--together", action="store_true",
                        help="also RotorDream with every reader joining at once")
    parser.add_argument("--procs", type=int, default=2, help="reader processes")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--servers", nargs="+", choices=SERVERS, default=list(SERVERS))
    parser.add_argument("--no-gst", action="store_true", help="RotorDream only")
    parser.add_argument("--clip", help="H.264 clip to feed both servers (default: made)")
    parser.add_argument("--clip-seconds", type=int, default=10)
    parser.add_argument("--noise", type=int, default=12, help="ffmpeg noise strength of the clip")
    parser.add_argument("--bitrate", type=int, default=4000, help="stream1 kbit/s, both servers")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--rcvbuf", type=int, default=1 << 20,
                        help="readers' UDP receive buffer (0: the kernel's default), so that "
                             "loss is the server's, not a full reader socket")
    args = parser.parse_args()
    # Hundreds of readers, and the servers started from here, need more than 1,024 descriptors.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.clients:
        args.udp = args.tcp = args.clients
    if args.no_gst:
        args.servers = ["rotordream"]
    if args.max:
        args.udp = [n for n in args.udp if n <= args.max]
        args.tcp = [n for n in args.tcp if n <= args.max]
    args.udp, args.tcp = sorted(set(args.udp)), sorted(set(args.tcp))
    clip, annexb = make_clip(args)
    # The daemon runs from the working tree: say which code was measured.
    head = subprocess.run(["git", "-C", HERE, "log", "-1", "--format=%h"], capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", HERE, "status", "--porcelain", "--", "../rotordream"],
                           capture_output=True, text=True).stdout.strip()
    print("rotordream at %s%s" % (head or "?", " with local changes" if dirty else ""))
    print("rtsp fan-out bench: %d cores, %s, %s; %s at %d kbit/s %dx%d@%d; UDP N=%s, TCP N=%s; "
          "ramp %g ms%s; %d reader processes; %g s windows; %d run(s), about %.0f min"
          % (os.cpu_count(), time.strftime("%Y-%m-%d %H:%M"), os.uname().release,
             os.path.basename(clip), args.bitrate, args.width, args.height, args.fps,
             args.udp, args.tcp, args.ramp_ms, " (+ together)" if args.together else "",
             args.procs, args.seconds, args.runs, estimate(args) / 60), flush=True)
    kinds = {"rotordream": RotorDream, "gst": GstServer}
    runs = []
    try:
        for run in range(args.runs):
            print("-- run %d --" % (run + 1), flush=True)
            rows = []
            for name in args.servers:
                server = kinds[name](args, clip, annexb)
                try:
                    for _, transport, ramp, counts in [s for s in series(args) if s[0] == name]:
                        for n in counts:
                            if not server.alive():
                                server.stop()
                                server = kinds[name](args, clip, annexb)
                            row = step(server, transport, n, ramp, args)
                            rows.append(row)
                            show(row)
                            time.sleep(1)  # the previous readers' TEARDOWNs are handled
                finally:
                    server.stop()
            runs.append(rows)
    finally:
        os.unlink(annexb)
    report(runs, args)


if __name__ == "__main__":
    main()
