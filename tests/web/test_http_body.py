"""Request bodies bounded per route while they arrive (rotordream.web.request), on a
StringTransport: 413 at once for a Content-Length over the limit, as soon as the count
passes it for a chunked body, bodies held in memory, the connection closed after."""

import json
import tempfile
from io import BytesIO

import pytest
from twisted.internet.task import Clock
from twisted.web import resource

from rotordream.web.request import BodyLimits, BoundedRequest
from tests.web.test_base import Echo, connect, make_context, make_site, parse_response, \
    request_bytes


class SoapSink(resource.Resource):
    """Stands for /onvif: says how many body bytes reached it."""

    isLeaf = True

    def render_POST(self, request):
        return b"%d" % len(request.content.read())


@pytest.fixture
def site(tmp_path, monkeypatch):
    # A body must never reach a file: fail the test if twisted.web tries to make one.
    def no_files(*args, **kw):
        raise AssertionError("a request body was spooled to a temporary file")
    monkeypatch.setattr(tempfile, "TemporaryFile", no_files)
    Echo.seen = None
    clock = Clock()
    ctx = make_context(tmp_path, clock, http={"max_body": 1000}, onvif={"max_body": 3000})
    s = make_site(ctx, clock, {b"echo": Echo}, onvif=SoapSink())
    s.test_clock = clock
    return s


def chunked_head(path=b"/api/echo", extra=b""):
    return (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n%s\r\n" % (path, extra))


def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


def test_limits_follow_the_route():
    limits = BodyLimits(api=10, onvif=20, other=0)
    assert limits.limit_for(b"POST", b"/api/login") == 10
    assert limits.limit_for(b"PUT", b"/api/users/x?y=1") == 10
    assert limits.limit_for(b"PATCH", b"/api") == 10
    assert limits.limit_for(b"POST", b"/%61pi/login") == 10  # the tree unquotes segments
    assert limits.limit_for(b"POST", b"/onvif/device_service") == 20
    # Any method: an unknown one is the resource's to answer (405).
    assert limits.limit_for(b"TRACE", b"/api/users") == 10
    assert limits.limit_for(b"GET", b"/onvif/x") == 20
    for method, uri in ((b"POST", b"/"), (b"POST", b"/apix"), (b"POST", b"/static/x"),
                        (b"GET", b"/"), (b"POST", b"http://h/api/login"),
                        (b"PUT", b"/api/v1"), (b"POST", b"/api/v%31?x"),
                        (b"POST", b"")):
        assert limits.limit_for(method, uri) == 0, (method, uri)


def test_a_declared_length_over_the_limit_is_refused_before_any_body(site):
    channel, transport = connect(site)
    channel.dataReceived(b"POST /api/echo HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
                         b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
                         b"Content-Length: 1001\r\n\r\n")
    status, headers, body = parse_response(transport.value())
    assert status == 413 and headers["connection"] == "close"
    assert b"100 Continue" not in transport.value()
    data = json.loads(body)
    assert data["code"] == "PAYLOAD_TOO_LARGE" and data["limit"] == 1000
    assert transport.write_closed
    # Whatever still comes is dropped unparsed; the connection is cut after the linger.
    written = transport.value()
    channel.dataReceived(b"x" * 100000 + b"\r\n\r\nGET /api/echo HTTP/1.1\r\n\r\n")
    assert transport.value() == written and Echo.seen is None
    site.test_clock.advance(5)
    assert transport.disconnecting


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(site):
    channel, transport = connect(site)
    channel.dataReceived(chunked_head())
    for _ in range(9):
        channel.dataReceived(chunk(b"a" * 100))
    assert transport.value() == b""
    channel.dataReceived(chunk(b"a" * 101))
    status, _, body = parse_response(transport.value())
    assert status == 413 and json.loads(body)["code"] == "PAYLOAD_TOO_LARGE"
    channel.dataReceived(chunk(b"a" * 5000) + b"0\r\n\r\n")
    assert Echo.seen is None  # the resource never ran


def test_a_chunked_body_refused_inside_one_read(site):
    channel, transport = connect(site)
    channel.dataReceived(chunked_head() + chunk(b"a" * 800) + chunk(b"b" * 800) +
                         b"0\r\n\r\n" + request_bytes(b"GET", b"/api/echo"))
    assert transport.value().count(b"HTTP/1.1") == 1
    assert parse_response(transport.value())[0] == 413
    assert Echo.seen is None


def test_bodies_within_the_limit_are_served_from_memory(site):
    Echo.seen = None
    body = json.dumps({"a": "x" * 900}).encode()
    channel, transport = connect(site)
    channel.dataReceived(chunked_head() + b"".join(chunk(body[i:i + 7])
                                                    for i in range(0, len(body), 7)) +
                         b"0\r\n\r\n")
    status, _, answer = parse_response(transport.value())
    assert status == 200 and json.loads(answer)["data"]["body"] == {"a": "x" * 900}
    assert isinstance(Echo.seen, BytesIO)
    channel, transport = connect(site)
    channel.dataReceived(request_bytes(b"POST", b"/api/echo", body,
                                       [(b"Content-Type", b"application/json")]))
    assert parse_response(transport.value())[0] == 200


def test_byte_at_a_time_chunked_bodies_are_counted(site):
    channel, transport = connect(site)
    data = chunked_head() + b"".join(chunk(b"z") for _ in range(1001))
    for i in range(len(data)):
        channel.dataReceived(data[i:i + 1])
    assert parse_response(transport.value())[0] == 413


def test_onvif_has_its_own_limit(site):
    body = b"<x/>" * 700  # 2800 bytes: over the JSON limit, under ONVIF's
    channel, transport = connect(site)
    channel.dataReceived(request_bytes(b"POST", b"/onvif/device_service", body,
                                       [(b"Content-Type", b"application/soap+xml")]))
    status, _, answer = parse_response(transport.value())
    assert status == 200 and answer == b"2800"
    channel, transport = connect(site)
    channel.dataReceived(request_bytes(b"POST", b"/onvif/device_service", body * 2))
    assert parse_response(transport.value())[0] == 413


def test_routes_that_take_no_body_refuse_one(site):
    for method, path in ((b"GET", b"/"), (b"POST", b"/"), (b"POST", b"/nothing")):
        channel, transport = connect(site)
        channel.dataReceived(request_bytes(method, path, b"{}",
                                           [(b"Content-Type", b"application/json")]))
        assert parse_response(transport.value())[0] == 413, (method, path)
    channel, transport = connect(site)
    channel.dataReceived(b"GET /api/echo HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
    assert parse_response(transport.value())[0] == 200
    channel, transport = connect(site)
    channel.dataReceived(request_bytes(b"TRACE", b"/api/echo", b"{}"))
    assert parse_response(transport.value())[0] == 405


def test_the_factory_carries_its_limits():
    factory = BoundedRequest.with_limits(BodyLimits(api=5))
    assert issubclass(factory, BoundedRequest) and factory.limits.api == 5
    assert BoundedRequest.limits == BodyLimits()
