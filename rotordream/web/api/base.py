"""The REST building block: JSON envelope, errors, auth, permissions, limits.

Subclass :class:`ApiResource`, declare ``methods = {"GET": (handler_name,
permission)}`` (permission None = public) and write handlers
``handler(request, principal)`` returning data for the envelope, a
Deferred of it, or a :class:`Raw` response. Raise :class:`ApiError` for
errors. Declare ``routes`` (:class:`rotordream.web.api.schema.Route`) for the
OpenAPI document, and ``child_classes`` for the resources made per request.

Every call first passes the checks that cost nothing (rate limit, 405, 413,
a foreign browser Origin 403, a body typed other than JSON 415), then authentication,
which may be asynchronous (password hashes are verified off the reactor),
then the permission check and the handler.

Why it is long: it is the one request flow every REST resource shares (limits,
method, body, origin and content-type checks, authentication, permissions,
the envelope and every error shape); split, that flow would be read across files.
"""

import json
import time
import traceback

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import resource, server

from rotordream import API_VERSION
from rotordream.auth.service import SESSION_COOKIE, AuthError
from rotordream.errors import ServiceError
from rotordream.state import StateError
from rotordream.auth import origin

log = Logger()

STATE_CHANGING = (b"POST", b"PUT", b"DELETE", b"PATCH")

_STATUS_CODES = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
                 405: "METHOD_NOT_ALLOWED", 409: "CONFLICT", 413: "PAYLOAD_TOO_LARGE",
                 415: "UNSUPPORTED_MEDIA_TYPE", 416: "RANGE_NOT_SATISFIABLE",
                 429: "RATE_LIMITED", 500: "INTERNAL", 503: "CAMERA_NOT_CONNECTED",
                 507: "INSUFFICIENT_STORAGE"}


class ApiError(Exception):
    """An error answered with the error envelope."""

    def __init__(self, status, message, code=None, headers=None, **extra):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or _STATUS_CODES.get(status, "BAD_REQUEST")
        self.headers = headers or {}
        self.extra = extra

    @classmethod
    def from_state(cls, e):
        """The ApiError for a StateError (bad key, range, permission)."""
        extra = {"key": e.key}
        if e.allowed is not None:
            extra["allowed"] = e.allowed
        code = "BAD_REQUEST" if e.code == "UNKNOWN_KEY" else e.code
        return cls(e.http_status, e.message, code, **extra)

    @classmethod
    def from_service(cls, e):
        """The ApiError for a service's refusal (recorder, WebRTC, ...)."""
        headers = {}
        if e.extra.get("retry_after") is not None:
            headers[b"retry-after"] = str(e.extra["retry_after"]).encode()
        return cls(e.status, e.message, e.code, headers=headers, **e.extra)

    @classmethod
    def from_auth(cls, e):
        """The ApiError for refused credentials (AuthError): 401, or 429 in a lockout."""
        if e.code != "RATE_LIMITED":
            return cls(401, e.message, stale=e.stale or None)
        wait = e.retry_after or 1
        extra = {}
        if e.limit is not None:
            # The limit that refused (a full hashing pool is no per-client limit).
            extra = {"limit": e.limit, "period": _period_name(e.period)}
        return cls(429, e.message, retry_after=wait, headers={b"retry-after": str(wait).encode()},
                   **extra)


class Raw:
    """A non-JSON response (an image, a file)."""

    def __init__(self, body, content_type, headers=None):
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}


def now_ms():
    """The envelope timestamp: milliseconds since the epoch."""
    return int(time.time() * 1000)


def envelope(data, **top):
    """The success envelope around ``data``."""
    out = {"status": "success", "version": API_VERSION, "data": data, "timestamp": now_ms()}
    out.update(top)
    return out


def error_body(status, message, code, **extra):
    """The error envelope."""
    out = {"status": "error", "version": API_VERSION, "error": message, "code": code,
           "timestamp": now_ms()}
    out.update(extra)
    return out


