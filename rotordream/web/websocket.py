"""The control WebSocket at /api/v1: Autobahn on the REST Site, broadcasting state changes.

One state subscription for the whole factory; each change is serialized once
per distinct permission set and sent to every client that may read it.
Limits: messages per second per connection, message size, and a bounded send
buffer: a client that stops reading is dropped, never slowing the others.

Browsers send cookies (and saved Basic/Digest credentials) with a WebSocket
upgrade from any page, and the Same-Origin Policy does not apply to
WebSockets: an upgrade whose Origin is foreign (rotordream.auth.origin) and
that carries such ambient credentials is refused with 403 unless the origin
is listed in ``[http] allowed_origins`` or ``cors_origins``. A foreign page
without them gets the anonymous role (and may log in in-band); upgrades
without an Origin (scripts, SDKs) are not browser requests and pass.
"""

import itertools
import json
from http.cookies import CookieError, SimpleCookie

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet import defer
from twisted.internet.interfaces import ISSLTransport
from twisted.logger import Logger

from rotordream.auth.ratelimit import RateLimiter
from rotordream.netutil import bound_send_buffer, unsent_bytes, write_now
from rotordream.auth.service import SESSION_COOKIE, AuthError
from rotordream.auth.origin import is_foreign
from rotordream.web.ws_message import ControlSession, error

log = Logger()

CLOSE_POLICY = 1008
_ids = itertools.count(1)


class ControlProtocol(WebSocketServerProtocol):
    """One control connection."""

    session = None

    def onConnect(self, request):
        """Authenticate from the upgrade request: Authorization, cookie or ?token=.

        Returns a Deferred (a password may need hashing); Autobahn answers the
        upgrade when it fires.
        """
        f = self.factory
        self.conn_id = next(_ids)
        headers = request.headers
        token = (request.params.get("token") or [None])[0]
        cookie = None
        if "cookie" in headers:
            try:
                morsel = SimpleCookie(headers["cookie"]).get(SESSION_COOKIE)
            except CookieError:  # a malformed header: no session cookie
                morsel = None
            cookie = morsel.value if morsel else None
        authorization = headers.get("authorization")
        # The address itself (IPv6 too): lockouts and attempt limits count per address.
        client = getattr(self.transport.getPeer(), "host", None) or request.peer
        if (cookie or _ambient(authorization)) and is_foreign(
                headers.get("origin"), headers.get("referer"), headers.get("host"),
                ISSLTransport.providedBy(self.transport), f.allowed_origins):
            log.info("refused a WebSocket upgrade with credentials from {origin} ({client})",
                     event="websocket_refused", client=client,
                     origin=(headers.get("origin") or headers.get("referer") or "")[:100],
                     reason="foreign origin")
            raise ConnectionDeny(403, "credentials from a foreign origin are not accepted; "
                                      "log in in-band, or list the origin in "
                                      "[http] allowed_origins")
        # The whole target as sent: a Digest response is bound to it.
        uri = getattr(self, "http_request_uri", None) or request.path
        d = defer.maybeDeferred(f.auth.authenticate, "GET", uri, authorization=authorization,
                                token=token, cookie=cookie, client=client,
                                protocol="websocket")
        return d.addCallbacks(self._authenticated, self._refused, callbackArgs=(client,))

    def _authenticated(self, principal, client):
        if self.state == self.STATE_CLOSED:
            raise ConnectionDeny(400, "the client went away")  # nothing to open any more
        f = self.factory
        self.session = ControlSession(f.state, f.auth, principal, client,
                                      origin="websocket:%d" % self.conn_id, send=self.send_json)
        self.limiter = RateLimiter(f.rate_limit, 1, f.clock)
        self.strikes = 0
        return None

    @staticmethod
    def _refused(failure):
        failure.trap(AuthError)
        e = failure.value
        raise ConnectionDeny(429 if e.code == "RATE_LIMITED" else 401, e.message)

    def onOpen(self):
        self.factory.clients[self.conn_id] = self
        bound_send_buffer(self.transport, min(self.factory.send_buffer, 262144))
        log.info("WebSocket client {session} connected", event="websocket_connect",
                 **self._who())

    def onClose(self, wasClean, code, reason):
        opened = self.factory.clients.pop(getattr(self, "conn_id", None), None) is not None
        if opened:
            log.info("WebSocket client {session} disconnected", event="websocket_disconnect",
                     code=code, **self._who())
        if self.session is not None:
            self.session.close()

    def _who(self):
        """The log fields naming this connection: client address, user, session."""
        principal = getattr(self.session, "principal", None)
        return {"client": getattr(self.session, "client", None)
                or getattr(self.transport.getPeer(), "host", "?"),
                "user": principal.name if principal is not None and principal.authenticated
                else "anonymous",
                "session": "websocket:%s" % getattr(self, "conn_id", "?")}

    def onMessage(self, payload, isBinary):
        if self.session is None or self.state != self.STATE_OPEN:
            return  # closing: what is still queued is not answered
        if self.limiter.hit("m"):
            self.factory.rate_limited += 1
            self.strikes += 1
            if self.strikes > self.factory.rate_limit:
                # sendClose() only takes application codes; 1008 is a protocol one.
                self.sendCloseFrame(code=CLOSE_POLICY,
                                    reasonUtf8=b"message rate limit exceeded", isReply=False)
                return
            self.session.refuse(error("rate limit exceeded: %d messages per second"
                                      % self.factory.rate_limit, None, "RATE_LIMITED"))
            return
        self.strikes = 0
        if isBinary:
            self.session.refuse(error("binary frames are not accepted; send JSON text"))
            return
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            self.session.refuse(error("message is not UTF-8"))
            return
        self.session.receive(text)

    def send_json(self, obj):
        """Send one JSON message to this client (nothing once it is closing)."""
        if self.state == self.STATE_OPEN:
            self.sendMessage(json.dumps(obj).encode("utf-8"))

    def send_prepared(self, prepared):
        """Send a message serialized once for many clients; drop this client if it lags."""
        if self.state != self.STATE_OPEN:
            return
        if unsent_bytes(self.transport) > self.factory.send_buffer:
            log.info("dropping WebSocket client {session}: it stopped reading",
                     event="websocket_dropped", reason="stopped reading", **self._who())
            self.factory.dropped += 1
            self.factory.clients.pop(self.conn_id, None)
            self.dropConnection(abort=True)
            return
        if self._perMessageCompress is None and not self.send_queue:
            # The frame is already built: write it as sendPreparedMessage would, without
            # its per-call debug formatting (a fifth of a 500-client broadcast's time).
            write_now(self.transport, prepared.payloadHybi)
        else:
            self.sendPreparedMessage(prepared)


