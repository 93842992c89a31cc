"""RTSP over HTTP (the QuickTime/ONVIF tunnel) on the web port: a thin adapter to RTSPConnection.

A client opens two HTTP connections that share an ``x-sessioncookie``: a
``GET`` whose response stays open and carries the server's RTSP replies and
interleaved RTP, and a ``POST`` whose endless body carries the client's RTSP
requests in base64. Both arrive at the twisted.web Site; this channel
recognises them once their headers are in and takes the connections over
before any Request sees a body, so no HTTP body limit applies to the POST
half. The RTSP server sees one ordinary (TCP-interleaved) connection. ONVIF's
GetStreamUri with the HTTP transport points here (ONVIF Streaming 5.1.1.3).

Limits (:class:`Tunnels`, ``[rtsp] tunnel_timeout`` and
``max_tunnels_per_address``): a tunnel (its GET half) is closed once it has
been without an RTSP session for ``tunnel_timeout`` seconds, counted from its
opening, so a GET half whose POST never comes, or whose client only talks,
ends; the RTSP session rules take over while it has sessions. A POST half
that arrives before its GET waits ``tunnel_timeout`` seconds, reading
nothing, then gets 404. A POST must come from the address of its GET, one at
a time. Tunnels and waiting POST halves are each capped per client address
and in all (``MAX_TUNNELS``).
"""

import base64
import binascii
from collections import Counter

from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web import http

from rotordream.rtsp.connection import RTSPConnection

log = Logger()

TUNNELLED = b"application/x-rtsp-tunnelled"
MAX_TUNNELS = 64         # tunnels in all, and waiting POST halves in all
MAX_EARLY_BYTES = 65536  # what a waiting POST half may have sent before it was paused


def tunnel_kind(method, headers):
    """"get", "post" or None for an HTTP request's method and headers."""
    cookie = headers.getRawHeaders(b"x-sessioncookie")
    if not cookie:
        return None
    if method == b"GET" and TUNNELLED in b",".join(headers.getRawHeaders(b"accept", [])):
        return "get"
    if method == b"POST" and headers.getRawHeaders(b"content-type", [b""])[0].startswith(
            TUNNELLED):
        return "post"
    return None


class Base64Stream:
    """Decode base64 that arrives in arbitrary pieces (whitespace ignored)."""

    def __init__(self):
        self.pending = b""

    def feed(self, data):
        """The bytes decodable so far; raises ValueError on non-base64 input."""
        data = self.pending + b"".join(data.split())
        usable = len(data) - len(data) % 4
        self.pending = data[usable:]
        try:
            return base64.b64decode(data[:usable], validate=True)
        except binascii.Error as e:
            raise ValueError(str(e)) from None


class Tunnel:
    """One GET half: its cookie, client address, RTSP connection and POST half."""

    def __init__(self, cookie, address, get, conn, now):
        self.cookie = cookie
        self.address = address
        self.get = get          # the GET half's channel
        self.conn = conn        # the RTSPConnection it carries
        self.post = None        # the attached POST half's channel
        self.with_session = now  # last time it was seen with an RTSP session (or opened)


