"""The RTSP push client without I/O: ANNOUNCE, SETUP (mode=record), RECORD (RFC 2326 10.3).

:class:`PushClient` is one connection's conversation with an upstream server
(a media server taking the camera's stream). It hands out request bytes and
takes response bytes; every state transition is in ``TRANSITIONS``::

    init --ANNOUNCE 2xx--> announced --SETUP 2xx--> setup --RECORD 2xx--> recording

A 401 is answered once per challenge with Basic or Digest credentials (from
the URL); a second 401 is an :class:`AuthFailed`. Anything else that is not
2xx, or a response that makes no sense, is a :class:`PushFailed`. Interleaved
frames from the server (RTCP receiver reports) are passed up as they are.

:class:`Backoff` is the reconnect delay as a pure state machine: 1, 2, 4 ...
30 seconds after failures, back to the start after a session that lasted.

Why it is long: the conversation, the response parser it needs, URL handling
and client-side Basic/Digest belong to one protocol role and are tested
together without a reactor.
"""

import base64
import hashlib
import os
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

from rotordream.auth.digest import DigestError, parse_params
from rotordream.rtsp.message import Headers, Interleaved, client_ports, interleaved_channels, \
    parse_transport, take_interleaved

USER_AGENT = "RotorDream push"
MAX_HEAD = 16384
MAX_BODY = 65536
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322}

INIT, ANNOUNCED, SETUP, RECORDING, CLOSED = "init", "announced", "setup", "recording", "closed"
# state -> (request sent in it, state after its 2xx answer)
TRANSITIONS = {
    INIT: ("ANNOUNCE", ANNOUNCED),
    ANNOUNCED: ("SETUP", SETUP),
    SETUP: ("RECORD", RECORDING),
}


class PushError(Exception):
    """A push attempt that ended; ``message`` is what the status shows."""


class PushFailed(PushError):
    """The upstream refused or broke the conversation (not an authentication problem)."""


class AuthFailed(PushError):
    """The upstream refused the credentials (or asked for some and the URL has none)."""


@dataclass(frozen=True)
class PushUrl:
    """An upstream URL split into its parts; ``public`` has no password, ``request`` no
    user information at all (what goes into request lines)."""

    scheme: str
    host: str
    port: int
    user: str
    password: str
    request: str

    @property
    def public(self):
        """The URL as shown to people: the user name kept, the password never."""
        if not self.user:
            return self.request
        parts = urlsplit(self.request)
        return urlunsplit(parts._replace(netloc="%s@%s" % (self.user, parts.netloc)))


def parse_url(url):
    """Split ``rtsp[s]://[user[:pass]@]host[:port]/path``; ValueError when it is not one."""
    if not isinstance(url, str) or any(c in url for c in "\r\n\0 "):
        raise ValueError("not an rtsp:// or rtsps:// URL")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError("not an rtsp:// or rtsps:// URL")
    port = parts.port or DEFAULT_PORTS[scheme]   # parts.port raises ValueError itself
    host = parts.hostname
    netloc = ("[%s]" % host if ":" in host else host) + (":%d" % parts.port if parts.port else "")
    request = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
    return PushUrl(scheme, host, port, unquote(parts.username or ""),
                   unquote(parts.password or ""), request)


@dataclass
class Response:
    """One RTSP response from the upstream."""

    status: int
    reason: str
    headers: Headers
    body: bytes = b""


