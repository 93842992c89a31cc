"""A daemon-level fuzz run: a real daemon takes a few hundred random and mutated requests on
its HTTP (REST, static, RTSP-over-HTTP), RTSP, WebSocket and ONVIF endpoints over real sockets
on 127.0.0.1, and must still answer /api/health with nothing in its log that says
"Traceback" or "Unhandled"."""

import base64
import json
import re
import socket
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rotordream.onvif import topics
from rotordream.onvif.resource import SERVICES as ONVIF_SERVICES
from tests.conftest import NO_LIMITS, make_daemon
from tests.support.fuzz import NUMBERS, fuzz_settings, hostile_text, mutated
from tests.fuzz.test_rtsp_server import _basic, request_text
from tests.fuzz.test_soap import BODIES, xml_text, headers as soap_headers
from tests.fuzz.test_ws_message import texts as ws_texts
from tests.support.live import StateWatcher
from tests.support.soapkit import SOAP11, SOAP12, envelope, security

# Limits that would turn most requests into 429s are off (they have tests of their own);
# a small picture keeps the encoder cheap.
CONFIG = NO_LIMITS
SETTINGS = {"resolution": "320x240", "fps": 10, "stream2-resolution": "320x180"}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    conf = tmp_path_factory.mktemp("fuzzconf") / "fuzz.toml"
    conf.write_text(CONFIG)
    d = make_daemon(tmp_path_factory, extra=["--config", str(conf)], settings=SETTINGS)
    admin = _basic("admin", d.admin_password).encode()

    def call(method, path):
        status, body = http(d, b"%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n"
                            b"Content-Length: 0\r\nConnection: close\r\n\r\n"
                            % (method, path, admin), timeout=30)
        assert status == 200, (path, status, body)
        return json.loads(body)["data"]

    # One short recording, so downloads with Range and the listing's filters have a file:
    # two seconds by the recorder's own duration limit, waited for on its broadcasts.
    with StateWatcher(d) as watch:
        status, body = http(d, b"POST /api/recording/start HTTP/1.1\r\nHost: x\r\n"
                            b"Authorization: %s\r\nContent-Type: application/json\r\n"
                            b"Content-Length: 15\r\nConnection: close\r\n\r\n"
                            b'{"duration": 2}' % admin, timeout=30)
        assert status == 200, body
        watch.wait("record", True)
        watch.wait("record", False)
    call(b"POST", b"/api/recording/stop")  # answers once the file is closed
    d.recordings = [r["id"] for r in call(b"GET", b"/api/recordings")["recordings"]]
    assert d.recordings
    yield d
    d.stop()


# -- talking to it ------------------------------------------------------------------

def http(d, raw, timeout=5.0, half_close=False):
    """Send raw HTTP bytes; (status or None, body) of what comes back before close/timeout."""
    data = b""
    with socket.create_connection(("127.0.0.1", d.http_port), timeout=timeout) as s:
        try:
            s.sendall(raw)
            if half_close:
                s.shutdown(socket.SHUT_WR)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (socket.timeout, ConnectionResetError, BrokenPipeError):
            pass
    if not data:
        return None, b""
    head, _, body = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n")[0]
    assert status_line[:7] in (b"HTTP/1.", ), status_line
    status = int(status_line.split()[1])
    assert 100 <= status <= 599, status_line
    return status, body


def problems(lines):
    """The log records among ``lines`` that hold "Traceback" or "Unhandled" (a record is a
    line and the tab-indented lines after it), joined; None if there are none."""
    records = []
    for line in lines:
        if line.startswith("\t") and records:
            records[-1] += line
        else:
            records.append(line)
    bad = [r for r in records if "Traceback" in r or "Unhandled" in r]
    return "".join(bad)[-6000:] if bad else None


class LogWatch:
    """The daemon's log lines since the last look (and since the watch began)."""

    def __init__(self, d):
        self.d = d
        self.start = self.seen = len(d.output)

    def new_problems(self):
        lines = self.d.output[self.seen:]
        self.seen += len(lines)
        return problems(lines)

    def all_problems(self):
        return problems(self.d.output[self.start:])


