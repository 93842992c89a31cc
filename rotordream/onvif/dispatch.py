"""Operation tables and the request flow every ONVIF service shares: parse, find, authenticate,
authorise, run, answer.

A service module declares its operations with :class:`Table`::

    OPS = Table("tds")
    @OPS.op("GetDeviceInformation", roles.STATUS_READ)
    def get_device_information(call): return E("tds:GetDeviceInformationResponse", ...)

A handler takes a :class:`Call` and returns the response element(s) or a
Deferred of them; it raises :class:`~rotordream.onvif.soap.SoapFault` to
refuse. ``PRE_AUTH`` operations need no credentials and ignore bad ones
(ONVIF Core 5.9.4.3).
"""

import json
import os
from dataclasses import dataclass, field

from twisted.internet import defer
from twisted.logger import Logger

from rotordream.auth import roles
from rotordream.auth.service import AuthError, loggable_name
from rotordream.fsutil import atomic_write
from rotordream.motor import MotorError
from rotordream.onvif import soap, wsse
from rotordream.state import StateError

log = Logger()

PRE_AUTH = "pre-auth"
NEEDS_CREDENTIALS = "this operation needs credentials (WS-Security UsernameToken or HTTP Digest)"
NONCES_FILE = "onvif-nonces.json"  # WS-Security nonces handed from one run to the next

# ONVIF user levels <-> our roles (Core 5.9.4: Administrator, Operator, User, Anonymous).
LEVEL_TO_ROLE = {"Administrator": "admin", "Operator": "operator", "User": "viewer",
                 "Anonymous": "guest", "Extended": "viewer"}
ROLE_TO_LEVEL = {"admin": "Administrator", "operator": "Operator", "viewer": "User",
                 "guest": "Anonymous"}


@dataclass
class Operation:
    """One operation: its handler and the permission it needs (PRE_AUTH: none)."""

    name: str
    handler: object
    permission: object


class Table(dict):
    """``{"{namespace}Operation": Operation}`` for one service, filled by :meth:`op`."""

    def __init__(self, prefix):
        super().__init__()
        self.prefix = prefix
        self.namespace = soap.NSMAP[prefix]

    def op(self, name, permission):
        """Decorator registering a handler for ``name`` needing ``permission``."""
        def register(fn):
            self["{%s}%s" % (self.namespace, name)] = Operation(name, fn, permission)
            return fn
        return register


@dataclass
class Call:
    """One request as a handler sees it."""

    ctx: object
    service: str                 # "device", "media", ...
    envelope: object             # soap.Envelope
    principal: object
    scheme: str = "http"
    host: str = "127.0.0.1"      # the host the client addressed (never 0.0.0.0)
    port: int = 80
    client: str = None
    extra: dict = field(default_factory=dict)
    path: tuple = ()             # path segments after /onvif/<service>_service (subscriptions)

    @property
    def request(self):
        """The operation element (the Body's first child)."""
        return self.envelope.operation

    def base_url(self):
        """``scheme://host[:port]`` the client reached us on."""
        host = "[%s]" % self.host if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return "%s://%s%s" % (self.scheme, host, "" if self.port == default else ":%d"
                              % self.port)

    def xaddr(self, service):
        """The service address for ``service`` ("device", "media", ...)."""
        return "%s/onvif/%s_service" % (self.base_url(), service)

    def require(self, permission):
        """Raise ter:NotAuthorized unless the caller holds ``permission``."""
        if not self.principal.can(permission):
            raise soap.not_authorized("user %s (%s) may not do this"
                                      % (self.principal.name, self.principal.role))