def write_json(request, status, body, headers=None):
    """Finish ``request`` with a JSON body."""
    payload = json.dumps(body).encode("utf-8")
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    for name, value in (headers or {}).items():
        if isinstance(value, (list, tuple)):
            for v in value:
                request.responseHeaders.addRawHeader(name, v)
        else:
            request.setHeader(name, value)
    request.setHeader(b"content-length", str(len(payload)).encode())
    if request.method == b"HEAD":
        return b""
    return payload


def client_key(request):
    """The key rate limits and lockouts count per client: its IP address."""
    addr = request.getClientAddress()
    return getattr(addr, "host", None) or "local"


def is_json_type(value):
    """True for a JSON media type: application/json or application/<x>+json, any params."""
    if not value:
        return False
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    kind = value.split(";", 1)[0].strip().lower()
    top, _, sub = kind.partition("/")
    return top == "application" and (sub == "json" or (sub.endswith("+json") and len(sub) > 5))


def _is_curl_default(value):
    """True for application/x-www-form-urlencoded, the type `curl -d` sends."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value.split(";", 1)[0].strip().lower() == "application/x-www-form-urlencoded"


def body_size(request):
    """How many body bytes the request carries (its content is already read in)."""
    content = getattr(request, "content", None)
    if content is None:
        return 0
    where = content.tell()
    content.seek(0, 2)
    size = content.tell()
    content.seek(where)
    return size


def read_json(request, allow_bare=False):
    """Parse the request body as JSON; ApiError 400 when it is not."""
    raw = request.content.read() if request.content is not None else b""
    if not raw.strip():
        raise ApiError(400, "a JSON body is required")
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: a small body nested thousands deep, not a server fault.
        raise ApiError(400, "the body is not valid JSON") from None


def require_object(body, *fields):
    """Check ``body`` is a JSON object with string ``fields``; return their values."""
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    values = []
    for f in fields:
        v = body.get(f)
        if not isinstance(v, str):
            raise ApiError(400, "%s must be a string" % f, key=f)
        values.append(v)
    return values


class ApiContext:
    """What REST resources share: the daemon context and the HTTP rate limiter."""

    def __init__(self, ctx, limiter):
        self.ctx = ctx
        self.limiter = limiter

    def reconfigure(self, config):
        """Apply a reloaded ``[http]`` rate limit to the next request (CORS, origins and
        body limits are read from ``ctx.config`` per request)."""
        self.limiter.configure(config.http.rate_limit, config.http.rate_period)


class ApiResource(resource.Resource):
    """A JSON REST resource; see the module docstring."""

    methods = {}
    isLeaf = False
    public_write = False  # True only where anonymous clients may POST (login)

    def __init__(self, api):
        super().__init__()
        self.api = api
        self.ctx = api.ctx

    def getChild(self, name, request):
        """Unknown children are JSON 404s."""
        return NotFound(self.api)

    # -- request handling -----------------------------------------------

    def render(self, request):
        """Run the checks every API call shares, authenticate, then call the handler."""
        if self._cors(request) and request.method == b"OPTIONS" and \
                request.getHeader(b"access-control-request-method"):
            request.setResponseCode(204)  # a CORS preflight from an allowed origin
            request.setHeader(b"access-control-allow-methods",
                              ", ".join(sorted(self.methods)).encode())
            request.setHeader(b"access-control-allow-headers",
                              b"authorization, content-type, x-csrf-token, x-requested-with")
            request.setHeader(b"access-control-max-age", b"600")
            return b""
        try:
            method, (name, permission) = self._precheck(request)
        except Exception as e:
            return self._fail(request, e)
        gone = request.notifyFinish()  # before anything can finish the request
        d = defer.maybeDeferred(self.authenticate, request)
        d.addCallback(self._authorize, method, permission)
        d.addCallback(lambda principal: getattr(self, name)(request, principal))
        d.addCallback(lambda r: self._finish(request, r))
        # Also catches a failure while answering (a 500 if nothing was sent yet).
        d.addErrback(lambda f: self._finish_failure(request, f))
        d.addErrback(lambda f: log.failure("answering {uri} failed", f, uri=request.uri))
        gone.addErrback(lambda _: d.cancel())  # a client that hangs up stops the work
        return server.NOT_DONE_YET

    def _cors(self, request):
        """Add CORS headers when the request's Origin is configured; True if it is."""
        origin = request.getHeader(b"origin")
        allowed = self.ctx.config.http.cors_origins
        if not origin or not allowed:
            return False
        if origin.decode("latin-1") not in allowed and "*" not in allowed:
            return False
        request.setHeader(b"access-control-allow-origin", origin)
        request.setHeader(b"access-control-allow-credentials", b"true")
        request.setHeader(b"vary", b"Origin")
        return True

    def _precheck(self, request):
        """The cheap checks before authentication; the method and its (handler, permission)."""
        api = self.api
        wait = api.limiter.hit(client_key(request))
        if wait:
            raise ApiError(429, "Rate limit exceeded", limit=api.limiter.limit,
                           period=_period_name(api.limiter.period), retry_after=wait,
                           headers={b"retry-after": str(wait).encode()})
        method = request.method.decode("ascii", "replace")
        if method == "HEAD" and "GET" in self.methods:
            method = "GET"
        if method not in self.methods:
            allow = ", ".join(sorted(self.methods))
            raise ApiError(405, "%s is not allowed here" % method,
                           headers={b"allow": allow.encode()}, allowed=sorted(self.methods))
        length = request.getHeader(b"content-length")
        max_body = self.ctx.config.http.max_body
        if length and length.isdigit() and int(length) > max_body:
            raise ApiError(413, "the body is larger than %d bytes" % max_body,
                           limit=max_body)
        browser = self._browser_origin(request)
        if request.method in STATE_CHANGING and browser == origin.FOREIGN:
            raise ApiError(403, "requests from this page's origin are not allowed; "
                                "list it in [http] allowed_origins to trust it")
        ctype = request.getHeader(b"content-type")
        if ctype is not None and not is_json_type(ctype) and body_size(request) and \
                browser != origin.TRUSTED and \
                not (browser == origin.NONE and _is_curl_default(ctype)):
            # A browser sends text/plain, form and multipart bodies across sites without
            # a CORS preflight; a JSON one only after asking. A body without any type
            # comes from a script (a browser sends one only with an Origin, checked
            # above). Pages of this origin (the camera's own, as the API reference's
            # browser code) or a configured one are trusted whatever they send. A
            # form-typed body with neither Origin nor Referer is `curl -d` (the API
            # reference's login example): a browser always sends Origin with a POST,
            # and an HTML form cannot urlencode a JSON document anyway.
            raise ApiError(415, "the body must be JSON: send Content-Type: application/json",
                           allowed=["application/json"])
        return method, self.methods[method]

    def _browser_origin(self, request):
        """origin.NONE (not a browser), TRUSTED (same or allowed origin) or FOREIGN."""
        return origin.classify_request(request, self.ctx.config.http)

    def _authorize(self, principal, method, permission):
        """``principal`` when it may call ``method`` needing ``permission``; else 401/403."""
        if permission is None and method in ("POST", "PUT", "DELETE", "PATCH") and \
                not self.public_write and not principal.authenticated:
            # Writes always need credentials; say so before looking at the body
            # (curl --digest sends its first request with none).
            raise ApiError(401, "authentication required")
        if permission is not None and not principal.can(permission):
            if not principal.authenticated:
                raise ApiError(401, "authentication required")
            raise ApiError(403, "%s may not do this" % principal.role)
        return principal

    def authenticate(self, request):
        """A Deferred of this request's Principal (checking CSRF for cookie sessions)."""
        auth = self.ctx.auth
        header = request.getHeader(b"authorization")
        cookie = request.getCookie(SESSION_COOKIE.encode())
        token = request.args.get(b"token", [None])[0]
        d = defer.maybeDeferred(
            auth.authenticate,
            request.method.decode("ascii", "replace"), request.uri.decode("latin-1"),
            authorization=header.decode("latin-1") if header else None,
            token=token.decode("latin-1") if token else None,
            cookie=cookie.decode("latin-1") if cookie and not header else None,
            client=client_key(request))
        d.addErrback(self._refused)
        if cookie and not header and not token and request.method in STATE_CHANGING:
            d.addCallback(self._check_csrf, request, cookie)
        return d

    def _refused(self, failure):
        failure.trap(AuthError)
        raise ApiError.from_auth(failure.value)

    def _check_csrf(self, principal, request, cookie):
        sent = request.getHeader(b"x-csrf-token")
        if not sent or sent.decode("latin-1") != self.ctx.auth.csrf_for(cookie.decode("latin-1")):
            raise ApiError(403, "cookie sessions must send the X-CSRF-Token from login")
        return principal

    def _respond(self, request, result):
        if isinstance(result, Raw):
            request.setResponseCode(200)
            request.setHeader(b"content-type", result.content_type)
            request.setHeader(b"content-length", str(len(result.body)).encode())
            for k, v in result.headers.items():
                request.setHeader(k, v)
            return b"" if request.method == b"HEAD" else result.body
        # A handler may have chosen another success code (201 Created).
        code = request.code if 200 <= request.code < 300 else 200
        if isinstance(result, dict) and result.get("status") == "success":
            return write_json(request, code, result)
        return write_json(request, code, envelope(result))

    def _finish(self, request, result):
        if request.finished or getattr(request, "_disconnected", False):
            return
        body = self._respond(request, result)
        if body is server.NOT_DONE_YET:
            return  # a producer (a file download) finishes the request
        request.write(body)
        request.finish()

    def _finish_failure(self, request, failure):
        if request.finished or getattr(request, "_disconnected", False):
            return
        if getattr(request, "startedWriting", False):
            # Too late for an error envelope: end the connection rather than leave it hanging.
            log.failure("failed while answering {uri}", failure, uri=request.uri)
            request.loseConnection()
            return
        body = self._fail(request, failure.value, failure)
        request.write(body)
        request.finish()

    def _fail(self, request, exc, failure=None):
        if isinstance(exc, StateError):
            exc = ApiError.from_state(exc)
        elif isinstance(exc, ServiceError):
            exc = ApiError.from_service(exc)
        if not isinstance(exc, ApiError):
            if failure is not None:
                log.failure("internal error in {uri}", failure, uri=request.uri)
            else:
                log.error("internal error in {uri}: {tb}", uri=request.uri,
                          tb=traceback.format_exc())
            exc = ApiError(500, "internal error", "INTERNAL")
        headers = dict(exc.headers)
        # A page's script (it sends X-Requested-With, as rotordream.js does) gets no
        # challenge: a browser would pop its own password dialog over the page.
        if exc.status == 401 and not request.getHeader(b"x-requested-with"):
            headers[b"www-authenticate"] = [c.encode() for c in
                                            self.ctx.auth.challenges(stale=bool(
                                                exc.extra.get("stale")))]
        extra = {k: v for k, v in exc.extra.items() if v is not None}
        return write_json(request, exc.status, error_body(exc.status, exc.message, exc.code,
                                                          **extra), headers)


def _period_name(seconds):
    return {1: "second", 60: "minute", 3600: "hour"}.get(seconds, "%d seconds" % seconds)


class NotFound(ApiResource):
    """The JSON 404 for any unknown path under /api."""

    isLeaf = True

    def render(self, request):
        """Always 404 (after the rate limit)."""
        try:
            wait = self.api.limiter.hit(client_key(request))
            if wait:
                raise ApiError(429, "Rate limit exceeded", limit=self.api.limiter.limit,
                               period=_period_name(self.api.limiter.period),
                               retry_after=wait, headers={b"retry-after": str(wait).encode()})
            raise ApiError(404, "no such endpoint")
        except ApiError as e:
            return self._fail(request, e)