def assert_healthy(d, watch):
    # The access log line of this very request marks the end of what the test caused
    # (the daemon's output reaches us through a pipe and a thread).
    marker = "/api/health?end-of-%d" % len(d.output)
    status, body = http(d, b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                        % marker.encode())
    assert status == 200, (status, body[:200])
    assert d.wait_output(lambda out: any(marker in line for line in out[watch.start:]), 10)
    found = watch.all_problems()
    assert found is None, found


@pytest.fixture
def watch(daemon):
    """Checks, after the test, that the daemon answers /api/health and logged no traceback
    meanwhile."""
    w = LogWatch(daemon)
    yield w
    assert_healthy(daemon, w)


def check_log(watch):
    found = watch.new_problems()
    assert found is None, found


# -- HTTP ---------------------------------------------------------------------------

def _q(s):
    return quote(s, safe="")


QUERY = st.sampled_from(NUMBERS) | hostile_text() | st.sampled_from(
    ["2027-01-15T08:00:00Z", "2027-01-15", "1800000000.5", "stream1", "stream2", "auto"])
PATHS = st.one_of(
    st.sampled_from(["/", "/api/health", "/api/info", "/api/status", "/api/camera/status",
                     "/api/streams", "/api/snapshot", "/api/settings", "/api/login",
                     "/api/logout", "/api/users", "/api/users/admin", "/api/openapi.json",
                     "/api/recording/status", "/api/recording/pause", "/api/recordings",
                     "/api/webrtc/sessions", "/api/v1", "/api/nothing", "/api/", "/api//info",
                     "/%2e%2e/etc/passwd", "/api/recordings/..%2F..%2Fetc%2Fpasswd",
                     "/onvif/device_service", "/onvif/nothing_service", "/api/info/x/y",
                     "/api/camera", "/api/recording"]),
    st.builds("/api/snapshot?quality={}".format, QUERY.map(_q)),
    st.builds("/api/snapshot?snap={}".format, QUERY.map(_q)),
    st.builds("/api/recordings?since={}&until={}&limit={}&offset={}".format,
              QUERY.map(_q), QUERY.map(_q), QUERY.map(_q), QUERY.map(_q)),
    st.builds("/api/recordings?{}={}".format, st.sampled_from(["since", "until", "limit",
                                                                "offset", "token"]),
              QUERY.map(_q)),
    st.builds("/api/webrtc/offer?stream={}".format, QUERY.map(_q)),
    st.builds("/api/webrtc/answer?id={}".format, QUERY.map(_q)),
    st.builds("/api/users/{}".format, QUERY.map(_q)),
    st.builds("/api/recordings/{}".format, QUERY.map(_q)),
)
# The camera settings bodies name: not the picture size, rate or bitrate (a bigger picture
# would cost CPU for the rest of the run on a shared machine) nor recording (disk).
SAFE_KEYS = ["brightness", "contrast", "saturation", "sharpness", "gain", "cam1-light", "pan",
             "tilt", "device-name", "device-location", "snap", "no-such-key"]
_JSON = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) |
                     st.floats(allow_nan=False) | st.text(max_size=20) | hostile_text(),
                     lambda inner: st.lists(inner, max_size=3) |
                     st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
BODIES_HTTP = st.one_of(
    st.just(b""), _JSON.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(SAFE_KEYS), _JSON, min_size=1, max_size=3).map(
        lambda v: json.dumps(v).encode()),
    st.builds(lambda u, p: json.dumps({"username": u, "password": p}).encode(),
              st.sampled_from(["admin", "x"]) | _JSON, st.sampled_from(["wrong"]) | _JSON),
    st.builds(lambda t, s: json.dumps({"type": t, "sdp": s}).encode(),
              st.sampled_from(["offer", "answer", "x"]),
              st.sampled_from(["v=0\r\n", "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\nm=video 9 x\r\n",
                               ""]) | st.text(max_size=40)),
    st.binary(max_size=200), st.just(b"[" * 3000 + b"]" * 3000))


