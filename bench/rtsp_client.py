"""A packet-level RTSP load client for bench/rtsp_fanout.py (asyncio, no decoding).

Each client does DESCRIBE/SETUP/PLAY over UDP or TCP-interleaved and measures: time from
connect to the end of the first keyframe, RTP loss from sequence gaps, and capture-to-receive
latency of each access unit from the RTCP SR mapping (NTP wall time <-> RTP time).
"""

import asyncio
import re
import struct
import time

NTP_OFFSET = 2208988800


class Stats:
    """What one client saw."""

    def __init__(self):
        self.t_connect = None
        self.first_keyframe = None
        self.packets = 0
        self.lost = 0
        self.last_seq = None
        self.mapping = None  # (ntp wall seconds, rtp ts)
        self.latencies = []
        self.in_keyframe = False

    def rtp(self, data, now):
        if len(data) < 14:
            return
        seq, ts = struct.unpack("!HI", data[2:8])
        marker = data[1] & 0x80
        if self.last_seq is not None:
            gap = (seq - self.last_seq - 1) & 0xFFFF
            if gap < 1000:
                self.lost += gap
        self.last_seq = seq
        self.packets += 1
        nal = data[12] & 0x1F
        if nal == 24 or (nal == 28 and data[13] & 0x1F == 5) or nal == 5:
            self.in_keyframe = True
        if marker:
            if self.in_keyframe and self.first_keyframe is None:
                self.first_keyframe = now - self.t_connect
            self.in_keyframe = False
            if self.mapping:
                wall, rts = self.mapping
                capture = wall + ((ts - rts + 2 ** 31) % 2 ** 32 - 2 ** 31) / 90000.0
                self.latencies.append((time.time() - capture) * 1000)

    def rtcp(self, data):
        if len(data) >= 20 and data[1] == 200:
            ntp, rts = struct.unpack("!QI", data[8:20])
            self.mapping = ((ntp >> 32) - NTP_OFFSET + (ntp & 0xFFFFFFFF) / 2 ** 32, rts)


async def request(reader, writer, text):
    writer.write(text.encode())
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"Content-Length: (\d+)", head)
    body = await reader.readexactly(int(length.group(1))) if length else b""
    return head.decode(), body


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, fn):
        self.fn = fn

    def datagram_received(self, data, addr):
        self.fn(data)


async def client(host, port, path, transport, stats, stop):
    loop = asyncio.get_running_loop()
    stats.t_connect = time.monotonic()
    reader, writer = await asyncio.open_connection(host, port)
    url = "rtsp://%s:%d/%s" % (host, port, path)
    _, sdp = await request(reader, writer, "DESCRIBE %s RTSP/1.0\r\nCSeq: 1\r\n\r\n" % url)
    control = re.findall(rb"a=control:(\S+)", sdp)[-1].decode()  # the media's, not "*"
    track = control if control.startswith("rtsp://") else url + "/" + control
    if transport == "udp":
        rtp_t, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(lambda d: stats.rtp(d, time.monotonic())), local_addr=("127.0.0.1", 0))
        rtcp_t, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(stats.rtcp), local_addr=("127.0.0.1", 0))
        p1 = rtp_t.get_extra_info("sockname")[1]
        p2 = rtcp_t.get_extra_info("sockname")[1]
        spec = "RTP/AVP;unicast;client_port=%d-%d" % (p1, p2)
    else:
        spec = "RTP/AVP/TCP;unicast;interleaved=0-1"
    head, _ = await request(reader, writer, "SETUP %s RTSP/1.0\r\nCSeq: 2\r\n"
                                            "Transport: %s\r\n\r\n" % (track, spec))
    session = re.search(r"Session: ([^;\r]+)", head).group(1)
    writer.write(("PLAY %s RTSP/1.0\r\nCSeq: 3\r\nSession: %s\r\n\r\n" % (url, session)).encode())
    if transport == "udp":
        await reader.readuntil(b"\r\n\r\n")
        while not stop.is_set():
            await asyncio.sleep(0.5)
            writer.write(("GET_PARAMETER %s RTSP/1.0\r\nCSeq: 4\r\nSession: %s\r\n\r\n"
                          % (url, session)).encode())
        rtp_t.close()
        rtcp_t.close()
    else:
        buf = b""
        while not stop.is_set():
            chunk = await reader.read(262144)
            if not chunk:
                break
            buf += chunk
            now = time.monotonic()
            while buf:
                if buf[:1] == b"$":
                    if len(buf) < 4:
                        break
                    ch, n = struct.unpack("!BH", buf[1:4])
                    if len(buf) < 4 + n:
                        break
                    (stats.rtp if ch == 0 else lambda d, *a: stats.rtcp(d))(buf[4:4 + n], now)
                    buf = buf[4 + n:]
                else:
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    buf = buf[end + 4:]
    writer.close()


async def run(host, port, path, transport, n, seconds):
    """Run ``n`` clients for ``seconds``; return their Stats."""
    stop = asyncio.Event()
    stats = [Stats() for _ in range(n)]
    tasks = [asyncio.ensure_future(client(host, port, path, transport, s, stop)) for s in stats]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait(tasks, timeout=5)
    return stats
