"""The REST base through a real Site and HTTPChannel on a StringTransport: the envelope,
HEAD, CORS preflight, browser checks (foreign Origin 403, JSON only 415) and asynchronous
authentication (the answer waits for the principal; a hang-up cancels the wait)."""

import base64
import json

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web import resource, server

from rotordream.auth.ratelimit import RateLimiter
from rotordream.auth.service import AuthError, AuthService
from rotordream.config import from_dict
from rotordream.context import Context
from rotordream.state import CameraState
from rotordream.web.api.base import (ApiContext, ApiError, ApiResource, is_json_type,
                                     read_json)
from rotordream.web.request import BodyLimits, BoundedRequest

PASSWORD = "admin-password"


class TCPStringTransport(StringTransport):
    """A StringTransport that half-closes as a TCP socket does (shutdown SHUT_WR)."""

    write_closed = False

    def loseWriteConnection(self):
        self.write_closed = True


class Broken(ApiResource):
    methods = {"GET": ("get", None)}

    def get(self, request, principal):
        raise KeyError("secret-internal-detail")


class Echo(ApiResource):
    """GET: who is asking. POST (anyone): the JSON body back, and what held it."""

    methods = {"GET": ("get", None), "POST": ("post", None)}
    public_write = True
    seen = None

    def get(self, request, principal):
        return {"user": principal.name}

    def post(self, request, principal):
        Echo.seen = request.content
        return {"body": read_json(request), "user": principal.name}


class Guarded(Echo):
    """POST needs credentials (like every write but login)."""

    public_write = False


class LaterAuth(AuthService):
    """The auth service answering later, as it does once hashes are checked in threads."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.waiting = []

    def authenticate(self, *args, **kw):
        d = defer.Deferred(lambda _: self.waiting.remove(entry))
        entry = (d, args, kw)
        self.waiting.append(entry)
        return d

    def answer(self):
        for d, args, kw in list(self.waiting):
            self.waiting.remove((d, args, kw))
            defer.maybeDeferred(AuthService.authenticate, self, *args, **kw).chainDeferred(d)


def make_context(tmp_path, clock, auth_class=AuthService, **sections):
    cfg = from_dict(dict({"auth": {"initial_admin_password": PASSWORD}}, **sections))
    return Context(cfg, clock, CameraState(), auth=auth_class(cfg, str(tmp_path), clock))


def make_site(ctx, clock, children, onvif=None):
    """A Site as the daemon builds it: /api/<children>, /onvif, and a page at /."""
    api = ApiContext(ctx, RateLimiter(1000, 60, clock))
    api_root = resource.Resource()
    for name, cls in children.items():
        api_root.putChild(name, cls(api))
    root = resource.Resource()
    root.putChild(b"api", api_root)
    if onvif is not None:
        root.putChild(b"onvif", onvif)
    factory = BoundedRequest.with_limits(BodyLimits.from_config(ctx.config))
    return server.Site(root, requestFactory=factory, parsePOSTFormSubmission=False,
                       reactor=clock)


def connect(site, peer="192.0.2.7"):
    """A channel of ``site`` on a fresh transport; (channel, transport)."""
    channel = site.buildProtocol(None)
    transport = TCPStringTransport(peerAddress=IPv4Address("TCP", peer, 40000),
                                   hostAddress=IPv4Address("TCP", "127.0.0.1", 8080))
    channel.makeConnection(transport)
    return channel, transport


def request_bytes(method, path, body=b"", headers=()):
    """An HTTP/1.1 request with Content-Length (when there is a body) and Host."""
    lines = [b"%s %s HTTP/1.1" % (method, path), b"Host: 127.0.0.1:8080"]
    lines += [b"%s: %s" % (k, v) for k, v in headers]
    if body:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def parse_response(raw):
    """(status, {lowercase name: values joined by ", "}, body) of the first response."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower().decode(), value.strip().decode("latin-1")
        headers[name] = headers[name] + ", " + value if name in headers else value
    length = int(headers.get("content-length", len(rest)))
    return status, headers, rest[:length]