class ControlFactory(WebSocketServerFactory):
    """All control connections; fans out state changes and events."""

    protocol = ControlProtocol

    def __init__(self, config, state, auth, clock):
        super().__init__()
        cfg = config.websocket
        self.state = state
        self.auth = auth
        self.clock = clock
        self.rate_limit = cfg.rate_limit
        self.send_buffer = cfg.send_buffer
        http = config.http
        self.allowed_origins = tuple(http.allowed_origins) + tuple(http.cors_origins)
        self.clients = {}
        self.dropped = 0        # clients dropped for not reading
        self.rate_limited = 0   # messages refused over [websocket] rate_limit
        self.setProtocolOptions(maxMessagePayloadSize=cfg.max_message,
                                maxFramePayloadSize=cfg.max_message,
                                autoPingInterval=cfg.ping_interval,
                                autoPingTimeout=cfg.ping_interval)
        self._unsubscribe = [self.state.subscribe(self.broadcast),
                             self.state.subscribe_events(self.broadcast_event)]

    def reconfigure(self, config):
        """Apply a reloaded ``[websocket]`` section and origins without closing anyone:
        the rate limit also to connected clients, sizes and pings to new connections."""
        cfg = config.websocket
        self.rate_limit = cfg.rate_limit
        self.send_buffer = cfg.send_buffer
        self.allowed_origins = tuple(config.http.allowed_origins) + \
            tuple(config.http.cors_origins)
        self.setProtocolOptions(maxMessagePayloadSize=cfg.max_message,
                                maxFramePayloadSize=cfg.max_message,
                                autoPingInterval=cfg.ping_interval,
                                autoPingTimeout=cfg.ping_interval)
        for proto in list(self.clients.values()):
            limiter = getattr(proto, "limiter", None)
            if limiter is not None:
                limiter.configure(cfg.rate_limit, 1)

    def count(self):
        """Connected clients."""
        return len(self.clients)

    def broadcast(self, changes, origin):
        """Send ``changes`` to every client that may read them (the writer got its reply)."""
        prepared = {}
        for conn_id, proto in list(self.clients.items()):
            if origin == proto.session.origin:
                continue
            perms = proto.session.principal.permissions
            if perms not in prepared:
                visible = proto.session.readable(changes)
                prepared[perms] = None if visible is None else self.prepareMessage(
                    json.dumps(visible).encode("utf-8"))
            if prepared[perms] is not None:
                proto.send_prepared(prepared[perms])

    def broadcast_event(self, event):
        """Send a daemon event (e.g. a recorder error) to every client."""
        if not self.clients:
            return
        prepared = self.prepareMessage(json.dumps(event).encode("utf-8"))
        for proto in list(self.clients.values()):
            proto.send_prepared(prepared)

    def close_all(self):
        """Close every connection (daemon stopping) and stop listening to the state."""
        for fn in self._unsubscribe:
            fn()
        for proto in list(self.clients.values()):
            proto.sendCloseFrame(code=1001, reasonUtf8=b"server shutting down", isReply=False)


def _ambient(authorization):
    """True for Authorization schemes a browser adds by itself (saved Basic/Digest)."""
    scheme = (authorization or "").strip().partition(" ")[0].lower()
    return scheme in ("basic", "digest")