_KEY = st.sampled_from(SAFE_KEYS) | QUERY.map(_q)
_USER = st.sampled_from(["fuzz", "viewer1", "nobody"]) | QUERY.map(_q)  # never admin's password
ROUTES = st.one_of(*[st.tuples(st.just(method), path) for method, path in [
    ("GET", st.sampled_from(["/", "/api/health", "/api/info", "/api/status",
                             "/api/camera/status", "/api/streams", "/api/snapshot",
                             "/api/settings", "/api/users", "/api/users/admin",
                             "/api/openapi.json", "/api/recording/status", "/api/recordings",
                             "/api/webrtc/sessions"])),
    ("GET", _KEY.map("/api/settings/{}".format)),
    ("POST", st.sampled_from(["/api/settings", "/api/login", "/api/logout", "/api/users",
                              "/api/recording/pause", "/api/recording/resume",
                              "/api/webrtc/answer"])),
    ("POST", _KEY.map("/api/settings/{}".format)), ("PUT", _KEY.map("/api/settings/{}".format)),
    ("GET", _USER.map("/api/users/{}".format)), ("PUT", _USER.map("/api/users/{}".format)),
    ("DELETE", _USER.map("/api/users/{}".format)),
    ("GET", _USER.map("/api/users/{}/permissions".format)),
    ("PUT", _USER.map("/api/users/{}/password".format)),
    ("DELETE", QUERY.map(_q).map("/api/recordings/{}".format)),
    ("POST", st.sampled_from(["stream1", "stream2", "x"]).map(
        "/api/webrtc/offer?stream={}".format)),
    ("DELETE", QUERY.map(_q).map("/api/webrtc/sessions/{}".format)),
    ("PATCH", QUERY.map(_q).map("/api/webrtc/sessions/{}".format)),
]])


@st.composite
def http_requests(draw, d):
    """A raw HTTP/1.1 request to the daemon (well-formed framing, anything inside).

    No RTSP-over-HTTP headers: a tunnel's GET half stays open by design (its own test).
    """
    if draw(st.integers(0, 3)):
        method, path = draw(ROUTES | st.tuples(st.just("GET"), st.sampled_from(
            d.recordings).map("/api/recordings/{}".format)))
    else:
        method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD",
                                       "OPTIONS", "BREW"]))
        path = draw(PATHS)
    headers = ["Host: %s" % draw(st.sampled_from(["127.0.0.1"] * 4 + ["x", "[::1]:80", "a:b:c",
                                                                    ""])),
               "Connection: close"]
    if method in ("POST", "PUT", "PATCH") and draw(st.integers(0, 3)):
        headers.append("Content-Type: application/json")
    admin = _basic("admin", d.admin_password)
    auth = draw(st.sampled_from(["", "", admin, admin, admin, _basic("admin", "no"),
                                 "Basic !!", "Digest x", "Bearer junk"]))
    if auth:
        headers.append("Authorization: " + auth)
    for name, values in (("Origin", ["http://evil.example", "null", "http://127.0.0.1"]),
                         ("Content-Type", ["application/json", "text/plain",
                                           "application/soap+xml", "application/json; x"]),
                         ("Range", ["bytes=0-10", "bytes=0-", "bytes=-5", "bytes=5-1",
                                    "bytes=" + ",".join(["0-100"] * 50), "bytes=x",
                                    "bytes=0-99999999999999999999999", "items=0-1",
                                    "bytes=\u00b2-3"]),
                         ("Cookie", ["rotordream_session=junk", "a=b; c", "=="]),
                         ("X-CSRF-Token", ["junk"])):
        if draw(st.integers(0, 7)) == 0:
            headers.append("%s: %s" % (name, draw(st.sampled_from(values))))
    body = draw(BODIES_HTTP) if method in ("POST", "PUT", "PATCH") or draw(
        st.integers(0, 9)) == 0 else b""
    if body and draw(st.integers(0, 4)) == 0:
        chunks = [body[i:i + 50] for i in range(0, len(body), 50)]
        body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
        headers.append("Transfer-Encoding: chunked")
    elif body or method in ("POST", "PUT"):
        headers.append("Content-Length: %d" % len(body))
    head = "%s %s HTTP/1.1\r\n%s\r\n\r\n" % (method, path, "\r\n".join(headers))
    return head.encode("utf-8") + body


