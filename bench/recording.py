"""What recording costs: daemon CPU with and without recording stream1, and raw remux throughput.

    .venv/bin/python bench/recording.py [--seconds 20] [--resolution 1920x1080] [--fps 30]

1. A daemon at the given size records for ``--seconds`` between two idle
   windows of the same length; the CPU difference is the recorder's cost
   (it never re-encodes, so it should be a few percent of one core).
2. The same recording's access units are remuxed again in-process as fast
   as possible: MB/s and frames/s the writer sustains on this disk.
"""

import argparse
import os
import sys
import tempfile
import time

import requests

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench._daemon import NO_LIMITS, PASSWORD, BenchDaemon  # noqa: E402


def remux_throughput(path, repeat):
    """Re-mux the access units of ``path`` ``repeat`` times into one file as fast as possible."""
    import av
    from rotordream.recording import mp4
    with av.open(path) as c:
        s = c.streams.video[0]
        units = [(b"".join(b"\x00\x00\x00\x01" + n for n in mp4.split_length_prefixed(bytes(p))),
                  int(p.pts * p.time_base * 90000), p.is_keyframe)
                 for p in c.demux(s) if p.size]
        w, h, fps = s.codec_context.width, s.codec_context.height, float(s.average_rate or 30)
    out = os.path.join(tempfile.mkdtemp(prefix="rd-remux-"), "out.mp4")
    t0, c0 = time.perf_counter(), time.process_time()
    writer = mp4.SegmentWriter(out, w, h, fps)
    span = units[-1][1] + int(90000 / fps)
    for r in range(repeat):
        for data, pts, key in units:
            writer.write(data, pts + r * span, key, int(90000 / fps))
    writer.close()
    os.fsync(os.open(out, os.O_RDONLY))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    size = os.path.getsize(out)
    os.unlink(out)
    return len(units) * repeat, size, wall, cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--resolution", default="1920x1080")
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=100, help="copies of the recording remuxed")
    args = ap.parse_args()
    d = BenchDaemon(NO_LIMITS, settings={"resolution": args.resolution, "fps": args.fps})
    auth = ("admin", PASSWORD)
    try:
        idle1 = d.cpu_percent(args.seconds)
        r = requests.post(d.http + "/api/recording/start", json={"name": "bench"}, auth=auth)
        r.raise_for_status()
        busy = d.cpu_percent(args.seconds)
        status = requests.get(d.http + "/api/recording/status", auth=auth).json()["data"]
        requests.post(d.http + "/api/recording/stop", auth=auth).raise_for_status()
        idle2 = d.cpu_percent(args.seconds)
        time.sleep(1)
        entry = requests.get(d.http + "/api/recordings", auth=auth).json()["data"]["recordings"][0]
        path = os.path.join(d.dir, "state", "recordings", entry["id"] + ".mp4")
    finally:
        d.stop()
    idle = (idle1 + idle2) / 2
    print("stream1 %s@%d, %.0f s windows" % (args.resolution, args.fps, args.seconds))
    print("daemon CPU idle %.1f %% / %.1f %%, recording %.1f %% of one core"
          % (idle1, idle2, busy))
    print("recording cost: %.2f %% of one core" % (busy - idle))
    print("recorded %.1f s, %d frames, %.2f MB (%.2f Mbit/s); status bytes while recording %d"
          % (entry["duration"], entry["frames"], entry["size"] / 1e6,
             entry["size"] * 8 / 1e6 / max(entry["duration"], 0.001), status["bytes"]))
    n, size, wall, cpu = remux_throughput(path, args.repeat)
    print("remux throughput (one file, fsync per fragment and at the end): %d frames, %.1f MB in %.3f s = %.0f frames/s, %.1f MB/s "
          "(CPU %.3f s = %.2f ms/frame)" % (n, size / 1e6, wall, n / wall, size / 1e6 / wall,
                                            cpu, 1000 * cpu / n))


if __name__ == "__main__":
    main()
