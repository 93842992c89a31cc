"""RTSP 1.0 messages without I/O: an incremental request parser and response serializer.

``RequestParser.receive_data(bytes)`` buffers, ``next_event()`` returns the
next complete event or None: a :class:`Request`, or an :class:`Interleaved`
frame (``$``, channel, length, data: RTP/RTCP over the TCP connection);
``feed(bytes)`` does both and returns every complete event. Sizes are
bounded; a bad request raises :class:`ParseError` carrying the status to
answer with. The Transport and URL helpers raise ValueError on anything out
of range, so a bad SETUP is refused when it arrives, never later.
"""

import calendar
import email.utils
import re
import struct
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

_METHOD = re.compile(r"^[A-Z][A-Z_]{0,31}$")
# ASCII digits only: str.isdigit() and int() also take digits of other scripts ('١٢').
_DIGITS = re.compile(r"[0-9]{1,10}\Z")
SERVER_NAME = "RotorDream RTSP"
MAX_HEADER_BYTES = 16384
MAX_BODY_BYTES = 65536
MAX_HEADERS = 64

REASONS = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 413: "Request Entity Too Large", 414: "Request-URI Too Long",
    451: "Parameter Not Understood", 453: "Not Enough Bandwidth", 454: "Session Not Found",
    455: "Method Not Valid in This State", 456: "Header Field Not Valid for Resource",
    457: "Invalid Range", 459: "Aggregate Operation Not Allowed",
    461: "Unsupported Transport", 500: "Internal Server Error", 501: "Not Implemented",
    503: "Service Unavailable", 505: "RTSP Version Not Supported",
    551: "Option not supported",
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

    def __eq__(self, other):
        return isinstance(other, Headers) and self._items == other._items

    def __repr__(self):
        return "Headers(%r)" % (self._items,)

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

    def __bytes__(self):
        """The request on the wire (headers as given, Content-Length among them if sent)."""
        lines = ["%s %s %s" % (self.method, self.uri, self.version)]
        lines += ["%s: %s" % item for item in self.headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


@dataclass
class Interleaved:
    """One ``$``-framed binary packet on the RTSP connection."""

    channel: int
    data: bytes


def take_interleaved(buf):
    """The interleaved frame (``$``, channel, length, data) at the front of ``buf`` (a
    bytearray), cut from it; None while it is incomplete."""
    if len(buf) < 4:
        return None
    channel, length = struct.unpack("!BH", buf[1:4])
    if len(buf) < 4 + length:
        return None
    frame = Interleaved(channel, bytes(buf[4:4 + length]))
    del buf[:4 + length]
    return frame


@dataclass
class Response:
    """One RTSP response; ``reason`` replaces the standard reason phrase when given."""

    status: int
    headers: list = field(default_factory=list)
    body: bytes = b""
    reason: str = None

    def __bytes__(self):
        reason = self.reason or REASONS.get(self.status, "Unknown")
        lines = ["RTSP/1.0 %d %s" % (self.status, " ".join(reason.split()))]
        for name, value in self.headers:
            lines.append("%s: %s" % (name, value))
        if self.body:
            lines.append("Content-Length: %d" % len(self.body))
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


_last_date = (None, "")  # (second, its date): formatting costs more than the rest of an answer


def http_date(now):
    """An RFC 1123 date for the Date header."""
    global _last_date
    second = int(now)
    if _last_date[0] != second:
        _last_date = (second, email.utils.formatdate(second, usegmt=True))
    return _last_date[1]


class RequestParser:
    """Incremental parser of requests and interleaved frames from a byte stream."""

    def __init__(self):
        self._buf = bytearray()

    @property
    def buffered(self):
        """Bytes received and not yet returned as events."""
        return len(self._buf)

    def receive_data(self, data):
        """Add bytes; nothing is parsed until :meth:`next_event`."""
        self._buf += data

    def feed(self, data):
        """Add bytes; return the list of complete events. Raises ParseError."""
        self.receive_data(data)
        events = []
        event = self.next_event()
        while event is not None:
            events.append(event)
            event = self.next_event()
        return events

    def next_event(self):
        """The next complete Request or Interleaved frame, or None. Raises ParseError."""
        while self._buf[:2] == b"\r\n":  # stray keep-alive newlines between messages
            del self._buf[:2]
        if not self._buf:
            return None
        if self._buf[0] == 0x24:  # '$'
            return take_interleaved(self._buf)
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_HEADER_BYTES:
                raise ParseError(400, "request headers too large")
            return None
        if end > MAX_HEADER_BYTES:
            raise ParseError(400, "request headers too large")
        request = self._parse_head(bytes(self._buf[:end]))
        length = request.headers.get("Content-Length", "0")
        if not _DIGITS.match(length):
            raise ParseError(400, "bad Content-Length", request.cseq)
        length = int(length)
        if length > MAX_BODY_BYTES:
            raise ParseError(413, "request body too large", request.cseq)
        if len(self._buf) < end + 4 + length:
            return None
        request.body = bytes(self._buf[end + 4:end + 4 + length])
        del self._buf[:end + 4 + length]
        return request

    @staticmethod
    def _parse_head(head):
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError(400, "request is not text") from None
        lines = text.split("\r\n")
        bare = text.replace("\r\n", "")
        if "\r" in bare or "\n" in bare:
            # Values and the URI are echoed into responses (CSeq, Content-Base, RTP-Info).
            raise ParseError(400, "bare CR or LF in the request head")
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
        cseq = h.get("CSeq")
        if cseq is None or not _DIGITS.match(cseq):
            cseq = None   # never echoed unless it is a number
        if len(parts) != 3 or not _METHOD.match(parts[0]):
            raise ParseError(400, "malformed request line", cseq)
        method, uri, version = parts
        if not version.startswith("RTSP/"):
            raise ParseError(400, "not an RTSP request", cseq)
        if version != "RTSP/1.0":
            raise ParseError(505, "only RTSP/1.0 is spoken here", cseq)
        if cseq is None:
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


def parse_pair(value, low=0, high=65535):
    """Parse ``a-b`` (or ``a``, meaning ``a-(a+1)``), both in [low, high]; else ValueError."""
    a, sep, b = str(value).partition("-")
    if not _DIGITS.match(a) or sep and not _DIGITS.match(b):
        raise ValueError("not a number pair: %r" % (value,))
    a = int(a)
    b = int(b) if sep else a + 1
    if not (low <= a <= high and low <= b <= high):
        raise ValueError("%d-%d is outside %d-%d" % (a, b, low, high))
    return a, b


def interleaved_channels(value):
    """The (RTP, RTCP) channels of ``interleaved=a-b``: 0-255 and distinct; else ValueError."""
    rtp, rtcp = parse_pair(value, 0, 255)
    if rtp == rtcp:
        raise ValueError("RTP and RTCP need two channels")
    return rtp, rtcp


def client_ports(value):
    """The (RTP, RTCP) ports of ``client_port=p[-q]``: an even port and the next; else ValueError.

    RFC 3550 section 11 pairs RTP on an even port with RTCP on the next one.
    """
    rtp, rtcp = parse_pair(value, 1, 65535)
    if rtp % 2 or rtcp != rtp + 1:
        raise ValueError("client_port must be an even port and the next one")
    return rtp, rtcp


def split_url(uri):
    """(path segments, query dict) of a request URI (``*`` has none); ValueError if unparsable."""
    if uri == "*":
        return [], {}
    parts = urlsplit(uri)   # raises ValueError, e.g. on "rtsp://[::1/stream1"
    parts.port              # so does a port that is not a number or out of range
    segments = [s for s in unquote(parts.path).split("/") if s]
    return segments, parse_qs(parts.query, keep_blank_values=True, max_num_fields=32)


def parse_range(value):
    """Start seconds of ``npt=<start>-[end]`` (None for ``now`` or no header)."""
    unit, start, _ = parse_range_spec(value)
    if unit not in (None, "npt"):
        raise ValueError("only npt ranges")
    return start


_CLOCK = re.compile(r"([0-9]{8})T([0-9]{6})(?:\.([0-9]{1,9}))?Z\Z")


def parse_clock(text):
    """POSIX seconds of an RFC 2326 utc-time, ``20261130T024122.062Z``; ValueError else."""
    m = _CLOCK.match(text.strip())
    if not m:
        raise ValueError("not a clock time: %r" % text[:40])
    date, hms, fraction = m.groups()
    when = calendar.timegm((int(date[:4]), int(date[4:6]), int(date[6:]), int(hms[:2]),
                            int(hms[2:4]), int(hms[4:]), 0, 0, 0))
    if not (1 <= int(date[4:6]) <= 12 and 1 <= int(date[6:]) <= 31 and int(hms[:2]) < 24
            and int(hms[2:4]) < 60 and int(hms[4:]) < 61):
        raise ValueError("not a clock time: %r" % text[:40])
    return when + (float("0." + fraction) if fraction else 0.0)


def format_clock(seconds):
    """An RFC 2326 utc-time with milliseconds: ``20261130T024122.062Z``."""
    millis = int(round(seconds * 1000))
    return "%s.%03dZ" % (time.strftime("%Y%m%dT%H%M%S", time.gmtime(millis // 1000)),
                         millis % 1000)


def parse_range_spec(value):
    """``(unit, start, end)`` of a Range header: ``npt`` seconds (start None for ``now``)
    or ``clock`` POSIX seconds (RFC 2326 12.29; end None when open); ``(None, None, None)``
    without a header. ValueError for anything else."""
    if not value:
        return None, None, None
    unit, sep, spec = value.strip().partition("=")
    if not sep or unit not in ("npt", "clock"):
        raise ValueError("only npt and clock ranges")
    spec = spec.split(";")[0]  # a ;time= parameter is ignored
    first, dash, last = spec.partition("-")
    if not dash:
        raise ValueError("a range has a -")
    first, last = first.strip(), last.strip()
    if unit == "npt":
        start = None if first in ("", "now") else float(first)
        end = float(last) if last else None
        if start is not None and (start != start or start < 0 or start == float("inf")):
            raise ValueError("bad npt start")
        return unit, start, end
    if not first:
        raise ValueError("a clock range has a start")
    return unit, parse_clock(first), parse_clock(last) if last else None