class Tunnels:
    """The tunnels of one site: lookup by cookie, caps, and expiry on a clock."""

    def __init__(self, rtsp_server, clock, timeout, per_address):
        self.rtsp = rtsp_server
        self.clock = clock
        self.timeout = timeout
        self.per_address = per_address
        self.by_cookie = {}
        self.waiting = {}      # POST channel -> (cookie, address, since)
        self._ticker = None

    def _count(self, address):
        return Counter(t.address for t in self.by_cookie.values())[address]

    def open_get(self, cookie, address, channel, conn):
        """Register a GET half; None if refused (duplicate cookie or a cap), else the Tunnel."""
        if cookie in self.by_cookie or len(self.by_cookie) >= MAX_TUNNELS or \
                self._count(address) >= self.per_address:
            return None
        tunnel = Tunnel(cookie, address, channel, conn, self.clock.seconds())
        self.by_cookie[cookie] = tunnel
        self._tick_while_needed()
        return tunnel

    def waiting_post(self, tunnel):
        """The POST half that came early for ``tunnel`` (no longer waiting), or None."""
        for post, (cookie, address, _) in list(self.waiting.items()):
            if cookie == tunnel.cookie and address == tunnel.address:
                del self.waiting[post]
                return post
        return None

    def find(self, cookie, address):
        """The tunnel a POST half from ``address`` may join (free, same address), or None."""
        tunnel = self.by_cookie.get(cookie)
        if tunnel is None or tunnel.address != address or tunnel.post is not None:
            return None
        return tunnel

    def wait(self, channel, cookie, address):
        """Let a POST half wait for its GET; False if a cap refuses it."""
        same = sum(1 for _, a, _ in self.waiting.values() if a == address)
        if len(self.waiting) >= MAX_TUNNELS or same >= self.per_address:
            return False
        self.waiting[channel] = (cookie, address, self.clock.seconds())
        self._tick_while_needed()
        return True

    def closed(self, channel):
        """A half's connection is gone: forget it."""
        self.waiting.pop(channel, None)
        for tunnel in list(self.by_cookie.values()):
            if tunnel.get is channel:
                del self.by_cookie[tunnel.cookie]
            elif tunnel.post is channel:
                tunnel.post = None

    def tick(self):
        """Close tunnels without a session for ``timeout``, and POST halves waited too long."""
        now = self.clock.seconds()
        for tunnel in list(self.by_cookie.values()):
            if tunnel.conn.sessions:
                tunnel.with_session = now
            elif now - tunnel.with_session >= self.timeout:
                log.info("RTSP tunnel from {client} closed: no RTSP session for {t} s",
                         client=tunnel.address, t=self.timeout)
                tunnel.get.transport.loseConnection()
                del self.by_cookie[tunnel.cookie]
        for post, (_, address, since) in list(self.waiting.items()):
            if now - since >= self.timeout:
                del self.waiting[post]
                post.refuse(b"404 Not Found")
        if not self.by_cookie and not self.waiting and self._ticker.running:
            self._ticker.stop()

    def _tick_while_needed(self):
        if self._ticker is None:
            self._ticker = LoopingCall(self.tick)
            self._ticker.clock = self.clock
        if not self._ticker.running:
            self._ticker.start(max(0.1, self.timeout / 10.0), now=False)


