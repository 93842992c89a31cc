"""Service under attack: a logged-in viewer and /api/health while anonymous clients hog.

A default daemon (default limits; only the admin password set) on loopback. Phase 1
(baseline): a logged-in RTSP viewer (TCP-interleaved, Basic) plays and /api/health is
polled every 20 ms. Phase 2 (attack), from other loopback addresses, all at once:

- anonymous clients on 127.0.0.2-5 holding every RTSP slot they can (SETUP without PLAY,
  re-tried every second), RTSP-over-HTTP GET halves without a POST and WebRTC offers;
- 200 pipelined DESCRIBEs with right Basic credentials from 127.0.0.6, and 200 with
  wrong ones (a new user name each) from 127.0.0.8;
- a 100 MB chunked POST to /api/login from 127.0.0.7;

while a second logged-in viewer joins. Prints per phase: the viewers' largest gap between
frames, /api/health p50/p99/max, what the attackers got, and the daemon's CPU and RSS.

    .venv/bin/python bench/attack.py [--seconds 10]
"""

import argparse
import asyncio
import base64
import os
import re
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _daemon import PASSWORD, BenchDaemon  # noqa: E402

HOST = "127.0.0.1"
DEFAULTS = "[webrtc]\naddresses = [\"127.0.0.1\"]\n"  # nothing else: the default limits


