"""Capture what real RTSP clients send: requests and RTCP receiver reports, as fixtures.

Run once from the repository root (``python -m tests.support.capture_peers``,
optionally followed by the clients to capture): it starts a test daemon, puts
a TCP proxy in front of its RTSP port and plays ``/stream1`` with each client
(ffprobe, ffmpeg and gst-launch-1.0 rtspsrc over TCP-interleaved, so RTCP
receiver reports travel on the connection too). Everything each client wrote
goes to ``tests/fixtures/rtsp/<client>.bin``; the RTCP compounds found in it
(odd interleaved channels) go to ``tests/fixtures/rtp/<client>-rtcp-<n>.bin``.

FFmpeg reports only over UDP, so ``ffmpeg-udp`` plays over UDP instead: the
proxy rewrites ``server_port`` in the SETUP reply to a relay's port pair, the
relay passes what FFmpeg sends on to the server's pair and keeps the RTCP
datagrams: its receiver reports go to ``rtp/ffmpeg-rtcp-<n>.bin``, the empty
report it sends first to ``rtp/ffmpeg-rtcp-punch.bin``.
"""

import os
import re
import select
import socket
import subprocess
import sys
import tempfile
import threading

from rotordream.rtsp.message import Interleaved, RequestParser
from tests.conftest import Daemon, free_port

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(HERE, "fixtures")
# Seconds each client runs: GStreamer reports every five seconds or so, FFmpeg
# (over UDP only) once it has received enough octets since its last report
# (its RTCP bandwidth share, about 280 kB).
SECONDS = {"ffprobe": 10, "ffmpeg": 15, "gstreamer": 12, "ffmpeg-udp": 20}
SERVER_PORT = re.compile(rb"server_port=(\d+)-(\d+)")

CLIENTS = {
    "ffprobe": lambda url: ["ffprobe", "-v", "error", "-rtsp_transport", "tcp",
                            "-show_entries", "stream=codec_name", url],
    "ffmpeg": lambda url: ["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", url,
                           "-t", str(SECONDS["ffmpeg"] - 5), "-f", "null", "-"],
    "gstreamer": lambda url: ["gst-launch-1.0", "-q", "rtspsrc", "location=" + url,
                              "protocols=tcp", "!", "fakesink"],
}
# FFmpeg sends receiver reports only over UDP (never on a TCP-interleaved connection),
# each once it has received about 280 kB since the last one.
UDP_CLIENTS = {
    "ffmpeg-udp": lambda url: ["ffmpeg", "-v", "error", "-rtsp_transport", "udp", "-i", url,
                               "-t", str(SECONDS["ffmpeg-udp"] - 5), "-f", "null", "-"],
}


class Proxy:
    """A TCP proxy that keeps what the client wrote: all of it in :attr:`sent`, and
    each connection's own bytes in :attr:`connections` (in the order they opened)."""

    def __init__(self, target_port, rewrite=None):
        self.target_port = target_port
        self.rewrite = rewrite   # applied to what the server writes, before the client sees it
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sent = bytearray()
        self.connections = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pipe, args=(client, server), daemon=True).start()

    def _pipe(self, client, server):
        peers = {client: server, server: client}
        mine = bytearray()
        self.connections.append(mine)
        while True:
            ready, _, _ = select.select(list(peers), [], [], 1)
            for s in ready:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    client.close()
                    server.close()
                    return
                if s is client:
                    self.sent += data
                    mine += data
                elif self.rewrite:
                    data = self.rewrite(data)
                peers[s].sendall(data)