class TunnelChannel(http.HTTPChannel):
    """An HTTPChannel that hands RTSP tunnel connections to the RTSP server."""

    rtsp = None        # the RTSPServer (set by install())
    tunnels = None     # the site's Tunnels (set by install())
    _tunnel = None     # "get", "post" or "closed" once this connection is taken over
    _cookie = None
    _joined = None     # the Tunnel this half belongs to
    _decoder = None
    _early = b""       # what a waiting POST half sent before it was paused

    def allHeadersReceived(self):
        request = self.requests[-1]
        kind = tunnel_kind(self._command, request.requestHeaders) if self.rtsp else None
        if kind is None:
            return super().allHeadersReceived()
        # Taken over here, before HTTPChannel.allHeadersReceived gives the Request its
        # length: the endless POST body never reaches a Request or its body limit.
        self._cookie = request.requestHeaders.getRawHeaders(b"x-sessioncookie")[0]
        self.setTimeout(None)  # Tunnels time the halves out
        self.length = None     # lineReceived then switches to raw mode, not to a resource
        self._tunnel = kind
        address = getattr(self.transport.getPeer(), "host", None)
        if kind == "get":
            self._open_get(address)
            return
        self._decoder = Base64Stream()
        tunnel = self.tunnels.find(self._cookie, address)
        if tunnel is not None:
            self.attach(tunnel)
        elif self._cookie in self.tunnels.by_cookie:
            self.refuse(b"404 Not Found")  # another address's, or it has a POST already
        elif self.tunnels.wait(self, self._cookie, address):
            self.transport.pauseProducing()  # its GET may still be on its way
        else:
            self.refuse(b"503 Service Unavailable")

    def _open_get(self, address):
        conn = RTSPConnection(self.rtsp)
        conn.protocol = "rtsp_http"
        tunnel = self.tunnels.open_get(self._cookie, address, self, conn)
        if tunnel is None:
            self.refuse(b"503 Service Unavailable")
            return
        self._joined = tunnel
        self.transport.write(b"HTTP/1.0 200 OK\r\nServer: RotorDream\r\nConnection: close\r\n"
                             b"Cache-Control: no-store\r\nPragma: no-cache\r\n"
                             b"Content-Type: application/x-rtsp-tunnelled\r\n\r\n")
        conn.makeConnection(self.transport)
        early = self.tunnels.waiting_post(tunnel)
        if early is not None:
            early.attach(tunnel)

    def attach(self, tunnel):
        """Join this POST half to ``tunnel``: its requests now go to the tunnel's connection."""
        self._joined = tunnel
        tunnel.post = self
        tunnel.conn.set_producer(self.transport)  # RTSP backpressure pauses this half
        early, self._early = self._early, b""
        if early:
            self._post_data(early)
        if self._tunnel == "post" and not tunnel.conn.paused:
            self.transport.resumeProducing()

    def refuse(self, status):
        """Answer ``status`` and close this half."""
        self._tunnel = "closed"
        self.transport.write(b"HTTP/1.0 " + status + b"\r\nContent-Length: 0\r\n\r\n")
        self.transport.loseConnection()

    def rawDataReceived(self, data):
        if self._tunnel is None:
            return super().rawDataReceived(data)
        if self._tunnel != "post":
            return  # nothing is expected from the GET half
        if self._joined is None:
            self._early += data   # read before the pause took effect
            if len(self._early) > MAX_EARLY_BYTES:
                self.tunnels.closed(self)
                self.refuse(b"413 Request Entity Too Large")
            return
        self._post_data(data)

    def _post_data(self, data):
        try:
            decoded = self._decoder.feed(data)
        except ValueError:
            log.info("RTSP tunnel: the POST body is not base64; closing it")
            self._tunnel = "closed"
            self.transport.loseConnection()
            return
        conn = self._joined.conn
        if decoded and conn.connected:
            conn.dataReceived(decoded)

    def connectionLost(self, reason):
        if self._tunnel is not None:
            self.tunnels.closed(self)
        tunnel = self._joined
        if tunnel is not None and tunnel.get is self:
            tunnel.conn.connectionLost(reason)
            if tunnel.post is not None:
                tunnel.post.transport.loseConnection()  # its partner is gone
        elif tunnel is not None and tunnel.conn.producer is self.transport:
            tunnel.conn.set_producer(None)
        super().connectionLost(reason)


def install(site, rtsp_server):
    """Make ``site`` (a twisted.web Site) accept RTSP tunnels for ``rtsp_server``.

    A channel class the site already uses (e.g. one bounding request bodies) is
    kept: the tunnel channel is put in front of it, so tunnels are recognised
    first and every other request goes through it unchanged.
    """
    cfg = rtsp_server.rtsp_config
    tunnels = Tunnels(rtsp_server, rtsp_server.clock, cfg.tunnel_timeout,
                      cfg.max_tunnels_per_address)
    base = site.protocol
    bases = (TunnelChannel,)
    if isinstance(base, type) and issubclass(base, http.HTTPChannel) and \
            not issubclass(base, TunnelChannel):
        bases = (TunnelChannel, base)
    site.protocol = type("SiteTunnelChannel", bases, {"rtsp": rtsp_server, "tunnels": tunnels})
    return site
