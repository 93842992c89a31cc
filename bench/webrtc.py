"""What a WebRTC viewer of stream1 costs the daemon, against one RTSP UDP reader.

    .venv/bin/python bench/webrtc.py [--viewers 1 10 30] [--seconds 8]
                                     [--sizes 1280x720 1920x1080] [--clip PATH]

For each stream1 size (30 fps, 4 Mbit/s, from a noisy clip that fills that
rate: the built-in pattern compresses to a quarter of it and would make every
per-packet cost look small), a daemon runs and the script measures its CPU:

- idle (nobody watching);
- with one RTSP reader over UDP (bench/rtsp_client.py, packet level);
- with N aiortc viewers (the API reference's flow, GET offer then POST answer) in a
  second process that receives, decrypts and reassembles but does not decode
  (30 H.264 decoders would take the two cores from the daemon).

Per viewer: (CPU with N viewers - idle) / N, and that against the RTSP reader's
cost. Every WebRTC viewer is paced, keeps a retransmission history and its own
SRTP context; the RTSP reader is one sendto per packet.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
from bench._daemon import NO_LIMITS, BenchDaemon  # noqa: E402

WEBRTC = '[webrtc]\naddresses = ["127.0.0.1"]\nmax_sessions = 64\nmax_sessions_per_address = 64\n'
CLIP_FILTER = "testsrc2=size=1920x1080:rate=30,noise=alls=12:allf=t+u"


def make_clip(path):
    """A 10 s 1080p30 clip noisy enough that stream1 fills 4 Mbit/s (stack notes)."""
    if not os.path.exists(path):
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", CLIP_FILTER,
                        "-t", "10", "-c:v", "libx264", "-preset", "veryfast", "-crf", "30",
                        "-g", "30", "-pix_fmt", "yuv420p", path], check=True)
    return path


async def viewers(base, count, seconds):
    """Connect ``count`` viewers of stream1, hold them ``seconds``; frames/s each received."""
    import queue as queues
    import requests
    import aiortc.rtcrtpreceiver as receiver
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from rotordream.webrtc.sessions import use_host_addresses
    use_host_addresses(["127.0.0.1"])
    frames = {}

    def count_only(loop, input_q, output_q, *_):
        # Instead of aiortc's decoder thread: count the reassembled frames.
        me = threading.get_ident()
        frames[me] = 0
        while True:
            try:
                task = input_q.get()
            except queues.Empty:
                continue
            if task is None:
                return
            frames[me] += 1
    receiver.decoder_worker = count_only

    async def one():
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.on("track", lambda track: None)
        with requests.Session() as http:
            offer = http.get(base + "/api/webrtc/offer", params={"stream": "stream1"}).json()
            await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            http.post(base + "/api/webrtc/answer", data=json.dumps(
                {"type": "answer", "sdp": pc.localDescription.sdp})).raise_for_status()
        return pc

    pcs = await asyncio.gather(*(one() for _ in range(count)))
    deadline = time.monotonic() + 30
    while len(frames) < count or min(frames.values()) == 0:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)   # a benchmark's start-up poll
    print("READY", flush=True)
    before = dict(frames)
    await asyncio.sleep(seconds)   # the measurement window
    fps = [(frames[k] - before.get(k, 0)) / seconds for k in frames]
    for pc in pcs:
        await pc.close()
    return fps


async def rtsp_udp_reader(port, seconds):
    """One packet-counting RTSP reader of stream1 over UDP (an even RTP port and the next);
    RTP packets received per second."""
    import re
    import socket
    from rtsp_client import request
    loop = asyncio.get_running_loop()
    while True:   # an even port whose successor is free too
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        low = rtp.getsockname()[1]
        rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            if low % 2:
                raise OSError("odd")
            rtcp.bind(("127.0.0.1", low + 1))
            break
        except OSError:
            rtp.close()
            rtcp.close()
    count = [0]
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Counter(count), sock=rtp)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    url = "rtsp://127.0.0.1:%d/stream1" % port
    _, sdp = await request(reader, writer, "DESCRIBE %s RTSP/1.0\r\nCSeq: 1\r\n\r\n" % url)
    control = re.findall(rb"a=control:(\S+)", sdp)[-1].decode()
    track = control if control.startswith("rtsp://") else url + "/" + control
    head, _ = await request(reader, writer, "SETUP %s RTSP/1.0\r\nCSeq: 2\r\nTransport: "
                            "RTP/AVP;unicast;client_port=%d-%d\r\n\r\n" % (track, low, low + 1))
    session = re.search(r"Session: ([^;\r]+)", head).group(1)
    await request(reader, writer, "PLAY %s RTSP/1.0\r\nCSeq: 3\r\nSession: %s\r\n\r\n"
                  % (url, session))
    await asyncio.sleep(1.0)   # past the first GOP's burst
    start = count[0]
    await asyncio.sleep(seconds)   # the measurement window
    rate = (count[0] - start) / seconds
    writer.write(("TEARDOWN %s RTSP/1.0\r\nCSeq: 4\r\nSession: %s\r\n\r\n"
                  % (url, session)).encode())
    writer.close()
    transport.close()
    rtcp.close()
    return rate


class _Counter(asyncio.DatagramProtocol):
    def __init__(self, count):
        self.count = count

    def datagram_received(self, data, addr):
        self.count[0] += 1


def rtsp_reader_cost(d, seconds):
    """The daemon's CPU (% of one core) while one RTSP reader takes stream1 over UDP, and
    the RTP packets per second it got."""
    result = {}
    t = threading.Thread(target=lambda: result.update(
        pps=asyncio.run(rtsp_udp_reader(d.rtsp_port, seconds + 1))))
    t.start()
    time.sleep(1.5)   # past SETUP/PLAY and the first GOP burst
    busy = d.cpu_percent(seconds)
    t.join()
    return busy, result["pps"]


def run_size(size, args):
    config = NO_LIMITS + WEBRTC + '[server]\nsource = "file:%s"\n' % args.clip
    d = BenchDaemon(config=config, settings={"resolution": size, "fps": 30,
                                             "stream1-bitrate": 4000})
    rows = []
    try:
        idle = d.cpu_percent(args.seconds)
        rtsp, pps = rtsp_reader_cost(d, args.seconds)
        reader = rtsp - idle
        print("%s: idle %.1f %% | 1 RTSP UDP reader %.1f %% (+%.2f %%), %.0f RTP packets/s"
              % (size, idle, rtsp, reader, pps), flush=True)
        for n in args.viewers:
            proc = subprocess.Popen([sys.executable, __file__, "--client", d.http, str(n),
                                     str(args.seconds)], stdout=subprocess.PIPE, text=True)
            assert proc.stdout.readline().strip() == "READY", "viewers did not start"
            busy = d.cpu_percent(args.seconds * 0.9)   # inside the viewers' window
            fps = json.loads(proc.stdout.read().strip().splitlines()[-1])
            proc.wait(60)
            per = (busy - idle) / n
            rows.append((size, n, busy, per, per / reader if reader > 0 else float("nan"),
                         min(fps), max(fps)))
            print("%s %3d viewers: daemon %.1f %% | +%.2f %% per viewer = %.1f x one RTSP UDP "
                  "reader | %.1f-%.1f frames/s received each" % rows[-1], flush=True)
    finally:
        d.stop()
    return idle, rtsp, reader, pps, rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--viewers", type=int, nargs="+", default=[1, 10, 30])
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--sizes", nargs="+", default=["1280x720", "1920x1080"])
    ap.add_argument("--clip", default="/tmp/rotordream-bench-clip.mp4")
    ap.add_argument("--client", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:   # the viewers' own process
        base, count, seconds = args.client
        print(json.dumps(asyncio.run(viewers(base, int(count), float(seconds)))), flush=True)
        return
    make_clip(args.clip)
    print("webrtc fan-out bench: %d cores, %s, stream1 30 fps 4 Mbit/s from %s"
          % (os.cpu_count(), time.strftime("%Y-%m-%d"), args.clip), flush=True)
    table = ["| stream1 | viewers | daemon CPU | per viewer | per viewer / RTSP UDP reader "
             "| frames/s received each |", "|---|---|---|---|---|---|"]
    for size in args.sizes:
        idle, rtsp, reader, pps, rows = run_size(size, args)
        table.append("| %s | 0 | %.1f %% | | | |" % (size, idle))
        table.append("| %s | 1 RTSP UDP reader | %.1f %% | +%.2f %% (%.0f packets/s) | 1 | |"
                     % (size, rtsp, reader, pps))
        for size_, n, busy, per, ratio, lo, hi in rows:
            table.append("| %s | %d | %.1f %% | +%.2f %% | %.1f | %.1f-%.1f |"
                         % (size_, n, busy, per, ratio, lo, hi))
    print("\n".join(table))


if __name__ == "__main__":
    main()