class UdpRelay:
    """An even UDP port and the next, standing in for the server's RTP/RTCP pair: what a
    client sends them is kept (:attr:`rtcp` for the odd port) and passed on to the pair in
    :attr:`target` (set once the server has named it)."""

    def __init__(self):
        while True:
            rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            rtp.bind(("127.0.0.1", 0))
            port = rtp.getsockname()[1]
            rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                if port % 2:
                    raise OSError("odd")
                rtcp.bind(("127.0.0.1", port + 1))
                break
            except OSError:
                rtp.close()
                rtcp.close()
        self.port = port
        self.sockets = {rtp: 0, rtcp: 1}
        self.target = None
        self.rtp, self.rtcp = [], []
        self.closed = False
        threading.Thread(target=self._relay, daemon=True).start()

    def _relay(self):
        while not self.closed:
            ready, _, _ = select.select(list(self.sockets), [], [], 0.5)
            for s in ready:
                try:
                    data, _ = s.recvfrom(65536)
                except OSError:   # an ICMP error for an earlier datagram
                    continue
                odd = self.sockets[s]
                (self.rtcp if odd else self.rtp).append(data)
                if self.target:
                    s.sendto(data, ("127.0.0.1", self.target + odd))

    def rewrite(self, data):
        """The server's bytes with its ``server_port`` pair replaced by ours."""
        match = SERVER_PORT.search(data)
        if match:
            self.target = int(match.group(1))
            data = SERVER_PORT.sub(b"server_port=%d-%d" % (self.port, self.port + 1), data)
        return data

    def close(self):
        self.closed = True


def capture_udp(daemon, name, command):
    """Run one client playing over UDP through a proxy that puts a relay in place of the
    server's RTP/RTCP ports; return the RTCP datagrams it sent."""
    relay = UdpRelay()
    proxy = Proxy(daemon.rtsp_port, rewrite=relay.rewrite)
    url = "rtsp://127.0.0.1:%d/stream1" % proxy.port
    try:
        subprocess.run(command(url), timeout=SECONDS[name], capture_output=True)
    except subprocess.TimeoutExpired:
        pass
    proxy.listener.close()
    relay.close()
    return relay.rtcp


def capture(daemon, name, command):
    """Run one client through a fresh proxy; return what it sent."""
    proxy = Proxy(daemon.rtsp_port)
    url = "rtsp://127.0.0.1:%d/stream1" % proxy.port
    try:
        subprocess.run(command(url), timeout=SECONDS[name], capture_output=True)
    except subprocess.TimeoutExpired:
        pass   # gst-launch plays until stopped
    proxy.listener.close()
    return bytes(proxy.sent)


def save_rtcp(peer, compounds):
    """Write the first two compounds as ``rtp/<peer>-rtcp-<n>.bin``."""
    for i, data in enumerate(compounds[:2]):
        with open(os.path.join(FIXTURES, "rtp", "%s-rtcp-%d.bin" % (peer, i)), "wb") as f:
            f.write(data)


def main(names=()):
    """Capture the clients named (all of them when none is)."""
    os.makedirs(os.path.join(FIXTURES, "rtsp"), exist_ok=True)
    os.makedirs(os.path.join(FIXTURES, "rtp"), exist_ok=True)
    names = set(names or list(CLIENTS) + list(UDP_CLIENTS))
    daemon = Daemon(tempfile.mkdtemp(prefix="capture-"), free_port(), free_port())
    daemon.start()
    try:
        for name, command in UDP_CLIENTS.items():
            if name not in names:
                continue
            datagrams = capture_udp(daemon, name, command)
            peer = name.split("-")[0]
            # First the NAT "punch", a receiver report with no blocks; then the real ones.
            punch = [d for d in datagrams if d[1] == 201 and d[0] & 0x1F == 0]
            reports = [d for d in datagrams if d not in punch]
            if punch:
                with open(os.path.join(FIXTURES, "rtp", peer + "-rtcp-punch.bin"), "wb") as f:
                    f.write(punch[0])
            save_rtcp(peer, reports)
            print(name, len(datagrams), "RTCP datagrams,", len(reports), "reports",
                  file=sys.stderr)
        for name, command in CLIENTS.items():
            if name not in names:
                continue
            sent = capture(daemon, name, command)
            with open(os.path.join(FIXTURES, "rtsp", name + ".bin"), "wb") as f:
                f.write(sent)
            rtcp = [e.data for e in RequestParser().feed(sent)
                    if isinstance(e, Interleaved) and e.channel % 2]
            save_rtcp(name, rtcp)
            print(name, len(sent), "bytes,", len(rtcp), "RTCP compounds", file=sys.stderr)
    finally:
        daemon.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
