"""A small blocking RTSP client on a raw socket, from any loopback source address."""

import base64
import socket


def basic(user, password):
    """An Authorization header value for Basic credentials."""
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


class RawRtsp:
    """One RTSP connection: ``ask`` sends a request and returns (status, headers, reason)."""

    def __init__(self, port, source="127.0.0.1", timeout=10):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.bind((source, 0))
        self.sock.connect(("127.0.0.1", port))
        self.port = port
        self.cseq = 0
        self.buf = b""

    def url(self, path):
        """The rtsp:// URL of ``path`` on this server."""
        return "rtsp://127.0.0.1:%d/%s" % (self.port, path)

    def send(self, method, path, **headers):
        """Send a request without waiting for its answer; its CSeq."""
        self.cseq += 1
        lines = ["%s %s RTSP/1.0" % (method, self.url(path) if "://" not in path and path != "*"
                                     else path), "CSeq: %d" % self.cseq]
        lines += ["%s: %s" % (k.replace("_", "-"), v) for k, v in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return self.cseq

    def ask(self, method, path, **headers):
        """Send a request and read its answer."""
        self.send(method, path, **headers)
        return self.answer()

    def answer(self):
        """The next answer: (status, {header: value}, reason phrase); interleaved frames skipped."""
        while True:
            while self.buf[:1] == b"$":
                if len(self.buf) >= 4 and len(self.buf) >= 4 + int.from_bytes(self.buf[2:4], "big"):
                    self.buf = self.buf[4 + int.from_bytes(self.buf[2:4], "big"):]
                else:
                    self._read()
            end = self.buf.find(b"\r\n\r\n")
            if self.buf[:1] != b"$" and end >= 0:
                break
            self._read()
        head = self.buf[:end].decode()
        lines = head.split("\r\n")
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(": ")
            headers.setdefault(k, v)
        length = int(headers.get("Content-Length", "0"))
        while len(self.buf) < end + 4 + length:
            self._read()
        self.buf = self.buf[end + 4 + length:]
        _, status, reason = lines[0].split(" ", 2)
        return int(status), headers, reason

    def _read(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        self.buf += data

    def setup(self, path, transport, **headers):
        """SETUP: (status, session id or None, headers, reason)."""
        status, h, reason = self.ask("SETUP", path, Transport=transport, **headers)
        sid = h.get("Session", "").split(";")[0] or None
        return status, sid, h, reason

    def close(self):
        """Close the connection."""
        self.sock.close()

