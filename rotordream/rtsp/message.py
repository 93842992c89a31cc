"""RTSP 1.0 messages without I/O: an incremental request parser and response serializer.

``RequestParser.feed(bytes)`` returns the complete events so far: a
:class:`Request`, or an :class:`Interleaved` frame (``$``, channel, length,
data: RTP/RTCP over the TCP connection). Sizes are bounded; a bad request
raises :class:`ParseError` carrying the status to answer with.
"""

import email.utils
import re
import struct
from dataclasses import dataclass, field

_METHOD = re.compile(r"^[A-Z][A-Z_]{0,31}$")
MAX_HEADER_BYTES = 16384
MAX_BODY_BYTES = 65536
MAX_HEADERS = 64

REASONS = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 413: "Request Entity Too Large", 414: "Request-URI Too Long",
    451: "Parameter Not Understood", 454: "Session Not Found",
    455: "Method Not Valid in This State", 457: "Invalid Range", 459: "Aggregate Operation Not Allowed",
    461: "Unsupported Transport", 500: "Internal Server Error", 501: "Not Implemented",
    503: "Service Unavailable", 505: "RTSP Version Not Supported",
}


class ParseError(Exception):
    """A request that cannot be parsed; ``status`` is what to answer (then close)."""

    def __init__(self, status, message, cseq=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.cseq = cseq


class Headers:
    """Case-insensitive headers keeping their order."""

    def __init__(self, items=()):
        self._items = list(items)

    def get(self, name, default=None):
        """The first value of ``name``."""
        lname = name.lower()
        for k, v in self._items:
            if k.lower() == lname:
                return v
        return default

    def __contains__(self, name):
        return self.get(name) is not None

    def items(self):
        """(name, value) pairs in order."""
        return list(self._items)


@dataclass
class Request:
    """One RTSP request."""

    method: str
    uri: str
    version: str
    headers: Headers
    body: bytes = b""

    @property
    def cseq(self):
        """The CSeq header, or None."""
        return self.headers.get("CSeq")


@dataclass
class Interleaved:
    """One ``$``-framed binary packet on the RTSP connection."""

    channel: int
    data: bytes


@dataclass
class Response:
    """One RTSP response."""

    status: int
    headers: list = field(default_factory=list)
    body: bytes = b""

    def __bytes__(self):
        lines = ["RTSP/1.0 %d %s" % (self.status, REASONS.get(self.status, "Unknown"))]
        for name, value in self.headers:
            lines.append("%s: %s" % (name, value))
        if self.body:
            lines.append("Content-Length: %d" % len(self.body))
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


def http_date(now):
    """An RFC 1123 date for the Date header."""
    return email.utils.formatdate(now, usegmt=True)


class RequestParser:
    """Incremental parser of requests and interleaved frames from a byte stream."""

    def __init__(self):
        self._buf = bytearray()

    def feed(self, data):
        """Add bytes; return the list of complete events. Raises ParseError."""
        self._buf += data
        events = []
        while self._buf:
            if self._buf[0] == 0x24:  # '$'
                if len(self._buf) < 4:
                    break
                channel, length = struct.unpack("!BH", self._buf[1:4])
                if len(self._buf) < 4 + length:
                    break
                events.append(Interleaved(channel, bytes(self._buf[4:4 + length])))
                del self._buf[:4 + length]
                continue
            if self._buf[:2] == b"\r\n":  # stray keep-alive newlines between messages
                del self._buf[:2]
                continue
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > MAX_HEADER_BYTES:
                    raise ParseError(400, "request headers too large")
                break
            if end > MAX_HEADER_BYTES:
                raise ParseError(400, "request headers too large")
            request = self._parse_head(bytes(self._buf[:end]))
            length = request.headers.get("Content-Length", "0")
            if not length.isdigit():
                raise ParseError(400, "bad Content-Length", request.cseq)
            length = int(length)
            if length > MAX_BODY_BYTES:
                raise ParseError(413, "request body too large", request.cseq)
            if len(self._buf) < end + 4 + length:
                break
            request.body = bytes(self._buf[end + 4:end + 4 + length])
            del self._buf[:end + 4 + length]
            events.append(request)
        return events

    @staticmethod
    def _parse_head(head):
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError(400, "request is not text") from None
        lines = text.split("\r\n")
        parts = lines[0].split(" ")
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name.strip() or " " in name.strip():
                raise ParseError(400, "malformed header line")
            headers.append((name.strip(), value.strip()))
            if len(headers) > MAX_HEADERS:
                raise ParseError(400, "too many headers")
        h = Headers(headers)
        if len(parts) != 3 or not _METHOD.match(parts[0]):
            raise ParseError(400, "malformed request line", h.get("CSeq"))
        method, uri, version = parts
        if not version.startswith("RTSP/"):
            raise ParseError(400, "not an RTSP request", h.get("CSeq"))
        if version != "RTSP/1.0":
            raise ParseError(505, "only RTSP/1.0 is spoken here", h.get("CSeq"))
        if h.get("CSeq") is None or not h.get("CSeq").isdigit():
            raise ParseError(400, "missing or bad CSeq")
        return Request(method, uri, version, h)


def parse_transport(value):
    """Parse a Transport header into a list of dicts, one per offered transport."""
    offers = []
    for spec in value.split(","):
        parts = [p.strip() for p in spec.split(";") if p.strip()]
        if not parts:
            continue
        offer = {"protocol": parts[0].upper()}
        for p in parts[1:]:
            k, _, v = p.partition("=")
            offer[k.strip().lower()] = v.strip() if _ else True
        offers.append(offer)
    return offers


def parse_pair(value):
    """Parse ``a-b`` (or ``a``) port/channel pairs."""
    a, _, b = str(value).partition("-")
    a = int(a)
    return a, int(b) if b else a + 1


def parse_range(value):
    """Start seconds of ``npt=<start>-[end]`` (None for ``now`` or no header)."""
    if not value:
        return None
    value = value.strip()
    if not value.startswith("npt="):
        raise ValueError("only npt ranges")
    start = value[4:].split("-")[0].strip()
    if start in ("", "now"):
        return None
    return float(start)