def pct(values, p):
    """The p-th percentile of ``values`` (None when empty)."""
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def rss_mb(pid):
    """Resident memory of ``pid`` in MB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


async def rtsp_request(reader, writer, text):
    """Send one request; (status, head, body) of its answer, skipping interleaved data."""
    writer.write(text.encode())
    while True:
        first = await reader.readexactly(1)
        if first == b"$":
            _, n = struct.unpack("!BH", await reader.readexactly(3))
            await reader.readexactly(n)
            continue
        head = first + await reader.readuntil(b"\r\n\r\n")
        m = re.search(rb"Content-Length: *(\d+)", head, re.I)
        body = await reader.readexactly(int(m.group(1))) if m else b""
        return int(head.split()[1]), head.decode("latin-1"), body


class Viewer:
    """A logged-in RTSP viewer over TCP that records when each frame ends."""

    def __init__(self, port, name):
        self.port, self.name = port, name
        self.frames = []
        self.status = None
        self.t_start = None

    async def run(self, stop):
        auth = base64.b64encode(b"admin:" + PASSWORD.encode()).decode()
        url = "rtsp://%s:%d/stream1" % (HOST, self.port)
        self.t_start = time.monotonic()
        reader, writer = await asyncio.open_connection(HOST, self.port)
        cred = "Authorization: Basic %s\r\n" % auth
        status, _, sdp = await rtsp_request(
            reader, writer, "DESCRIBE %s RTSP/1.0\r\nCSeq: 1\r\n%s\r\n" % (url, cred))
        self.status = "DESCRIBE %d" % status
        if status != 200:
            writer.close()
            return
        control = re.findall(rb"a=control:(\S+)", sdp)[-1].decode()
        track = control if control.startswith("rtsp://") else url + "/" + control
        status, head, _ = await rtsp_request(
            reader, writer, "SETUP %s RTSP/1.0\r\nCSeq: 2\r\n%sTransport: "
            "RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n" % (track, cred))
        self.status = "SETUP %d" % status
        if status != 200:
            writer.close()
            return
        session = re.search(r"Session: *([^;\r]+)", head).group(1)
        await rtsp_request(reader, writer, "PLAY %s RTSP/1.0\r\nCSeq: 3\r\n%sSession: %s\r\n\r\n"
                           % (url, cred, session))
        while not stop.is_set():
            first = await reader.readexactly(1)
            if first != b"$":
                await reader.readuntil(b"\r\n\r\n")
                continue
            ch, n = struct.unpack("!BH", await reader.readexactly(3))
            data = await reader.readexactly(n)
            if ch == 0 and len(data) > 1 and data[1] & 0x80:
                self.frames.append(time.monotonic())
        writer.close()

    def largest_gap(self, t0, t1):
        """The longest time (ms) inside [t0, t1] with no frame, counted from t0 (or the
        viewer's first frame, if later) to t1; None if it never got a frame."""
        if not self.frames:
            return None
        start = max(t0, self.frames[0])
        times = [start] + [t for t in self.frames if start < t < t1] + [t1]
        return round(1000 * max(b - a for a, b in zip(times, times[1:])), 1)


inflight = [None]  # when the unanswered health poll was sent


async def poll_health(port, stop, out):
    """GET /api/health every 20 ms on one keep-alive connection; (time, latency) pairs."""
    reader, writer = await asyncio.open_connection(HOST, port)
    req = ("GET /api/health HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (HOST, port)).encode()
    while not stop.is_set():
        t = time.monotonic()
        inflight[0] = t
        writer.write(req)
        head = await reader.readuntil(b"\r\n\r\n")
        n = int(re.search(rb"Content-Length: *(\d+)", head, re.I).group(1))
        await reader.readexactly(n)
        out.append((t, 1000 * (time.monotonic() - t)))
        inflight[0] = None
        await asyncio.sleep(0.02)
    writer.close()


async def hog_rtsp(port, source, stop, held):
    """Anonymous SETUPs without PLAY from ``source``, one connection each, re-tried."""
    conns = []
    url = "rtsp://%s:%d/stream1/trackID=0" % (HOST, port)
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(HOST, port, local_addr=(source, 0))
            status, _, _ = await rtsp_request(
                reader, writer, "SETUP %s RTSP/1.0\r\nCSeq: 1\r\nTransport: "
                "RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n" % url)
        except (OSError, asyncio.IncompleteReadError):
            status = None
        if status == 200:
            conns.append(writer)
            held[source] = held.get(source, 0) + 1
        else:
            held.setdefault("refused", 0)
            held["refused"] += 1
            await asyncio.sleep(1.0)
    for w in conns:
        w.close()


async def hog_tunnels(port, source, stop, held):
    """RTSP-over-HTTP GET halves with no POST partner, reopened when the server drops them."""
    n = 0
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(HOST, port, local_addr=(source, 0))
            n += 1
            writer.write(("GET /stream1 HTTP/1.0\r\nx-sessioncookie: hog%s-%d\r\n"
                          "Accept: application/x-rtsp-tunnelled\r\n\r\n" % (source, n)).encode())
            await reader.read(1024)
            held["tunnel halves"] = held.get("tunnel halves", 0) + 1
            await reader.read()  # until the server closes it
        except OSError:
            await asyncio.sleep(1.0)


async def hog_webrtc(port, source, stop, held):
    """Anonymous WebRTC offers from ``source``, a new one every second."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(HOST, port, local_addr=(source, 0))
            writer.write(("GET /api/webrtc/offer?stream=stream1 HTTP/1.0\r\nHost: %s\r\n\r\n"
                          % HOST).encode())
            answer = await reader.read()
            code = int(answer.split()[1]) if answer else 0
            key = "webrtc offers" if code == 200 else "webrtc refused"
            held[key] = held.get(key, 0) + 1
            writer.close()
        except OSError:
            pass
        await asyncio.sleep(1.0)


async def pipelined_describes(port, source, count, out, credentials):
    """``count`` DESCRIBEs with Basic ``credentials(i)`` in one write; their status codes."""
    reader, writer = await asyncio.open_connection(HOST, port, local_addr=(source, 0))
    url = "rtsp://%s:%d/stream1" % (HOST, port)
    batch = "".join("DESCRIBE %s RTSP/1.0\r\nCSeq: %d\r\nAuthorization: Basic %s\r\n\r\n"
                    % (url, i + 1, base64.b64encode(credentials(i)).decode())
                    for i in range(count))
    name = "describes from %s" % source
    t0 = time.monotonic()
    writer.write(batch.encode())
    codes = {}
    try:
        for _ in range(count):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            m = re.search(rb"Content-Length: *(\d+)", head, re.I)
            if m:
                await reader.readexactly(int(m.group(1)))
            code = int(head.split()[1])
            codes[code] = codes.get(code, 0) + 1
    except (asyncio.IncompleteReadError, asyncio.TimeoutError, OSError):
        codes["closed"] = codes.get("closed", 0) + 1
    out[name] = codes
    out[name + " took s"] = round(time.monotonic() - t0, 2)
    writer.close()


async def chunked_upload(port, source, megabytes, out):
    """A chunked POST of ``megabytes`` to /api/login; how much went in and the answer."""
    reader, writer = await asyncio.open_connection(HOST, port, local_addr=(source, 0))
    writer.write(b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (65536, b"a" * 65536)
    sent = 0
    try:
        while sent < megabytes * 1024 * 1024:
            writer.write(chunk)
            await asyncio.wait_for(writer.drain(), 5)
            sent += 65536
        writer.write(b"0\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(4096), 10)
    except (OSError, asyncio.TimeoutError):
        answer = await _read_quietly(reader)
    out["upload sent MB"] = round(sent / 1048576.0, 1)
    out["upload answer"] = answer.split(b"\r\n")[0].decode("latin-1") if answer else "closed"
    writer.close()


async def _read_quietly(reader):
    try:
        return await asyncio.wait_for(reader.read(4096), 2)
    except (OSError, asyncio.TimeoutError):
        return b""


def summary(health, viewers, t0, t1):
    """Figures of one phase."""
    # A poll counts in the window it overlaps, so one stuck across the whole window shows.
    lat = [ms for t, ms in health if t < t1 and t + ms / 1000.0 > t0]
    if inflight[0] is not None:  # still unanswered at the end of the window
        lat.append(1000 * (t1 - inflight[0]))
    gaps = {v.name: v.largest_gap(t0, t1) for v in viewers}
    r = lambda v: None if v is None else round(v, 1)  # noqa: E731
    return {"health p50 ms": r(pct(lat, 50)), "health p99 ms": r(pct(lat, 99)),
            "health max ms": r(max(lat) if lat else None), "health polls": len(lat),
            "largest frame gap ms": gaps}


async def run(daemon, seconds):
    stop, attack_stop = asyncio.Event(), asyncio.Event()
    health = []
    viewer1 = Viewer(daemon.rtsp_port, "viewer1")
    tasks = [asyncio.ensure_future(viewer1.run(stop)),
             asyncio.ensure_future(poll_health(daemon.http_port, stop, health))]
    await asyncio.sleep(1.0)
    t0 = time.monotonic()
    c0 = daemon.cpu_seconds()
    await asyncio.sleep(seconds)
    t1 = time.monotonic()
    base = summary(health, [viewer1], t0, t1)
    base["daemon CPU %"] = round(100 * (daemon.cpu_seconds() - c0) / (t1 - t0), 1)
    base["RSS MB"] = round(rss_mb(daemon.proc.pid), 1)

    held, out = {}, {}
    hogs = []
    for i in range(2, 6):
        src = "127.0.0.%d" % i
        hogs.append(asyncio.ensure_future(hog_rtsp(daemon.rtsp_port, src, attack_stop, held)))
        hogs.append(asyncio.ensure_future(hog_tunnels(daemon.http_port, src, attack_stop, held)))
        hogs.append(asyncio.ensure_future(hog_webrtc(daemon.http_port, src, attack_stop, held)))
    await asyncio.sleep(2.0)  # the hogs take what they can first
    t2 = time.monotonic()
    c2 = daemon.cpu_seconds()
    right = b"admin:" + PASSWORD.encode()
    blows = [asyncio.ensure_future(pipelined_describes(daemon.rtsp_port, "127.0.0.6", 200, out,
                                                       lambda i: right)),
             asyncio.ensure_future(pipelined_describes(daemon.rtsp_port, "127.0.0.8", 200, out,
                                                       lambda i: b"user%d:guess" % i)),
             asyncio.ensure_future(chunked_upload(daemon.http_port, "127.0.0.7", 100, out))]
    viewer2 = Viewer(daemon.rtsp_port, "viewer2 (joins under attack)")
    tasks.append(asyncio.ensure_future(viewer2.run(stop)))
    await asyncio.sleep(seconds)
    t3 = time.monotonic()
    attack = summary(health, [viewer1, viewer2], t2, t3)
    attack["daemon CPU %"] = round(100 * (daemon.cpu_seconds() - c2) / (t3 - t2), 1)
    attack["RSS MB"] = round(rss_mb(daemon.proc.pid), 1)
    attack["viewer2 status"] = viewer2.status
    attack["viewer2 first frame s"] = round(viewer2.frames[0] - viewer2.t_start, 3) \
        if viewer2.frames else None
    await asyncio.wait(blows, timeout=30)
    attack.update(out)
    attack["attackers held"] = dict(held)
    attack_stop.set()
    stop.set()
    for t in hogs + tasks:
        t.cancel()
    return base, attack


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    daemon = BenchDaemon(config=DEFAULTS, settings={"resolution": "1280x720", "fps": 30})
    try:
        base, attack = asyncio.run(run(daemon, args.seconds))
        alive = daemon.proc.poll() is None
    finally:
        daemon.stop()
    print("machine: %d cores; daemon at 1280x720@30, default limits" % os.cpu_count())
    for name, figures in (("baseline", base), ("under attack", attack)):
        print("== %s (%.0f s)" % (name, args.seconds))
        for k, v in figures.items():
            print("  %-28s %s" % (k, v))
    print("daemon alive after the attack: %s" % alive)


if __name__ == "__main__":
    main()