def exchange(site, raw, peer="192.0.2.7"):
    channel, transport = connect(site, peer)
    channel.dataReceived(raw)
    return parse_response(transport.value()) if transport.value() else None


def basic(user, password):
    return b"Basic " + base64.b64encode(("%s:%s" % (user, password)).encode())


def test_an_exception_is_a_500_envelope_that_hides_the_traceback(tmp_path):
    clock = Clock()
    site = make_site(make_context(tmp_path, clock), clock, {b"broken": Broken})
    status, headers, body = exchange(site, request_bytes(b"GET", b"/api/broken"))
    assert status == 500
    data = json.loads(body)
    assert data["status"] == "error" and data["code"] == "INTERNAL"
    assert "secret-internal-detail" not in body.decode() and "Traceback" not in body.decode()


def test_head_has_the_get_headers_and_no_body(tmp_path):
    clock = Clock()
    site = make_site(make_context(tmp_path, clock), clock, {b"echo": Echo})
    _, get_headers, get_body = exchange(site, request_bytes(b"GET", b"/api/echo"))
    channel, transport = connect(site)
    channel.dataReceived(request_bytes(b"HEAD", b"/api/echo"))
    raw = transport.value()
    status, headers, _ = parse_response(raw)
    assert status == 200 and raw.endswith(b"\r\n\r\n")
    assert int(headers["content-length"]) == len(get_body) > 0
    assert headers["content-type"] == get_headers["content-type"]


def test_cors_preflight_from_a_configured_origin(tmp_path):
    clock = Clock()
    ctx = make_context(tmp_path, clock, http={"cors_origins": ["https://dash.example"]})
    site = make_site(ctx, clock, {b"echo": Guarded})
    status, headers, _ = exchange(site, request_bytes(b"OPTIONS", b"/api/echo", headers=[
        (b"Origin", b"https://dash.example"), (b"Access-Control-Request-Method", b"POST")]))
    assert status == 204 and "POST" in headers["access-control-allow-methods"]
    assert headers["access-control-allow-origin"] == "https://dash.example"
    # What rotordream.js sends on every request may come from another allowed origin.
    allowed = {h.strip() for h in headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "x-csrf-token", "x-requested-with"} <= allowed
    # The configured origin may then write (with credentials), text/plain or not.
    status, _, body = exchange(site, request_bytes(b"POST", b"/api/echo", b'{"a": 1}', [
        (b"Origin", b"https://dash.example"), (b"Authorization", basic("admin", PASSWORD)),
        (b"Content-Type", b"application/json")]))
    assert status == 200, body


def test_a_foreign_origin_may_not_write_even_with_credentials(tmp_path):
    clock = Clock()
    site = make_site(make_context(tmp_path, clock), clock, {b"echo": Guarded})
    for header, value in ((b"Origin", b"http://evil.example"),
                          (b"Referer", b"http://evil.example/page.html"),
                          (b"Origin", b"null"), (b"Origin", b"http://127.0.0.1:9999"),
                          (b"Origin", b"https://127.0.0.1:8080")):
        status, _, body = exchange(site, request_bytes(b"POST", b"/api/echo", b'{"a": 1}', [
            (header, value), (b"Authorization", basic("admin", PASSWORD)),
            (b"Content-Type", b"text/plain")]))
        assert status == 403, (value, body)
        assert json.loads(body)["code"] == "FORBIDDEN"
    # Reads from elsewhere are not refused (CORS decides what a page may read).
    status, _, _ = exchange(site, request_bytes(b"GET", b"/api/echo", headers=[
        (b"Origin", b"http://evil.example")]))
    assert status == 200


def test_the_origin_check_comes_before_authentication(tmp_path):
    # A foreign page must not be able to make the daemon check (or count) passwords.
    clock = Clock()
    ctx = make_context(tmp_path, clock, LaterAuth)
    site = make_site(ctx, clock, {b"echo": Guarded})
    status, _, _ = exchange(site, request_bytes(b"POST", b"/api/echo", b"{}", [
        (b"Origin", b"http://evil.example"), (b"Authorization", basic("admin", "guess")),
        (b"Content-Type", b"application/json")]))
    assert status == 403 and ctx.auth.waiting == []


