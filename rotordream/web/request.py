"""Request bodies bounded per route while they arrive, kept in memory, never on disk.

twisted.web's own Request spools a body before any resource runs: in memory under
100 kB, else in a temporary file, and a chunked body (no length) always to a file,
with nothing counting its bytes. :class:`BoundedRequest` (the Site's
requestFactory) knows the route's limit as soon as the headers are in (the channel
holds the request line), refuses a Content-Length over it at once and a chunked
body as soon as its count passes it: 413 with the JSON error envelope, then the
connection is closed. Whatever is accepted is at most the route's limit, in memory.
"""

import json
from dataclasses import dataclass
from io import BytesIO
from urllib.parse import unquote_to_bytes

from twisted.logger import Logger
from twisted.web import server

from rotordream.web.api.base import error_body

log = Logger()

# After a refusal the client may still be sending: read and drop its bytes this long so
# it can read the 413 (closing with unread data would reset the connection first).
LINGER_SECONDS = 2.0
_LOGGED_PATH = 120  # characters of a refused path that go to the log


@dataclass(frozen=True)
class BodyLimits:
    """The largest body each route takes, in bytes."""

    api: int = 65536       # /api: JSON ([http] max_body)
    onvif: int = 131072    # /onvif: SOAP ([onvif] max_body)
    other: int = 0         # every other route (the page, the WebSocket)

    @classmethod
    def from_config(cls, config):
        """The limits a daemon's configuration sets."""
        return cls(api=config.http.max_body, onvif=config.onvif.max_body)

    def limit_for(self, method, uri):
        """The body limit for a request line's method and target (bytes each).

        The method does not change it: under /api and /onvif every method gets the
        route's limit, so an undeclared one still reaches its resource for its 405.
        """
        path = uri.split(b"?", 1)[0]
        if not path.startswith(b"/"):
            return self.other
        # Segments as the resource tree will see them (it unquotes each one).
        first, second = (unquote_to_bytes(p) for p in (path[1:].split(b"/", 2) + [b""])[:2])
        if first == b"api":
            return self.other if second == b"v1" else self.api  # v1: the WebSocket
        if first == b"onvif":
            return self.onvif
        return self.other


def refusal(limit):
    """The bytes of the 413 response that ends a connection whose body is too large."""
    body = json.dumps(error_body(413, "the body is larger than %d bytes" % limit,
                                 "PAYLOAD_TOO_LARGE", limit=limit)).encode()
    return (b"HTTP/1.1 413 Payload Too Large\r\n"
            b"Content-Type: application/json; charset=utf-8\r\n"
            b"Cache-Control: no-store\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)) + body


class BoundedRequest(server.Request):
    """A Request whose body is held in memory and refused past its route's limit."""

    limits = BodyLimits()
    body_limit = None   # this request's limit, known once its headers are in
    received = 0        # body bytes so far (chunked bodies have no length to trust)
    refused = False

    @classmethod
    def with_limits(cls, limits):
        """A request factory for a Site, with ``limits``."""
        return type(cls.__name__, (cls,), {"limits": limits})

    @classmethod
    def reconfigure(cls, config):
        """Apply reloaded body limits to the requests this factory makes from now on."""
        cls.limits = BodyLimits.from_config(config)

    def gotLength(self, length):
        """Headers are in: pick the limit, refuse a declared length over it, else buffer."""
        self.content = BytesIO()
        channel = self.channel
        self.body_limit = self.limits.limit_for(getattr(channel, "_command", b""),
                                                getattr(channel, "_path", b""))
        if length is not None and length > self.body_limit:
            self._refuse()

    def handleContentChunk(self, data):
        """Count the body as it arrives; refuse it once it passes the limit."""
        if self.refused:
            return
        self.received += len(data)
        if self.body_limit is not None and self.received > self.body_limit:
            self._refuse()
            return
        self.content.write(data)

    def requestReceived(self, command, path, version):
        """Process the request unless its body was refused."""
        if not self.refused:
            super().requestReceived(command, path, version)

    def _refuse(self):
        self.refused = True
        self.content = BytesIO()
        channel = self.channel
        transport = channel.transport
        # No "100 Continue" after the 413 (the channel sends it after gotLength).
        self.requestHeaders.removeHeader(b"expect")
        peer = getattr(transport.getPeer(), "host", "?")
        path = getattr(channel, "_path", b"").decode("latin-1")
        log.info("refused a request body over {limit} bytes: {method} {path} from {peer}",
                 limit=self.body_limit, method=getattr(channel, "_command", b"?").decode(
                     "latin-1"), path=path[:_LOGGED_PATH], peer=peer)
        # From here on the connection's bytes are dropped, never parsed or buffered.
        channel.dataReceived = channel.rawDataReceived = _drop
        channel.persistent = False
        channel.setTimeout(None)
        transport.write(refusal(self.body_limit))
        half_close = getattr(transport, "loseWriteConnection", None)
        if half_close is not None:
            half_close()
            channel.callLater(LINGER_SECONDS, transport.abortConnection)
        else:
            transport.loseConnection()


def _drop(data):
    """Read and forget (a refused body still arriving)."""