class Dispatcher:
    """Runs requests for the services registered with :meth:`register`."""

    def __init__(self, ctx, clock=None):
        self.ctx = ctx
        self.tables = {}
        cfg = ctx.config.onvif
        users = ctx.auth.users
        # Built at start: tokens Created before now are refused (see wsse.Verifier).
        self.verifier = wsse.Verifier(
            password_for=users.secret, clock=clock or ctx.reactor,
            window=cfg.created_window, allow_text=cfg.password_text,
            digest_refusal=users.copies_refused)
        self.nonces_path = os.path.join(ctx.config.server.state_dir, NONCES_FILE)

    def load_nonces(self):
        """Take over the WS-Security nonces the last run saw (a token replayed across a
        restart within the same second is refused)."""
        try:
            with open(self.nonces_path, "rb") as f:
                seen = json.loads(f.read(8 * 1024 * 1024))
            if isinstance(seen, dict):
                self.verifier.nonces.load(seen)
        except (OSError, ValueError):
            pass  # none saved (first start, or a crash): Created before the start still fails

    def save_nonces(self):
        """Keep this run's nonces for the next (called as the daemon stops)."""
        try:
            atomic_write(self.nonces_path, json.dumps(self.verifier.nonces.dump()).encode(),
                         mode=0o600)
        except OSError as e:
            log.warn("could not keep the WS-Security nonces for the next run: {e}", e=e)

    def register(self, service, table):
        """Serve ``table`` (a :class:`Table` or plain dict) at ``/onvif/<service>_service``."""
        self.tables[service] = table

    # -- the flow -------------------------------------------------------

    def handle(self, service, body, http):
        """Deferred of (status, headers dict, body bytes) for one POST.

        ``http`` is a dict: method, uri, authorization, scheme, host, port, client and
        path (segments after the service's own path). Cancelling the Deferred (the
        client went away) cancels the handler's Deferred: long polls end there.
        Checking a password may wait for the auth service's hashing pool.
        """
        soap_ns = soap.SOAP12
        header = None
        try:
            envelope = soap.parse(body)
            soap_ns, header = envelope.soap_ns, envelope.header
            table = self.tables.get(service) or {}
            operation = table.get(envelope.name)
            if operation is None:
                raise soap.action_not_supported(envelope.operation.tag)
        except soap.SoapFault as fault:
            return defer.succeed(self._fault(fault, soap_ns, header))
        d = defer.maybeDeferred(self._principal, operation, envelope, http)
        d.addCallback(self._run, service, operation, envelope, http)
        d.addCallback(lambda result: (200, {b"content-type": soap.content_type(soap_ns)},
                                      soap.envelope(soap_ns, [result],
                                                    soap.addressing_reply(header))))
        d.addErrback(self._failed, soap_ns, operation.name, header)
        return d

    def _run(self, principal, service, operation, envelope, http):
        call = Call(self.ctx, service, envelope, principal, http.get("scheme", "http"),
                    http.get("host", "127.0.0.1"), http.get("port", 80),
                    http.get("client"), {"tables": self.tables},
                    tuple(http.get("path", ())))
        if operation.permission is not PRE_AUTH:
            call.require(operation.permission)
        return operation.handler(call)  # a Deferred is chained: cancelling reaches it

    def _principal(self, operation, envelope, http):
        """The caller's Principal, or a Deferred of it; SoapFault when refused."""
        auth = self.ctx.auth
        if operation.permission is PRE_AUTH:
            return roles.anonymous("guest")
        token = wsse.find_token(envelope.header)
        client = http.get("client")
        if token is not None:
            return self._wsse_principal(token, client)
        if http.get("authorization"):
            d = defer.maybeDeferred(auth.authenticate, http.get("method", "POST"),
                                    http.get("uri", ""), authorization=http["authorization"],
                                    client=client, protocol="onvif")
            return d.addCallbacks(self._http_principal, self._http_refused,
                                  callbackArgs=(http,), errbackArgs=(http,))
        raise self._challenge(http, NEEDS_CREDENTIALS)

    def _http_principal(self, principal, http):
        if principal is not None and principal.authenticated:
            return principal
        raise self._challenge(http, NEEDS_CREDENTIALS)

    def _http_refused(self, failure, http):
        failure.trap(AuthError)
        e = failure.value
        raise self._challenge(http, e.message, stale=e.stale, retry_after=e.retry_after)

    def _wsse_principal(self, token, client):
        auth = self.ctx.auth
        try:
            try:
                tok = wsse.read_token(token)
            except wsse.WsseError as e:
                # A malformed token that names a user counts as a wrong password for it.
                auth.count_failure(e.username or "", client, "onvif", "WS-Security")
                raise soap.not_authorized(e.message) from None
            if tok.text:
                # The same lockout as every other login (REST, RTSP, WebSocket).
                auth.refuse_if_locked(tok.username, client)
                self.verifier.refuse_text_unless_allowed(tok)
                d = defer.maybeDeferred(auth.check_password, tok.username, tok.password,
                                        client=client, protocol="onvif")
                return d.addErrback(self._wsse_auth_refused)
            return auth.verify_response(tok.username, client, "onvif", "WS-Security",
                                        lambda: self.verifier.verify_digest(tok),
                                        wsse.WsseError, lambda e: e.counts)
        except AuthError as e:
            raise self._not_authorized(e)
        except wsse.WsseError as e:
            if not e.counts:
                log.info("ONVIF WS-Security refused for {user} from {client}: {why}",
                         user=loggable_name(e.username or ""), client=client, why=e.message)
            raise soap.not_authorized(e.message) from None

    def _wsse_auth_refused(self, failure):
        failure.trap(AuthError)
        raise self._not_authorized(failure.value)

    @staticmethod
    def _not_authorized(e):
        """ter:NotAuthorized for an AuthError, with Retry-After when rate limited."""
        headers = {b"retry-after": b"%d" % e.retry_after} if e.retry_after else {}
        return soap.not_authorized(e.message, headers=headers)

    def _challenge(self, http, reason, stale=False, retry_after=None):
        headers = {}
        if not http.get("quiet"):
            headers[b"www-authenticate"] = [c.encode() for c in self.ctx.auth.challenges(stale)]
        if retry_after:
            headers[b"retry-after"] = b"%d" % retry_after
        return soap.not_authorized(reason, http_status=401, headers=headers)

    def _fault(self, fault, soap_ns, header=None):
        headers = {b"content-type": soap.content_type(soap_ns)}
        headers.update(fault.headers)
        return fault.http_status, headers, soap.fault_envelope(
            fault, soap_ns, soap.addressing_reply(header, fault=True))

    def _failed(self, failure, soap_ns, name, header=None):
        e = failure.value
        if isinstance(e, soap.SoapFault):
            return self._fault(e, soap_ns, header)
        if isinstance(e, StateError):
            if e.code in ("UNAUTHORIZED", "FORBIDDEN"):
                return self._fault(soap.not_authorized(e.message), soap_ns, header)
            return self._fault(soap.invalid_arg("ter:ConfigModify", e.message), soap_ns, header)
        if isinstance(e, MotorError):
            return self._fault(soap.receiver("ter:Action", "motor: %s" % e), soap_ns, header)
        if isinstance(e, defer.CancelledError):
            return self._fault(soap.receiver("ter:Action", "cancelled"), soap_ns, header)
        log.failure("ONVIF {name} failed", failure, name=name)
        return self._fault(soap.receiver("ter:Action", "internal error in %s" % name), soap_ns,
                           header)