def test_same_origin_and_listed_origins_may_write(tmp_path):
    clock = Clock()
    ctx = make_context(tmp_path, clock, http={"allowed_origins": ["https://nvr.example"]})
    site = make_site(ctx, clock, {b"echo": Guarded})
    for header, value in ((b"Origin", b"http://127.0.0.1:8080"),
                          (b"Referer", b"http://127.0.0.1:8080/?stream=stream1"),
                          (b"Origin", b"https://nvr.example")):
        status, _, body = exchange(site, request_bytes(b"POST", b"/api/echo", b'{"a": 1}', [
            (header, value), (b"Authorization", basic("admin", PASSWORD)),
            (b"Content-Type", b"application/json")]))
        assert status == 200, (value, body)
    # Scripts send neither header and keep working.
    status, _, _ = exchange(site, request_bytes(b"POST", b"/api/echo", b'{"a": 1}', [
        (b"Authorization", basic("admin", PASSWORD)), (b"Content-Type", b"application/json")]))
    assert status == 200


def test_json_endpoints_take_json_media_types_only(tmp_path):
    clock = Clock()
    site = make_site(make_context(tmp_path, clock), clock, {b"echo": Echo})
    for ctype in (b"application/json", b"application/json; charset=utf-8",
                  b"Application/JSON", b"application/merge-patch+json"):
        status, _, body = exchange(site, request_bytes(b"POST", b"/api/echo", b'{"a": 1}', [
            (b"Content-Type", ctype)]))
        assert status == 200 and json.loads(body)["data"]["body"] == {"a": 1}, ctype
    for headers in ([(b"Content-Type", b"text/plain")],
                    [(b"Content-Type", b"multipart/form-data; boundary=x")],
                    [(b"Content-Type", b"application/jsonp")]):
        status, _, body = exchange(site, request_bytes(b"POST", b"/api/echo", b'{"a": 1}',
                                                       headers))
        assert status == 415, (headers, body)
        assert json.loads(body)["code"] == "UNSUPPORTED_MEDIA_TYPE"
    # The camera's own page may post JSON as text/plain (the API reference's browser
    # code does): its Origin proves it is not a cross-site request.
    status, _, _ = exchange(site, request_bytes(b"POST", b"/api/echo", b'{"a": 1}', [
        (b"Content-Type", b"text/plain;charset=UTF-8"), (b"Origin", b"http://127.0.0.1:8080")]))
    assert status == 200
    # `curl -d` (the API reference's login example) says form-urlencoded and sends
    # neither Origin nor Referer: a script, read as JSON.
    status, _, body = exchange(site, request_bytes(b"POST", b"/api/echo", b'{"a": 1}', [
        (b"Content-Type", b"application/x-www-form-urlencoded")]))
    assert status == 200 and json.loads(body)["data"]["body"] == {"a": 1}
    # A body with no type at all comes from a script (python-requests' data=): a browser
    # sends one only with an Origin, which is checked first.
    status, _, _ = exchange(site, request_bytes(b"POST", b"/api/echo", b'{"a": 1}'))
    assert status == 200
    status, _, _ = exchange(site, request_bytes(b"POST", b"/api/echo", b'{"a": 1}', [
        (b"Origin", b"http://evil.example")]))
    assert status == 403
    # No body, no content type needed.
    status, _, _ = exchange(site, request_bytes(b"GET", b"/api/echo"))
    assert status == 200


def test_is_json_type():
    assert is_json_type(b"application/json") and is_json_type("application/problem+json")
    assert is_json_type(b"application/json ; charset=utf-8")
    for value in (None, b"", b"json", b"text/json", b"application/+json", b"text/plain+json",
                  b"application/json5", b"application/x-json-stream"):
        assert not is_json_type(value), value


