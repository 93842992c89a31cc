"""Capture what real RTSP clients send: requests and RTCP receiver reports, as fixtures.

Run once from the repository root (``python -m tests.support.capture_peers``):
it starts a test daemon, puts a TCP proxy in front of its RTSP port and
plays ``/stream1`` with each client (ffprobe, ffmpeg and gst-launch-1.0
rtspsrc over TCP-interleaved, so RTCP receiver reports travel on the
connection too). Everything each client wrote goes to
``tests/fixtures/rtsp/<client>.bin``; the RTCP compounds found in it (odd
interleaved channels) go to ``tests/fixtures/rtp/<client>-rtcp-<n>.bin``.
"""

import os
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
# Seconds each client runs: FFmpeg sends a receiver report only once it has
# received enough octets since the last (its RTCP bandwidth share), GStreamer
# every five seconds or so.
SECONDS = {"ffprobe": 10, "ffmpeg": 40, "gstreamer": 12}

CLIENTS = {
    "ffprobe": lambda url: ["ffprobe", "-v", "error", "-rtsp_transport", "tcp",
                            "-show_entries", "stream=codec_name", url],
    "ffmpeg": lambda url: ["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", url,
                           "-t", str(SECONDS["ffmpeg"] - 5), "-f", "null", "-"],
    "gstreamer": lambda url: ["gst-launch-1.0", "-q", "rtspsrc", "location=" + url,
                              "protocols=tcp", "!", "fakesink"],
}


class Proxy:
    """A one-connection-at-a-time TCP proxy that keeps what the client wrote."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sent = bytearray()
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
                peers[s].sendall(data)


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


def main():
    os.makedirs(os.path.join(FIXTURES, "rtsp"), exist_ok=True)
    os.makedirs(os.path.join(FIXTURES, "rtp"), exist_ok=True)
    daemon = Daemon(tempfile.mkdtemp(prefix="capture-"), free_port(), free_port())
    daemon.start()
    try:
        for name, command in CLIENTS.items():
            sent = capture(daemon, name, command)
            with open(os.path.join(FIXTURES, "rtsp", name + ".bin"), "wb") as f:
                f.write(sent)
            rtcp = [e.data for e in RequestParser().feed(sent)
                    if isinstance(e, Interleaved) and e.channel % 2]
            for i, data in enumerate(rtcp[:2]):
                with open(os.path.join(FIXTURES, "rtp", "%s-rtcp-%d.bin" % (name, i)), "wb") as f:
                    f.write(data)
            print(name, len(sent), "bytes,", len(rtcp), "RTCP compounds", file=sys.stderr)
    finally:
        daemon.stop()


if __name__ == "__main__":
    main()