class ResponseParser:
    """Incremental parser of responses and interleaved frames; ValueError on bad bytes."""

    def __init__(self):
        self._buf = bytearray()

    def feed(self, data):
        """Add bytes; return every complete Response or Interleaved frame."""
        self._buf += data
        events = []
        while True:
            event = self._next()
            if event is None:
                return events
            events.append(event)

    def _next(self):
        while self._buf[:2] == b"\r\n":
            del self._buf[:2]
        if not self._buf:
            return None
        if self._buf[0] == 0x24:  # '$'
            return take_interleaved(self._buf)
        if not self._buf.startswith(b"RTSP/"[:len(self._buf)]):
            raise ValueError("not an RTSP response")
        end = self._buf.find(b"\r\n\r\n")
        if end < 0 or end > MAX_HEAD:
            if len(self._buf) > MAX_HEAD:
                raise ValueError("response head too large")
            return None
        lines = bytes(self._buf[:end]).decode("utf-8", "replace").split("\r\n")
        status_line = lines[0].split(" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith("RTSP/") or \
                not re.fullmatch(r"[0-9]{3}", status_line[1]):
            raise ValueError("malformed status line")
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise ValueError("malformed header line")
            headers.append((name.strip(), value.strip()))
        headers = Headers(headers)
        length = headers.get("Content-Length", "0")
        if not re.fullmatch(r"[0-9]{1,6}", length) or int(length) > MAX_BODY:
            raise ValueError("bad Content-Length")
        total = end + 4 + int(length)
        if len(self._buf) < total:
            return None
        body = bytes(self._buf[end + 4:total])
        del self._buf[:total]
        return Response(int(status_line[1]), status_line[2] if len(status_line) > 2 else "",
                        headers, body)


def basic_authorization(user, password):
    """The Authorization value for Basic (RFC 7617)."""
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode("utf-8")).decode()


def _hash(algorithm, text):
    fn = hashlib.sha256 if algorithm.upper().startswith("SHA-256") else hashlib.md5
    return fn(text.encode("utf-8")).hexdigest()


def digest_authorization(params, method, uri, user, password, nc=1, cnonce=None):
    """The Authorization value answering a parsed Digest challenge (RFC 7616/2617, qop=auth
    when offered); DigestError for an algorithm or qop it cannot answer."""
    algorithm = params.get("algorithm", "MD5")
    if algorithm.upper() not in ("MD5", "SHA-256"):
        raise DigestError("unsupported Digest algorithm %s" % algorithm)
    realm, nonce = params.get("realm", ""), params.get("nonce", "")
    ha1 = _hash(algorithm, "%s:%s:%s" % (user, realm, password))
    ha2 = _hash(algorithm, "%s:%s" % (method, uri))
    qops = [q.strip() for q in params.get("qop", "").split(",") if q.strip()]
    fields = [("username", user), ("realm", realm), ("nonce", nonce), ("uri", uri)]
    if "auth" in qops:
        cnonce = cnonce or os.urandom(8).hex()
        count = "%08x" % nc
        response = _hash(algorithm, ":".join((ha1, nonce, count, cnonce, "auth", ha2)))
        extra = [("qop", "auth"), ("nc", count), ("cnonce", cnonce)]
    elif qops:
        raise DigestError("unsupported qop %s" % params["qop"])
    else:
        response = _hash(algorithm, "%s:%s:%s" % (ha1, nonce, ha2))
        extra = []
    fields.append(("response", response))
    if "opaque" in params:
        fields.append(("opaque", params["opaque"]))
    if "algorithm" in params:
        fields.append(("algorithm", algorithm))
    text = ", ".join('%s="%s"' % (k, v.replace("\\", "\\\\").replace('"', '\\"'))
                     for k, v in fields)
    # qop, nc and algorithm are tokens: unquoted (RFC 7616 3.4).
    text += "".join(", %s=%s" % kv for kv in extra)
    return "Digest " + text


def _challenges(headers):
    """The WWW-Authenticate values of a 401: {"digest": params, "basic": params}."""
    found = {}
    for name, value in headers.items():
        if name.lower() != "www-authenticate":
            continue
        scheme, _, rest = value.strip().partition(" ")
        try:
            found.setdefault(scheme.lower(), parse_params(rest) if rest else {})
        except DigestError:
            continue
    return found


@dataclass
class Send:
    """Bytes to write on the connection."""

    data: bytes