def test_the_answer_waits_for_an_asynchronous_authentication(tmp_path):
    clock = Clock()
    ctx = make_context(tmp_path, clock, LaterAuth)
    site = make_site(ctx, clock, {b"echo": Guarded})
    channel, transport = connect(site)
    channel.dataReceived(request_bytes(b"POST", b"/api/echo", b'{"a": 2}', [
        (b"Authorization", basic("admin", PASSWORD)), (b"Content-Type", b"application/json")]))
    assert transport.value() == b"" and len(ctx.auth.waiting) == 1
    assert ctx.auth.waiting[0][2]["client"] == "192.0.2.7"
    ctx.auth.answer()
    status, _, body = parse_response(transport.value())
    assert status == 200 and json.loads(body)["data"] == {"body": {"a": 2}, "user": "admin"}
    # Wrong credentials: the 401 comes when the check ends, with the challenges.
    channel, transport = connect(site)
    channel.dataReceived(request_bytes(b"POST", b"/api/echo", b"{}", [
        (b"Authorization", basic("admin", "wrong")), (b"Content-Type", b"application/json")]))
    assert transport.value() == b""
    ctx.auth.answer()
    status, headers, body = parse_response(transport.value())
    assert status == 401 and "Digest" in headers["www-authenticate"]


def test_a_client_that_hangs_up_cancels_its_authentication(tmp_path):
    clock = Clock()
    ctx = make_context(tmp_path, clock, LaterAuth)
    site = make_site(ctx, clock, {b"echo": Guarded})
    channel, transport = connect(site)
    channel.dataReceived(request_bytes(b"GET", b"/api/echo", headers=[
        (b"Authorization", basic("admin", PASSWORD))]))
    assert len(ctx.auth.waiting) == 1
    channel.connectionLost(Failure(ConnectionDone()))
    assert ctx.auth.waiting == []


def test_a_lockout_from_the_auth_service_is_a_429_with_retry_after(tmp_path):
    clock = Clock()

    class Locked(AuthService):
        def authenticate(self, *args, **kw):
            return defer.fail(AuthError("too many", code="RATE_LIMITED", retry_after=42))

    site = make_site(make_context(tmp_path, clock, Locked), clock, {b"echo": Guarded})
    status, headers, body = exchange(site, request_bytes(b"GET", b"/api/echo", headers=[
        (b"Authorization", basic("admin", "x"))]))
    data = json.loads(body)
    assert status == 429 and headers["retry-after"] == "42"
    assert data["code"] == "RATE_LIMITED" and data["retry_after"] == 42


class Unserializable(ApiResource):
    methods = {"GET": ("get", None)}

    def get(self, request, principal):
        return {"a set": {1, 2}}  # json.dumps fails while the answer is written


def test_a_failure_while_answering_is_a_500_envelope(tmp_path):
    clock = Clock()
    site = make_site(make_context(tmp_path, clock), clock, {b"odd": Unserializable})
    status, _, body = exchange(site, request_bytes(b"GET", b"/api/odd"))
    assert status == 500 and json.loads(body)["code"] == "INTERNAL"


def test_a_refused_login_reports_the_limit_that_refused_it(tmp_path):
    ctx = make_context(tmp_path, Clock(), auth={"initial_admin_password": PASSWORD,
                                                "login_failures": 2, "login_window": 60,
                                                "secret_file": str(tmp_path) + ".key"})

    def refusal():
        failures = []
        ctx.auth.check_password("admin", "wrong", "192.0.2.7").addErrback(failures.append)
        return ApiError.from_auth(failures[0].value)

    assert [refusal().status, refusal().status] == [401, 401]
    locked = refusal()
    assert locked.status == 429
    assert (locked.extra["limit"], locked.extra["period"]) == (2, "minute")
    full = ApiError.from_auth(AuthError("too many logins at once", code="RATE_LIMITED",
                                        retry_after=1))
    assert full.status == 429 and "limit" not in full.extra
    assert full.headers == {b"retry-after": b"1"}
