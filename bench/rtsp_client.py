"""Packet-level RTSP readers for bench/rtsp_fanout.py (asyncio, no decoding).

Each reader does DESCRIBE/SETUP/PLAY over UDP or TCP-interleaved at its own start time and
then only counts: RTP packets and bytes (in total and inside a measuring window), sequence
gaps (loss), time from its start to the first packet (and whether that packet began a
keyframe) and to the end of the first complete keyframe, and the capture-to-receive latency
of each access unit from the RTCP SR mapping (NTP wall time <-> RTP time).

Run as a script, one process holds a share of the readers (bench/rtsp_fanout.py starts
several so that one Python process does not limit what is measured)::

    .venv/bin/python bench/rtsp_client.py '{"port": 8554, "transport": "udp", ...}'

prints one JSON line with each reader's figures. ``run()`` is the in-process form.
"""

import asyncio
import json
import re
import socket
import struct
import sys
import time

NTP_OFFSET = 2208988800
KEEPALIVE = 15.0  # seconds between GET_PARAMETERs: well under every server's 60 s timeout
_SR = struct.Struct("!QI")


class Reader:
    """What one reader saw. Times are ``time.monotonic()`` (one clock for all processes)."""

    def __init__(self, index=0, window=(0.0, float("inf"))):
        self.index = index
        self.w0, self.w1 = window
        self.t_start = None
        self.phases = {}          # "connect", "describe", "setup", "play": when each ended
        self.t_first = None       # first RTP packet
        self.first_at_key = None  # did the first packet begin a keyframe (SPS or IDR)?
        self.t_key = None         # end of the first complete keyframe
        self.packets = 0
        self.lost = 0
        self.win_packets = 0
        self.win_octets = 0
        self.win_lost = 0
        self.last_seq = None
        self.mapping = None  # (ntp wall seconds, rtp ts)
        self.latencies = []  # ms, inside the window
        self.in_key = False
        self.error = None

    # Compatibility with the older single-process API (bench/metrics.py).
    @property
    def first_keyframe(self):
        """Seconds from the start to the end of the first keyframe, or None."""
        return None if self.t_key is None else self.t_key - self.t_start

    def rtp(self, b, off, n, now):
        """One RTP packet of ``n`` bytes at ``b[off:]`` received at ``now``."""
        seq = (b[off + 2] << 8) | b[off + 3]
        last = self.last_seq
        gap = 0
        if last is not None:
            gap = (seq - last - 1) & 0xFFFF
            if gap >= 0x8000:  # a duplicate or a late packet, not a hole
                gap = 0
            self.lost += gap
        self.last_seq = seq
        self.packets += 1
        inside = self.w0 <= now < self.w1
        if inside:
            self.win_packets += 1
            self.win_octets += n
            self.win_lost += gap
        if self.t_key is None:
            self._until_keyframe(b, off, n, now)
        elif inside and b[off + 1] & 0x80 and self.mapping is not None:
            wall, rts = self.mapping
            ts = (b[off + 4] << 24) | (b[off + 5] << 16) | (b[off + 6] << 8) | b[off + 7]
            capture = wall + ((ts - rts + 0x80000000) % 0x100000000 - 0x80000000) / 90000.0
            self.latencies.append((time.time() - capture) * 1000)

    def _until_keyframe(self, b, off, n, now):
        nal = b[off + 12] & 0x1F if n > 12 else 0
        inner = b[off + 13] if n > 13 else 0
        # SPS, IDR, a STAP-A (parameter sets, aggregated) or the first FU-A fragment of an IDR
        starts = nal in (5, 7) or nal == 24 or (nal == 28 and inner & 0x80 and inner & 0x1F == 5)
        if self.t_first is None:
            self.t_first = now
            self.first_at_key = bool(starts)
        if starts:
            self.in_key = True
        if b[off + 1] & 0x80:
            if self.in_key:
                self.t_key = now
            self.in_key = False

    def rtcp(self, data):
        """An RTCP compound packet: keep the SR's time mapping."""
        if len(data) >= 20 and data[1] == 200:
            ntp, rts = _SR.unpack_from(data, 8)
            self.mapping = ((ntp >> 32) - NTP_OFFSET + (ntp & 0xFFFFFFFF) / 2 ** 32, rts)

    def summary(self):
        """The figures as a JSON-friendly dict (times relative to the reader's start)."""
        rel = (lambda t: None if t is None or self.t_start is None else t - self.t_start)
        return {"index": self.index, "error": self.error, "first": rel(self.t_first),
                "first_at_key": self.first_at_key, "key": rel(self.t_key),
                "phases": {k: rel(t) for k, t in self.phases.items()},
                "packets": self.packets, "lost": self.lost, "win_packets": self.win_packets,
                "win_octets": self.win_octets, "win_lost": self.win_lost}


