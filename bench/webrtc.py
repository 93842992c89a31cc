"""What a WebRTC viewer costs the daemon, and how soon it sees a picture.

    .venv/bin/python bench/webrtc.py [--viewers 1 4] [--seconds 10] [--stream stream1]

A daemon encodes 1280x720@30 (stream2 640x360@15). For each viewer count,
aiortc viewers in a separate process connect over 127.0.0.1 with the API
reference's flow (GET offer, POST answer) and stay for ``--seconds``; the
daemon's CPU in that window against an idle window is the viewers' cost. The
stream is sent as encoded, never re-encoded per viewer, so the cost should
be packetizing, SRTP and sending only. Also printed: time from GET offer to
the first decoded frame, and the frames each viewer decoded per second.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench._daemon import NO_LIMITS, BenchDaemon  # noqa: E402

CONFIG = NO_LIMITS + '[webrtc]\naddresses = ["127.0.0.1"]\nmax_sessions = 64\nmax_sessions_per_address = 64\n'


async def viewers(base, count, seconds, stream):
    """Connect ``count`` viewers, hold them ``seconds``; their first-frame times and fps."""
    import requests
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from rotordream.webrtc.sessions import use_host_addresses
    use_host_addresses(["127.0.0.1"])
    loop = asyncio.get_running_loop()

    async def one():
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        t0 = time.monotonic()
        seen = {"first": None, "frames": 0}
        first = loop.create_future()

        @pc.on("track")
        def on_track(track):
            async def pull():
                while True:
                    try:
                        await track.recv()
                    except Exception:
                        return
                    seen["frames"] += 1
                    if not first.done():
                        first.set_result(time.monotonic() - t0)
            asyncio.ensure_future(pull())
        with requests.Session() as http:
            offer = http.get(base + "/api/webrtc/offer", params={"stream": stream}).json()
            await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            http.post(base + "/api/webrtc/answer", data=json.dumps(
                {"type": "answer", "sdp": pc.localDescription.sdp})).raise_for_status()
        return pc, seen, await asyncio.wait_for(first, 30)

    started = await asyncio.gather(*(one() for _ in range(count)))
    print("READY", flush=True)
    counts = [s["frames"] for _, s, _ in started]
    await asyncio.sleep(seconds)
    fps = [(s["frames"] - c) / seconds for (_, s, _), c in zip(started, counts)]
    for pc, _, _ in started:
        await pc.close()
    return [f for _, _, f in started], fps


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--viewers", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--stream", default="stream1")
    ap.add_argument("--client", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:  # the viewers' own process
        base, count, seconds, stream = args.client
        first, fps = asyncio.run(viewers(base, int(count), float(seconds), stream))
        print(json.dumps({"first": first, "fps": fps}), flush=True)
        return
    d = BenchDaemon(config=CONFIG, settings={"resolution": "1280x720", "fps": 30})
    try:
        print("webrtc bench: %d cores, %s, daemon 1280x720@30, viewers of %s"
              % (os.cpu_count(), time.strftime("%Y-%m-%d"), args.stream))
        idle = d.cpu_percent(args.seconds)
        print("  0 viewers: daemon CPU %.1f %% of one core" % idle, flush=True)
        for n in args.viewers:
            proc = subprocess.Popen([sys.executable, __file__, "--client", d.http, str(n),
                                     str(args.seconds), args.stream],
                                    stdout=subprocess.PIPE, text=True)
            assert proc.stdout.readline().strip() == "READY", "viewers did not start"
            busy = d.cpu_percent(args.seconds * 0.9)  # inside the viewers' window
            result = json.loads(proc.stdout.read().strip().splitlines()[-1])
            proc.wait(60)
            first = sorted(result["first"])
            print("%3d viewers: daemon CPU %.1f %% (+%.1f %% per viewer) | first frame %.2f-%.2f s"
                  " after GET offer | %.1f-%.1f frames/s decoded per viewer"
                  % (n, busy, (busy - idle) / n, first[0], first[-1], min(result["fps"]),
                     max(result["fps"])), flush=True)
    finally:
        d.stop()


if __name__ == "__main__":
    main()