@fuzz_settings(300)
@given(st.data())
def test_http_requests(daemon, watch, data):
    http(daemon, data.draw(http_requests(daemon)))
    check_log(watch)


@fuzz_settings(100)
@given(st.data())
def test_mangled_http_requests(daemon, watch, data):
    raw = data.draw(mutated(http_requests(daemon), max_ops=6))
    http(daemon, raw, timeout=2.0, half_close=True)
    check_log(watch)


# -- RTSP ---------------------------------------------------------------------------

@fuzz_settings(40)
@given(st.data())
def test_rtsp_connections(daemon, watch, data):
    sessions = []
    with socket.create_connection(("127.0.0.1", daemon.rtsp_port), timeout=0.5) as s:
        for i in range(data.draw(st.integers(1, 5))):
            raw = data.draw(request_text(i + 1, sessions))
            if data.draw(st.integers(0, 5)) == 0:
                raw = data.draw(mutated(st.just(raw), max_ops=3))
            got = b""
            try:
                s.sendall(raw)
                while b"\r\n\r\n" not in got:  # enough for the Session header of the answer
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += chunk
            except (socket.timeout, ConnectionResetError, BrokenPipeError):
                pass
            sessions += re.findall(r"Session: ([0-9a-f]+)", got.decode("latin-1"))
            if not got:
                break
    check_log(watch)


# -- WebSocket ----------------------------------------------------------------------

@fuzz_settings(30)
@given(st.lists(ws_texts, min_size=1, max_size=5), st.booleans(),
       st.sampled_from([None, "http://evil.example", "http://127.0.0.1"]))
def test_websocket_messages(daemon, watch, texts, as_admin, origin):
    from websockets.exceptions import InvalidStatus, WebSocketException
    from websockets.sync.client import connect
    headers = {"Authorization": _basic("admin", daemon.admin_password)} if as_admin else {}
    try:
        ws = connect(daemon.ws, additional_headers=headers, origin=origin, open_timeout=5,
                     max_size=2 ** 22)
    except InvalidStatus as e:
        assert e.response.status_code in (401, 403, 429), e
        check_log(watch)
        return
    with ws:
        try:
            for text in texts:
                if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
                    ws.send(text.encode("utf-8", "surrogatepass"))  # not UTF-8: binary frame
                else:
                    ws.send(text)
                assert isinstance(json.loads(ws.recv(timeout=5)), dict)
        except (WebSocketException, TimeoutError):
            pass
    check_log(watch)


# -- ONVIF ----------------------------------------------------------------------------

SERVICES = list(ONVIF_SERVICES)
SERVICE_OF = {"tds": "device", "trt": "media", "tptz": "ptz", "timg": "imaging",
              "tr2": "media2", "trc": "recording", "tse": "search", "trp": "replay"}


@st.composite
def onvif_posts(draw, d):
    body = draw(st.sampled_from(BODIES))
    # Mostly the service the operation belongs to, so it runs; sometimes another one.
    service = SERVICE_OF[body[1:body.index(":")]]
    if draw(st.integers(0, 4)) == 0:
        service = draw(st.sampled_from(SERVICES))
    if draw(st.booleans()):
        header = security("admin", d.admin_password)  # a valid token made now
    else:
        header = draw(soap_headers())
    raw = envelope(body, header, draw(st.sampled_from([SOAP12, SOAP11])))
    if draw(st.integers(0, 2)) == 0:
        raw = draw(mutated(st.just(raw), max_ops=6))
    return (b"POST /onvif/%s_service HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Content-Type: application/soap+xml\r\nContent-Length: %d\r\n\r\n"
            % (service.encode(), len(raw))) + raw


@fuzz_settings(60)
@given(st.data())
def test_onvif_requests(daemon, watch, data):
    status, body = http(daemon, data.draw(onvif_posts(daemon)))
    assert status is not None
    check_log(watch)


