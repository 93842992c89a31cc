"""RTSP over HTTP (the QuickTime/ONVIF tunnel) on the web port: a thin adapter to RTSPConnection.

A client opens two HTTP connections that share an ``x-sessioncookie``: a
``GET`` whose response stays open and carries the server's RTSP replies and
interleaved RTP, and a ``POST`` whose endless body carries the client's RTSP
requests in base64. Both arrive at the twisted.web Site; this channel
recognises them after their headers and takes the connections over, so the
RTSP server sees one ordinary (TCP-interleaved) connection. ONVIF's
GetStreamUri with the HTTP transport points here (ONVIF Streaming 5.1.1.3).
"""

import base64
import binascii

from twisted.logger import Logger
from twisted.web import http

from rotordream.rtsp.server import RTSPConnection

log = Logger()

TUNNELLED = b"application/x-rtsp-tunnelled"
MAX_TUNNELS = 64


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


class TunnelChannel(http.HTTPChannel):
    """An HTTPChannel that hands RTSP tunnel connections to the RTSP server."""

    rtsp = None        # the RTSPServer (set by install())
    tunnels = None     # cookie -> RTSPConnection of the GET half (shared by the site)
    _tunnel = None     # "get" or "post" once this connection is taken over
    _cookie = None
    _rtsp_conn = None
    _decoder = None

    def allHeadersReceived(self):
        request = self.requests[-1]
        kind = tunnel_kind(self._command, request.requestHeaders) if self.rtsp else None
        if kind is None:
            return super().allHeadersReceived()
        self._cookie = request.requestHeaders.getRawHeaders(b"x-sessioncookie")[0]
        self.setTimeout(None)  # the GET half is silent for as long as the stream plays
        self.length = None     # lineReceived then switches to raw mode, not to a resource
        self._tunnel = kind
        if kind == "get":
            self._open_get()
        else:
            self._decoder = Base64Stream()
            self._rtsp_conn = self.tunnels.get(self._cookie)
            if self._rtsp_conn is None:
                self._refuse(b"404 Not Found")

    def _open_get(self):
        if self._cookie in self.tunnels or len(self.tunnels) >= MAX_TUNNELS:
            self._refuse(b"503 Service Unavailable")
            return
        self.transport.write(b"HTTP/1.0 200 OK\r\nServer: RotorDream\r\nConnection: close\r\n"
                             b"Cache-Control: no-store\r\nPragma: no-cache\r\n"
                             b"Content-Type: application/x-rtsp-tunnelled\r\n\r\n")
        conn = RTSPConnection(self.rtsp)
        conn.makeConnection(self.transport)
        self._rtsp_conn = conn
        self.tunnels[self._cookie] = conn

    def _refuse(self, status):
        self._tunnel = "closed"
        self.transport.write(b"HTTP/1.0 " + status + b"\r\nContent-Length: 0\r\n\r\n")
        self.transport.loseConnection()

    def rawDataReceived(self, data):
        if self._tunnel is None:
            return super().rawDataReceived(data)
        if self._tunnel != "post" or self._rtsp_conn is None:
            return  # nothing is expected from the GET half
        try:
            decoded = self._decoder.feed(data)
        except ValueError:
            log.info("RTSP tunnel: the POST body is not base64; closing it")
            self._tunnel = "closed"
            self.transport.loseConnection()
            return
        if decoded and self._rtsp_conn.connected:
            self._rtsp_conn.dataReceived(decoded)

    def connectionLost(self, reason):
        if self._tunnel == "get" and self._rtsp_conn is not None:
            if self.tunnels.get(self._cookie) is self._rtsp_conn:
                del self.tunnels[self._cookie]
            self._rtsp_conn.connectionLost(reason)
            self._rtsp_conn.connected = 0
        super().connectionLost(reason)


def install(site, rtsp_server):
    """Make ``site`` (a twisted.web Site) accept RTSP tunnels for ``rtsp_server``."""
    tunnels = {}

    class Channel(TunnelChannel):
        rtsp = rtsp_server

    Channel.tunnels = tunnels
    site.protocol = Channel
    return site