def answer_at(buf, pos, size):
    """The RTSP answer starting at ``buf[pos]``, when all of it is in ``buf[:size]``:
    (head bytes, body start, end); else None."""
    eoh = buf.find(b"\r\n\r\n", pos, size)
    if eoh < 0:
        return None
    head = bytes(buf[pos:eoh])
    length = re.search(rb"(?i)content-length: *(\d+)", head)
    end = eoh + 4 + (int(length.group(1)) if length else 0)
    return None if end > size else (head, eoh + 4, end)


# One receive buffer for every reader of the process: a drain runs to its end before the
# next starts, and a buffer per reader would cost its pages' faults when the crowd joins.
_SHARED = bytearray(1 << 20)
_SHARED_VIEW = memoryview(_SHARED)


class Control:
    """An RTSP connection on a plain non-blocking socket.

    Answers are read from it; once playing over TCP the interleaved RTP is read into
    the process's shared buffer and parsed in place (one copy per byte, from the
    kernel): a reader costs the machine little next to the server it measures.
    """

    def __init__(self, sock):
        self.sock = sock
        self.data = bytearray()  # what was read and not yet used (an answer or frame begun)
        self.error = None  # set when the server closed the connection or refused a request

    async def request(self, text):
        """Send one RTSP request; return (head, body) of its answer."""
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(self.sock, text.encode())
        while True:
            answer = self._answer()
            if answer is not None:
                return answer
            chunk = await loop.sock_recv(self.sock, 65536)
            if not chunk:
                raise RuntimeError("the server closed the connection")
            self.data += chunk

    async def ok(self, text):
        """``request``, raising unless the answer is 200 OK."""
        head, body = await self.request(text)
        status = head.split("\r\n", 1)[0]
        if " 200 " not in status + " ":
            raise RuntimeError("%s -> %s" % (text.split(" ", 1)[0], status))
        return head, body

    def _answer(self):
        # An answer at the start of what was read, when it is all there; taken out of it.
        found = answer_at(self.data, 0, len(self.data))
        if found is None:
            return None
        head, body, end = found
        body = bytes(self.data[body:end])
        del self.data[:end]
        return head.decode(), body

    def drain(self, stats):
        """Read what the socket holds; count its interleaved RTP (a reader callback)."""
        buf, view = _SHARED, _SHARED_VIEW
        size = len(self.data)
        buf[:size] = self.data
        while self.error is None:
            try:
                n = self.sock.recv_into(view[size:])
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                self.error = "%s: %s" % (type(e).__name__, e)
                break
            if not n:
                self.error = "RuntimeError: the server closed the connection"
                break
            size = self._interleaved(stats, time.monotonic(), buf, size + n)
        self.data = bytearray(buf[:size])
        if self.error is not None:  # a closed socket stays readable: stop watching it
            asyncio.get_running_loop().remove_reader(self.sock.fileno())

    def _interleaved(self, stats, now, buf, size):
        # Count the whole frames and answers in buf[:size]; move what is left to the front
        # and return its length.
        pos = 0
        while size - pos >= 4:
            if buf[pos] == 36:  # "$", RFC 2326 10.12
                n = (buf[pos + 2] << 8) | buf[pos + 3]
                if size - pos - 4 < n:
                    break
                channel = buf[pos + 1]
                if channel == 0 and n >= 12:
                    stats.rtp(buf, pos + 4, n, now)
                elif channel == 1:
                    stats.rtcp(bytes(buf[pos + 4:pos + 4 + n]))
                pos += 4 + n
            else:  # an RTSP answer (PLAY, GET_PARAMETER)
                found = answer_at(buf, pos, size)
                if found is None:
                    break
                head, _, end = found
                status = head.split(b"\r\n", 1)[0]
                if b" 200 " not in status + b" ":
                    self.error = "RuntimeError: %s" % status.decode("latin-1")
                stats.phases.setdefault("play", now)
                pos = end
        if pos:
            buf[:size - pos] = buf[pos:size]
        return size - pos


def _udp_pair(rcvbuf):
    """Two bound non-blocking UDP sockets on an even port and the next (RFC 3550)."""
    while True:
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        low = rtp.getsockname()[1]
        if low % 2 == 0:
            rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                rtcp.bind(("127.0.0.1", low + 1))
                break
            except OSError:
                rtcp.close()
        rtp.close()
    if rcvbuf:
        rtp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    for s in (rtp, rtcp):
        s.setblocking(False)
    return rtp, rtcp, low