@dataclass
class Recording:
    """The upstream takes media now: interleaved ``channels`` (TCP) or ``server_ports`` (UDP)."""

    session: str
    channels: tuple = None
    server_ports: tuple = None
    timeout: int = 60


@dataclass
class Rtcp:
    """An interleaved frame from the upstream (its RTCP receiver reports)."""

    channel: int
    data: bytes


class PushClient:
    """One push conversation; see the module docstring.

    ``transport`` is "tcp" (interleaved on channels 0-1) or "udp" (then
    ``udp_ports`` are the local RTP/RTCP ports offered as client_port).
    """

    def __init__(self, url, sdp, transport="tcp", udp_ports=None, track="trackID=0"):
        self.url = url if isinstance(url, PushUrl) else parse_url(url)
        self.sdp = sdp
        self.transport = transport
        self.udp_ports = udp_ports
        self.track_url = self.url.request.rstrip("/") + "/" + track
        self.state = INIT
        self.cseq = 0
        self.session = None
        self.timeout = 60
        self._parser = ResponseParser()
        self._pending = None      # (method, uri, headers, body) awaiting its answer
        self._authorization = None
        self._challenge = None    # ("digest", params) or ("basic", {}) once asked
        self._nc = 0
        self._answered_challenge = False

    # -- requests ---------------------------------------------------------

    def start(self):
        """The first request (ANNOUNCE with the SDP)."""
        return self._request("ANNOUNCE", self.url.request,
                             [("Content-Type", "application/sdp")], self.sdp)

    def keepalive(self):
        """A request that keeps the upstream session alive (OPTIONS with the session),
        or None before recording or while another request waits for its answer."""
        if self.state != RECORDING or self._pending is not None:
            return None
        return self._request("OPTIONS", self.url.request, [], b"")

    def teardown(self):
        """The TEARDOWN ending a recording session (None if there is none)."""
        if self.session is None or self.state == CLOSED:
            return None
        self.state = CLOSED
        return self._request("TEARDOWN", self.url.request, [], b"")

    def _request(self, method, uri, headers, body):
        self._pending = (method, uri, headers, body)
        self._answered_challenge = False
        return self._encode(method, uri, headers, body)

    def _encode(self, method, uri, headers, body):
        self.cseq += 1
        lines = ["%s %s RTSP/1.0" % (method, uri), "CSeq: %d" % self.cseq,
                 "User-Agent: %s" % USER_AGENT]
        auth = self._auth_header(method, uri)
        if auth:
            lines.append("Authorization: %s" % auth)
        if self.session is not None:
            lines.append("Session: %s" % self.session)
        lines += ["%s: %s" % kv for kv in headers]
        if body:
            lines.append("Content-Length: %d" % len(body))
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body

    def _auth_header(self, method, uri):
        if self._challenge is None:
            return None
        scheme, params = self._challenge
        if scheme == "basic":
            return basic_authorization(self.url.user, self.url.password)
        self._nc += 1
        return digest_authorization(params, method, uri, self.url.user, self.url.password,
                                    self._nc)

    def _transport_header(self):
        if self.transport == "udp":
            return "RTP/AVP;unicast;client_port=%d-%d;mode=record" % self.udp_ports
        return "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record"

    # -- responses --------------------------------------------------------

    def receive_data(self, data):
        """Feed bytes from the upstream; return the events (Send, Recording, Rtcp).

        Raises PushFailed or AuthFailed when the attempt is over."""
        try:
            incoming = self._parser.feed(data)
        except ValueError as e:
            raise PushFailed("bad response from the server: %s" % e) from None
        events = []
        for item in incoming:
            if isinstance(item, Interleaved):
                events.append(Rtcp(item.channel, item.data))
            else:
                events.extend(self._response(item))
        return events

    def _response(self, response):
        if self._pending is None:
            return []  # an answer nobody waits for (after TEARDOWN): ignored
        method, uri, headers, body = self._pending
        if response.headers.get("CSeq") not in (None, str(self.cseq)):
            return []  # a late answer to an earlier request
        if response.status == 401:
            return [Send(self._answer_challenge(response, method, uri, headers, body))]
        self._pending = None
        if method in ("OPTIONS", "TEARDOWN"):
            return []  # keep-alives: the upstream's answer does not matter
        if response.status == 403:
            raise AuthFailed("%s refused: 403 %s" % (method, response.reason))
        if not 200 <= response.status < 300:
            raise PushFailed("%s refused: %d %s" % (method, response.status, response.reason))
        expected, after = TRANSITIONS[self.state]
        if method != expected:
            raise PushFailed("answer to %s in state %s" % (method, self.state))
        self.state = after
        if after == ANNOUNCED:
            return [Send(self._request("SETUP", self.track_url,
                                       [("Transport", self._transport_header())], b""))]
        if after == SETUP:
            self._take_session(response)
            self._take_transport(response)
            return [Send(self._request("RECORD", self.url.request,
                                       [("Range", "npt=0.000-")], b""))]
        return [Recording(self.session, self.channels, self.server_ports, self.timeout)]

    def _answer_challenge(self, response, method, uri, headers, body):
        challenges = _challenges(response.headers)
        if not self.url.user:
            raise AuthFailed("the server asks for credentials and the URL has none")
        stale = challenges.get("digest", {}).get("stale", "").lower() == "true"
        if self._answered_challenge and not stale:
            raise AuthFailed("wrong user name or password (%d %s)"
                             % (response.status, response.reason))
        if "digest" in challenges:
            self._challenge = ("digest", challenges["digest"])
            self._nc = 0
        elif "basic" in challenges:
            self._challenge = ("basic", {})
        else:
            raise AuthFailed("the server asks for an authentication scheme other than "
                             "Basic or Digest")
        self._answered_challenge = True
        try:
            return self._encode(method, uri, headers, body)
        except DigestError as e:
            raise AuthFailed(str(e)) from None

    def _take_session(self, response):
        value = response.headers.get("Session")
        if not value:
            raise PushFailed("SETUP answer without a Session")
        sid, _, params = value.partition(";")
        self.session = sid.strip()
        m = re.search(r"timeout\s*=\s*([0-9]{1,5})", params)
        if m and int(m.group(1)) > 0:
            self.timeout = int(m.group(1))

    def _take_transport(self, response):
        self.channels = self.server_ports = None
        offers = parse_transport(response.headers.get("Transport", ""))
        offer = offers[0] if offers else {}
        try:
            if self.transport == "udp":
                ports = offer.get("server_port")
                if not isinstance(ports, str):
                    raise PushFailed("SETUP answer without server_port")
                self.server_ports = client_ports(ports)
            else:
                value = offer.get("interleaved", "0-1")
                self.channels = interleaved_channels(value if isinstance(value, str) else "0-1")
        except ValueError as e:
            raise PushFailed("SETUP answer with a bad Transport: %s" % e) from None


class Backoff:
    """Reconnect delays: ``first``, doubling up to ``longest`` seconds; a connection that
    stayed up ``reset_after`` seconds starts the sequence again."""

    def __init__(self, first=1.0, longest=30.0, reset_after=10.0):
        self.first = first
        self.longest = longest
        self.reset_after = reset_after
        self.next_delay = first

    def connected(self, now):
        """Remember when a session began (``now`` in the clock's seconds)."""
        self._since = now

    def failed(self, now, at_least=0.0):
        """The delay before the next attempt after a failure at ``now``."""
        since = getattr(self, "_since", None)
        self._since = None
        if since is not None and now - since >= self.reset_after:
            self.next_delay = self.first
        delay = max(self.next_delay, at_least)
        self.next_delay = min(self.longest, max(delay, self.first) * 2)
        return min(delay, self.longest)