# -- RTSP over HTTP -------------------------------------------------------------------

@fuzz_settings(10)
@given(st.lists(st.binary(max_size=60) | st.just(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
                max_size=3), st.text("abc", min_size=1, max_size=3))
def test_rtsp_over_http(daemon, watch, posts, cookie):
    get = socket.create_connection(("127.0.0.1", daemon.http_port), timeout=2.0)
    try:
        get.sendall(b"GET /stream1 HTTP/1.1\r\nHost: x\r\nAccept: application/x-rtsp-tunnelled"
                    b"\r\nx-sessioncookie: %s\r\n\r\n" % cookie.encode())
        payload = b"".join(base64.b64encode(p) for p in posts) + b"=!"
        http(daemon, b"POST /stream1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/"
             b"x-rtsp-tunnelled\r\nx-sessioncookie: %s\r\nContent-Length: 32767\r\n\r\n%s"
             % (cookie.encode(), payload), timeout=1.0, half_close=True)
        try:
            get.recv(65536)
        except (socket.timeout, ConnectionResetError):
            pass
    finally:
        get.close()
    check_log(watch)


# -- query arguments and Range, with their meaning checked ------------------------------

def _get(d, path, extra=b""):
    admin = _basic("admin", d.admin_password).encode()
    raw = b"GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n%sConnection: close\r\n\r\n" % (
        path.encode(), admin, extra)
    return http_full(d, raw)


def http_full(d, raw):
    """(status, headers dict, body) of one request on its own connection."""
    data = b""
    with socket.create_connection(("127.0.0.1", d.http_port), timeout=10) as s:
        s.sendall(raw)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), headers, body


def _int_or_none(text, lo, hi):
    try:
        value = int(text)
    except ValueError:
        return None
    return value if lo <= value <= hi else None


QUERY_VALUES = st.sampled_from(NUMBERS + ["", "0", "1", "5", "1000", "1001", "-1", "10000000000",
                                          "2027-01-15T08:00:00Z", "2027-02-30", "nan", "inf",
                                          "1e999", "1800000000.5"]) | hostile_text()


@fuzz_settings(80)
@given(st.dictionaries(st.sampled_from(["offset", "limit", "since", "until", "other"]),
                       QUERY_VALUES, max_size=4))
def test_recordings_query(daemon, watch, args):
    query = "&".join("%s=%s" % (k, _q(v)) for k, v in args.items())
    status, _, body = _get(daemon, "/api/recordings?" + query)
    reply = json.loads(body)
    if status == 400:
        assert reply["code"] in ("BAD_REQUEST", "INVALID_VALUE") and reply["key"] in args
    else:
        assert status == 200, (status, reply)
        data = reply["data"]
        # Python's int() is what parsed them: the daemon saw the same numbers.
        if "offset" in args:
            assert data["offset"] == _int_or_none(args["offset"], 0, 10 ** 9)
        if "limit" in args:
            assert data["limit"] == _int_or_none(args["limit"], 1, 1000)
        assert len(data["recordings"]) <= data["limit"]
    check_log(watch)