def _drain_rtp(sock, stats, buf):
    # One readiness event drains everything queued: the per-event cost of asyncio is paid
    # once per burst (a frame's packets), not once per packet.
    recv_into = sock.recv_into
    now = time.monotonic()
    while True:
        try:
            n = recv_into(buf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        if n >= 12:
            stats.rtp(buf, 0, n, now)


def _drain_rtcp(sock, stats):
    while True:
        try:
            stats.rtcp(sock.recv(2048))
        except OSError:
            return


async def reader_task(host, port, path, transport, stats, start, end, rcvbuf=0):
    """One reader: join at ``start`` (monotonic), count until ``end``, then TEARDOWN."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    stats.t_start = time.monotonic()
    socks, readers = [], []
    control = None
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        socks.append(sock)
        await loop.sock_connect(sock, (host, port))
        control = Control(sock)
        stats.phases["connect"] = time.monotonic()
        url = "rtsp://%s:%d/%s" % (host, port, path)
        _, sdp = await control.ok("DESCRIBE %s RTSP/1.0\r\nCSeq: 1\r\n"
                                  "Accept: application/sdp\r\n\r\n" % url)
        stats.phases["describe"] = time.monotonic()
        controls = re.findall(rb"a=control:(\S+)", sdp)
        control_url = controls[-1].decode() if controls else ""  # the media's, not "*"
        track = control_url if control_url.startswith("rtsp://") else url + "/" + control_url
        if transport == "udp":
            rtp, rtcp, low = _udp_pair(rcvbuf)
            socks += [rtp, rtcp]
            buf = bytearray(65536)
            loop.add_reader(rtp.fileno(), _drain_rtp, rtp, stats, buf)
            loop.add_reader(rtcp.fileno(), _drain_rtcp, rtcp, stats)
            readers += [rtp.fileno(), rtcp.fileno()]
            spec = "RTP/AVP;unicast;client_port=%d-%d" % (low, low + 1)
        else:
            spec = "RTP/AVP/TCP;unicast;interleaved=0-1"
        head, _ = await control.ok("SETUP %s RTSP/1.0\r\nCSeq: 2\r\n"
                                   "Transport: %s\r\n\r\n" % (track, spec))
        stats.phases["setup"] = time.monotonic()
        session = re.search(r"(?i)session: *([^;\r]+)", head).group(1)
        play = "PLAY %s RTSP/1.0\r\nCSeq: 3\r\nSession: %s\r\n\r\n" % (url, session)
        keepalive = "GET_PARAMETER %s RTSP/1.0\r\nCSeq: %%d\r\nSession: %s\r\n\r\n" % (
            url, session)
        if transport == "udp":
            await control.ok(play)
            stats.phases["play"] = time.monotonic()
        else:
            # From here the connection carries RTP: parsed in place as it comes.
            loop.add_reader(sock.fileno(), control.drain, stats)
            readers.append(sock.fileno())
            await loop.sock_sendall(sock, play.encode())
        cseq = 4
        while time.monotonic() < end and control.error is None:
            await asyncio.sleep(min(KEEPALIVE, max(0.0, end - time.monotonic())))
            if time.monotonic() < end and control.error is None:
                text = keepalive % cseq
                if transport == "udp":
                    await control.request(text)
                else:
                    await loop.sock_sendall(sock, text.encode())  # answered among the RTP
                cseq += 1
        if control.error is not None:
            raise RuntimeError(control.error)
        sock.send(("TEARDOWN %s RTSP/1.0\r\nCSeq: 99\r\nSession: %s\r\n\r\n"
                   % (url, session)).encode())
    except asyncio.CancelledError:
        stats.error = "no answer before the end"
    except Exception as e:  # one reader's failure is a figure, not the end of the others
        stats.error = "%s: %s" % (type(e).__name__, e)
    finally:
        for fd in readers:
            loop.remove_reader(fd)
        for s in socks:
            s.close()


async def run(host, port, path, transport, n, seconds):
    """Run ``n`` readers for ``seconds`` (all joining now); return their :class:`Reader`s."""
    now = time.monotonic()
    stats = [Reader(i) for i in range(n)]
    await asyncio.gather(*(reader_task(host, port, path, transport, s, now, now + seconds)
                           for s in stats))
    return stats


async def _serve(spec):
    window = (spec["w0"], spec["w1"])
    stats = [Reader(i, window) for i in spec["indices"]]
    tasks = [asyncio.ensure_future(reader_task(
        spec.get("host", "127.0.0.1"), spec["port"], spec.get("path", "stream1"),
        spec["transport"], s, spec["t0"] + s.index * spec["ramp"], spec["end"],
        spec.get("rcvbuf", 0))) for s in stats]
    # A server that stops answering must not keep the readers past the end.
    _, late = await asyncio.wait(tasks, timeout=spec["end"] + 5 - time.monotonic())
    for task in late:
        task.cancel()
    if late:
        await asyncio.wait(late)
    return stats


def main():
    """Run the readers described by the JSON argument; print their figures as one line."""
    spec = json.loads(sys.argv[1])
    stats = asyncio.run(_serve(spec))
    latencies = [round(v, 2) for s in stats for v in s.latencies]
    print(json.dumps({"readers": [s.summary() for s in stats], "latencies": latencies}))


if __name__ == "__main__":
    main()