@fuzz_settings(40)
@given(QUERY_VALUES, st.sampled_from(["quality", "snap"]))
def test_snapshot_query(daemon, watch, value, name):
    status, headers, body = _get(daemon, "/api/snapshot?%s=%s" % (name, _q(value)))
    if status == 200:
        assert headers["content-type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
    else:
        assert status in (400, 404, 503), (status, body[:200])
        assert json.loads(body)["status"] == "error"
    check_log(watch)


@fuzz_settings(20)
@given(QUERY_VALUES.filter(lambda v: v not in ("stream1", "stream2")))
def test_webrtc_stream_query(daemon, watch, value):
    # Any stream name but the two real ones is refused before a peer connection is made.
    status, _, body = _get(daemon, "/api/webrtc/offer?stream=" + _q(value))
    assert status == 400 and json.loads(body)["key"] == "stream", (status, body[:200])
    check_log(watch)


@fuzz_settings(60)
@given(st.one_of(
    st.lists(st.tuples(st.integers(0, 3000) | st.none(), st.integers(0, 3000) | st.none()),
             min_size=1, max_size=12).map(lambda ps: "bytes=" + ",".join(
                 "%s-%s" % ("" if a is None else a, "" if b is None else b) for a, b in ps)),
    st.sampled_from(["bytes=0-970000," * 299 + "0-970000", "bytes=0-0,-1", "bytes=x",
                     "items=0-5", "bytes=" + "0-1," * 600 + "5-6"])))
def test_recording_download_with_range(daemon, watch, header):
    path = "/api/recordings/%s" % daemon.recordings[0]
    size = int(_get(daemon, path)[1]["content-length"])
    status, headers, body = _get(daemon, path, b"Range: %s\r\n" % header.encode())
    assert status in (200, 206, 416), status
    # Never more than the file once (plus multipart framing): no amplification.
    assert len(body) <= size + 2000, (len(body), size)
    if status == 206 and "content-range" in headers:
        first, last = map(int, headers["content-range"].split()[1].split("/")[0].split("-"))
        assert len(body) == last - first + 1 <= size
    if status == 416:
        assert json.loads(body)["code"] == "RANGE_NOT_SATISFIABLE"
    check_log(watch)


# -- ONVIF event subscriptions: filters (XPath), durations, pulls, renewals ------------------

_EV = ('xmlns:tev="http://www.onvif.org/ver10/events/wsdl" xmlns:wsnt="http://docs.oasis-open'
       '.org/wsn/b-2" xmlns:tns1="http://www.onvif.org/ver10/topics" xmlns:tt="http://www.onvif'
       '.org/ver10/schema"')
# Mostly what clients send, so subscriptions get made and pulled; then the odd ones.
_DIALECTS = st.sampled_from([topics.CONCRETE_SET] * 3 + [topics.CONCRETE, topics.SIMPLE,
                                                         "urn:x", ""])
_CONTENT_DIALECTS = st.sampled_from([topics.ITEM_FILTER] * 3 + [topics.XPATH_1, "urn:x", ""])
_GOOD_TOPICS = st.sampled_from(["tns1:RuleEngine/CellMotionDetector/Motion",
                                "tns1:VideoSource//.", "tns1:RuleEngine//*",
                                "tns1:Device/Trigger/DigitalInput", "tns1:a|tns1:b"])
_TOPICS = _GOOD_TOPICS | _GOOD_TOPICS | st.sampled_from(
    ["tns1:*", "x:Foo", "//", "", "|||", "tns1://."]) | hostile_text()
_GOOD_XPATHS = st.sampled_from([
    "boolean(//tt:SimpleItem[@Name='IsMotion' and @Value='true'])", "//tt:SimpleItem",
    "count(//*) > 1", "//tt:SimpleItem/@Value = 'true'", "string-length(//*)", "1 div 0",
    "(((((1)))))"])
_XPATHS = _GOOD_XPATHS | _GOOD_XPATHS | st.sampled_from([
    "x:y", "undefined()", "//*[", "id('x')",
    "/" * 50, "(" * 500 + ")" * 500,
    "document('file:///etc/passwd')", "//*[" * 100, "x" * 1025, "$v", "//@*[name()]",
    "substring('a', 1e400)", "translate(//*, 'a', 'b')"]) | hostile_text()
_DURATIONS = st.sampled_from(["PT10S", "PT0S", "PT-5S", "P1Y2M3DT4H5M6.5S", "PT1e400S",
                              "P99999999999999Y", "PT99999999999999999999S", "P1W", "PT", "",
                              "2027-01-15T08:00:00Z", "9999-12-31T23:59:59Z",
                              "0001-01-01T00:00:00Z", "2027-13-45T99:00:00Z"]) | hostile_text()
_PULL_TIMEOUTS = st.sampled_from(["PT0S", "PT0.2S", "PT-1S", "PT1e400S", "P", "x", ""])


def _post_onvif(d, path, body, header=""):
    raw = envelope(body, security("admin", d.admin_password) + header)
    return http(d, b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: "
                b"application/soap+xml\r\nContent-Length: %d\r\n\r\n%s"
                % (path.encode(), len(raw), raw))


@fuzz_settings(40)
@given(st.data())
def test_onvif_event_subscriptions(daemon, watch, data):
    # Two in three subscriptions are made the way clients make them, so they get pulled and
    # renewed; the third has every part odd.
    good = data.draw(st.integers(0, 2)) > 0
    topic_exprs = data.draw(st.lists(st.tuples(
        st.just(topics.CONCRETE_SET) if good else _DIALECTS,
        _GOOD_TOPICS if good else _TOPICS), max_size=2))
    contents = data.draw(st.lists(st.tuples(
        st.just(topics.ITEM_FILTER) if good else _CONTENT_DIALECTS,
        _GOOD_XPATHS if good else _XPATHS), max_size=2))
    initial = data.draw(st.sampled_from(["", "PT60S"]) if good else _DURATIONS)
    steps = data.draw(st.lists(st.sampled_from(["pull", "pull", "renew", "sync", "wsa-to"]),
                               min_size=1 if good else 0, max_size=4))
    pull_timeout = data.draw(st.sampled_from(["PT0S", "PT0.2S"]) if good else _PULL_TIMEOUTS)
    limit = data.draw(st.sampled_from(["1", "100"]) if good else
                      st.sampled_from(NUMBERS + ["1", "100", "0"]))
    renew_to = data.draw(st.sampled_from(["PT60S", "PT10S"]) if good else _DURATIONS)
    filters = "".join('<wsnt:TopicExpression Dialect="%s">%s</wsnt:TopicExpression>'
                      % (xml_text(d), xml_text(t)) for d, t in topic_exprs)
    filters += "".join('<wsnt:MessageContent Dialect="%s">%s</wsnt:MessageContent>'
                       % (xml_text(d), xml_text(x)) for d, x in contents)
    status, body = _post_onvif(daemon, "/onvif/events_service", (
        "<tev:CreatePullPointSubscription %s><tev:Filter>%s</tev:Filter>"
        "<tev:InitialTerminationTime>%s</tev:InitialTerminationTime>"
        "</tev:CreatePullPointSubscription>") % (_EV, filters, xml_text(initial)))
    assert status in (200, 400, 500), status
    address = re.search(rb"<wsa:Address>[^<]*?(/onvif/[^<]+)</wsa:Address>", body)
    if status == 200 and address:
        path = address.group(1).decode()
        for step in steps:
            if step == "pull":
                op = ("<tev:PullMessages %s><tev:Timeout>%s</tev:Timeout><tev:MessageLimit>%s"
                      "</tev:MessageLimit></tev:PullMessages>" % (_EV, pull_timeout,
                                                                  xml_text(limit)))
            elif step == "renew":
                op = "<wsnt:Renew %s><wsnt:TerminationTime>%s</wsnt:TerminationTime>" \
                     "</wsnt:Renew>" % (_EV, xml_text(renew_to))
            elif step == "sync":
                op = "<tev:SetSynchronizationPoint %s/>" % _EV
            else:
                # Addressed by wsa:To instead of the path (an unparsable one is its own test).
                op = "<tev:SetSynchronizationPoint %s/>" % _EV
                _post_onvif(daemon, "/onvif/events_service", op,
                            '<wsa:To xmlns:wsa="http://www.w3.org/2005/08/addressing">'
                            'http://127.0.0.1%s</wsa:To>' % path)
                continue
            _post_onvif(daemon, path, op)
        _post_onvif(daemon, path, "<wsnt:Unsubscribe %s/>" % _EV)
    check_log(watch)


def test_found_wsa_to_with_an_unclosed_bracket(daemon, watch):
    status, _ = _post_onvif(
        daemon, "/onvif/events_service", "<tev:PullMessages %s><tev:Timeout>PT0S</tev:Timeout>"
        "</tev:PullMessages>" % _EV, '<wsa:To xmlns:wsa="http://www.w3.org/2005/08/'
        'addressing">http://[::1/onvif/events_service/subscription/x</wsa:To>')
    assert status == 400
