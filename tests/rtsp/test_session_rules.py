"""The RTSP server's session rules on in-memory transports with a Clock.

Expiry (SETUP without PLAY; what keeps a played session alive), ownership
(454 for anyone but the owner), slots (per-address caps and reserved
sessions), Transport/URL validation, and in-order answers with a bounded
queue when authentication answers later.
"""

import base64
import struct

import pytest
from twisted.internet import defer, task
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher

from rotordream.auth.service import AuthService
from rotordream.config import from_dict
from rotordream.media.hub import AccessUnit
from rotordream.rtsp.connection import RTSPFactory
from rotordream.rtsp.server import RTSPServer
from rotordream.testing import FakePipeline, FakeUDPPort

SPS, PPS = b"\x67\x42\xc0\x1f\xda", b"\x68\xce\x3c\x80"
ADMIN = "Basic " + base64.b64encode(b"admin:admin-password").decode()
# An RTCP receiver report (one block) + SDES, as FFmpeg sends.
RR = (struct.pack("!BBHI", 0x81, 201, 7, 0x1234) + struct.pack("!IIIIII", 0, 0, 0, 0, 0, 0)
      + struct.pack("!BBHI", 0x81, 202, 1, 0x1234))


def au(seq, key):
    nals = (SPS, PPS, b"\x65" + b"k" * 300) if key else (b"\x41" + b"p" * 50,)
    return AccessUnit("stream1", seq, nals, key, seq * 3000, 1000.0 + seq / 30, 640, 360, 30,
                      SPS, PPS)


class Rig:
    """An RTSPServer on a Clock with UDP ports, and connections from any address."""

    def __init__(self, tmp_path, rtsp=None, auth=None):
        self.clock = Clock()
        settings = {"max_sessions": 10, "session_timeout": 60, "setup_timeout": 10}
        settings.update(rtsp or {})
        cfg = from_dict({"rtsp": settings,
                         "auth": dict({"initial_admin_password": "admin-password"},
                                      **(auth or {}))})
        self.pipeline = FakePipeline()
        self.auth = AuthService(cfg, str(tmp_path), self.clock)
        self.server = RTSPServer(config=cfg.rtsp, hubs=self.pipeline.hubs, auth=self.auth,
                                 clock=self.clock)
        rtp, rtcp = FakeUDPPort(50000), FakeUDPPort(50001)
        self.server.udp_ports = (rtp, rtcp)
        self.server.rtp_port.transport = rtp
        self.server.rtcp_port.transport = rtcp
        self.server._reaper.start(1, now=False)
        for hub in self.pipeline.hubs.values():
            hub.publish(au(0, True))
        self.factory = RTSPFactory(self.server)

    def connect(self, host="127.0.0.1"):
        proto = self.factory.buildProtocol(None)
        transport = StringTransport(peerAddress=IPv4Address("TCP", host, 40000))
        proto.makeConnection(transport)
        return Client(proto, transport, self.clock)


class Client:
    """One connection: send a request, read its answer."""

    def __init__(self, proto, transport, clock):
        self.proto, self.t, self.clock = proto, transport, clock
        self.cseq = 0

    def ask(self, method, url="rtsp://h/stream1", **headers):
        self.cseq += 1
        lines = ["%s %s RTSP/1.0" % (method, url), "CSeq: %d" % self.cseq]
        lines += ["%s: %s" % (k.replace("_", "-"), v) for k, v in headers.items()]
        self.t.clear()
        self.proto.dataReceived(("\r\n".join(lines) + "\r\n\r\n").encode())
        return answer(self.t.value())

    def setup(self, url="rtsp://h/stream1/trackID=0", transport=None, **headers):
        transport = transport or "RTP/AVP/TCP;unicast;interleaved=0-1"
        code, h, _ = self.ask("SETUP", url, Transport=transport, **headers)
        return code, h, h.get("Session", "").split(";")[0]


def answer(raw):
    while raw[:1] == b"$":  # interleaved RTP/RTCP may come first
        raw = raw[4 + int.from_bytes(raw[2:4], "big"):]
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head:
        return None, {}, b""
    lines = head.decode().split("\r\n")
    headers = {"_status": lines[0]}
    for line in lines[1:]:
        k, _, v = line.partition(": ")
        headers.setdefault(k, v)
    return int(lines[0].split()[1]), headers, body


@pytest.fixture
def failures():
    """Failures (tracebacks) logged while the test runs."""
    seen = []

    def observer(event):
        if event.get("log_failure") is not None:
            seen.append(event)
    globalLogPublisher.addObserver(observer)
    yield seen
    globalLogPublisher.removeObserver(observer)


# -- expiry ---------------------------------------------------------------------------

def test_setup_without_play_expires_whatever_the_connection_sends(tmp_path):
    rig = Rig(tmp_path)
    c = rig.connect()
    code, _, sid = c.setup()
    assert code == 200
    # Everything a client can send on the connection: none of it extends a SETUP.
    for _ in range(5):
        rig.clock.advance(2)
        assert c.ask("GET_PARAMETER", Session=sid)[0] in (200, 454)
        c.ask("OPTIONS", Session=sid)
        c.proto.dataReceived(b"$\x01" + struct.pack("!H", len(RR)) + RR)
    rig.clock.advance(1)
    assert rig.server.sessions() == []
    assert c.ask("PLAY", Session=sid)[0] == 454


def test_a_played_session_lives_only_by_its_own_signs_of_life(tmp_path):
    rig = Rig(tmp_path)
    talker, named, tcp, udp = (rig.connect() for _ in range(4))
    sids = {}
    for c in (talker, named, tcp):
        code, _, sids[c] = c.setup()
        assert code == 200
    code, h, sids[udp] = udp.setup(transport="RTP/AVP;unicast;client_port=41000-41001")
    assert code == 200 and "server_port=50000-50001" in h["Transport"]
    for c in (talker, named, tcp, udp):
        assert c.ask("PLAY", Session=sids[c])[0] == 200
    rig.clock.advance(0)
    for _ in range(7):
        rig.clock.advance(10)
        # talker: requests on its connection, none naming its session.
        talker.ask("OPTIONS")
        talker.ask("GET_PARAMETER")
        # named: a keep-alive naming its session.
        named.ask("GET_PARAMETER", Session=sids[named])
        # tcp: an interleaved receiver report on its RTCP channel (RTP on channel 0
        # and garbage RTCP would not count).
        tcp.proto.dataReceived(b"$\x01" + struct.pack("!H", len(RR)) + RR)
        # udp: a receiver report from its RTCP address; one from another port is ignored.
        rig.server.rtcp_received(RR, ("127.0.0.1", 41001))
        rig.server.rtcp_received(RR, ("127.0.0.1", 41003))
    alive = {s["session"] for s in rig.server.sessions()}
    assert alive == {sids[named], sids[tcp], sids[udp]}
    # Garbage RTCP and RTP keep nothing alive: after 60 s of them the tcp one is gone too.
    for _ in range(7):
        rig.clock.advance(10)
        tcp.proto.dataReceived(b"$\x01\x00\x04junk")
        tcp.proto.dataReceived(b"$\x00" + struct.pack("!H", len(RR)) + RR)
    assert sids[tcp] not in {s["session"] for s in rig.server.sessions()}


# -- ownership --------------------------------------------------------------------------

def test_a_udp_session_answers_only_its_owner(tmp_path):
    rig = Rig(tmp_path)
    owner = rig.connect("127.0.0.1")
    code, _, sid = owner.setup(transport="RTP/AVP;unicast;client_port=41000-41001",
                               Authorization=ADMIN)
    assert code == 200
    assert owner.ask("PLAY", Session=sid)[0] == 200
    stranger = rig.connect("127.0.0.2")
    neighbour = rig.connect("127.0.0.1")   # same address, anonymous, another connection
    for c in (stranger, neighbour):
        for method in ("PAUSE", "TEARDOWN", "PLAY", "GET_PARAMETER"):
            assert c.ask(method, Session=sid)[0] == 454, method
        # Credentials of the right user from the wrong address do not help either.
    assert stranger.ask("PAUSE", Session=sid, Authorization=ADMIN)[0] == 454
    assert rig.server.sessions()[0]["state"] == "PLAYING"
    # The owner, from its address with its credentials, may use another connection.
    assert neighbour.ask("PAUSE", Session=sid, Authorization=ADMIN)[0] == 200
    assert owner.ask("TEARDOWN", Session=sid)[0] == 200


def test_a_tcp_session_answers_only_its_connection(tmp_path):
    rig = Rig(tmp_path)
    owner = rig.connect()
    code, _, sid = owner.setup(Authorization=ADMIN)
    other = rig.connect()
    assert other.ask("TEARDOWN", Session=sid, Authorization=ADMIN)[0] == 454
    assert owner.ask("PLAY", Session=sid)[0] == 200


# -- slots --------------------------------------------------------------------------------

def test_anonymous_caps_leave_reserved_sessions_for_logged_in_users(tmp_path):
    rig = Rig(tmp_path, {"max_sessions": 6, "reserved_sessions": 2,
                         "max_sessions_per_address": 2})
    got = {}
    for host in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
        got[host] = []
        for i in range(3):
            c = rig.connect(host)
            code, h, _ = c.setup()
            got[host].append(code)
            if code == 401:
                assert h["WWW-Authenticate"].startswith("Digest")
                reason = h["_status"]
    # Two per address, four anonymous in all; the 401 invites credentials and says why.
    assert got == {"127.0.0.2": [200, 200, 401], "127.0.0.3": [200, 200, 401],
                   "127.0.0.4": [401, 401, 401]}
    assert "logged-in users" in reason
    # A logged-in viewer gets one of the reserved sessions, even from a capped address.
    assert rig.connect("127.0.0.2").setup(Authorization=ADMIN)[0] == 200
    assert rig.connect("127.0.0.4").setup(Authorization=ADMIN)[0] == 200
    code, h, _ = rig.connect("127.0.0.5").setup(Authorization=ADMIN)
    assert code == 503 and h["Retry-After"] and "in use" in h["_status"]


def test_freed_anonymous_slots_can_be_taken_again(tmp_path):
    rig = Rig(tmp_path, {"max_sessions": 2, "reserved_sessions": 0,
                         "max_sessions_per_address": 2, "setup_timeout": 3})
    a, b = rig.connect(), rig.connect()
    assert a.setup()[0] == 200 and b.setup()[0] == 200
    late = rig.connect()
    assert late.setup()[0] == 503
    rig.clock.advance(4)
    code, _, sid = late.setup()
    assert code == 200 and late.ask("PLAY", Session=sid)[0] == 200


def test_an_address_gets_its_anonymous_slots_back_when_its_sessions_end(tmp_path):
    rig = Rig(tmp_path, {"max_sessions": 10, "reserved_sessions": 0,
                         "max_sessions_per_address": 2, "setup_timeout": 3})
    a, b, c = rig.connect(), rig.connect(), rig.connect()
    (code_a, _, sid_a), (code_b, _, _) = a.setup(), b.setup()
    assert (code_a, code_b) == (200, 200) and c.setup()[0] == 401
    assert rig.connect("127.0.0.2").setup()[0] == 200          # another address is not capped
    assert a.ask("TEARDOWN", Session=sid_a)[0] == 200            # ended by the client
    assert c.setup()[0] == 200 and rig.connect().setup()[0] == 401
    rig.clock.advance(4)                                         # b and c expire unplayed
    d, e = rig.connect(), rig.connect()
    assert d.setup()[0] == 200 and e.setup()[0] == 200
    assert rig.server.core.anonymous == {"127.0.0.1": 2}


# -- validation ----------------------------------------------------------------------------

@pytest.mark.parametrize("transport", [
    "RTP/AVP/TCP;unicast;interleaved=300-301",
    "RTP/AVP/TCP;unicast;interleaved=255-256",
    "RTP/AVP/TCP;unicast;interleaved=-1-0",
    "RTP/AVP/TCP;unicast;interleaved=2-2",
    "RTP/AVP/TCP;unicast;interleaved=x",
    "RTP/AVP;unicast;client_port=70000-70001",
    "RTP/AVP;unicast;client_port=0-1",
    "RTP/AVP;unicast;client_port=5001-5002",
    "RTP/AVP;unicast;client_port=5000-6000",
    "RTP/AVP;unicast;client_port=٥٠٠٠-٥٠٠١",
])
def test_bad_transport_numbers_are_refused_at_setup(tmp_path, failures, transport):
    rig = Rig(tmp_path)
    c = rig.connect()
    code, h, _ = c.setup(transport=transport)
    assert code == 461 and "Unsupported Transport:" in h["_status"]
    assert rig.server.sessions() == [] and not failures
    # A good offer after a bad one is taken.
    code, h, sid = c.setup(transport=transport + ",RTP/AVP/TCP;unicast;interleaved=4-5")
    assert code == 200 and "interleaved=4-5" in h["Transport"]
    assert c.ask("PLAY", Session=sid)[0] == 200
    rig.clock.advance(0)
    rig.pipeline.hubs["stream1"].publish(au(1, False))
    assert not failures


def test_interleaved_channels_in_use_are_refused(tmp_path):
    rig = Rig(tmp_path)
    c = rig.connect()
    assert c.setup()[0] == 200
    assert c.setup("rtsp://h/stream2/trackID=0")[0] == 461
    assert c.setup("rtsp://h/stream2/trackID=0",
                   "RTP/AVP/TCP;unicast;interleaved=2-3")[0] == 200


@pytest.mark.parametrize("url", ["rtsp://[::1/stream1", "rtsp://h:99999/stream1",
                                 "rtsp://h:port/stream1"])
def test_unparsable_urls_get_400(tmp_path, failures, url):
    rig = Rig(tmp_path)
    c = rig.connect()
    for method in ("DESCRIBE", "SETUP", "OPTIONS", "PLAY"):
        code, h, _ = c.ask(method, url, Transport="RTP/AVP/TCP;interleaved=0-1")
        assert code == 400, method
    assert not failures
    assert c.ask("DESCRIBE")[0] == 200


def test_cseq_must_be_ascii_digits(tmp_path):
    rig = Rig(tmp_path)
    c = rig.connect()
    c.proto.dataReceived("OPTIONS * RTSP/1.0\r\nCSeq: ١٢\r\n\r\n".encode())
    assert c.t.value().startswith(b"RTSP/1.0 400") and c.t.disconnecting


# -- answers in order, bounded ---------------------------------------------------------------

class LaterAuth:
    """The daemon's AuthService, answering ``delay`` seconds later as its thread pool would."""

    def __init__(self, auth, clock, delay):
        self.auth, self.clock, self.delay = auth, clock, delay
        self.asked = 0

    def authenticate(self, *args, **kwargs):
        self.asked += 1
        return task.deferLater(self.clock, self.delay,
                               lambda: defer.maybeDeferred(self.auth.authenticate, *args,
                                                           **kwargs))

    def challenges(self, stale=False):
        return self.auth.challenges(stale=stale)


def test_pipelined_requests_are_answered_in_order_with_a_bounded_queue(tmp_path):
    rig = Rig(tmp_path)
    rig.server.auth = LaterAuth(rig.server.auth, rig.clock, 0.05)
    c = rig.connect()
    data = b"".join(b"DESCRIBE rtsp://h/stream1 RTSP/1.0\r\nCSeq: %d\r\n"
                    b"Authorization: %s\r\n\r\n" % (n, ADMIN.encode()) for n in range(1, 201))
    c.proto.dataReceived(data)
    # Nothing is answered before its check; the rest waits, bounded, and reading stops.
    assert c.t.value() == b""
    assert len(c.proto.waiting) <= 8 and c.t.producerState == "paused"
    answered = []
    for _ in range(400):
        rig.clock.advance(0.05)
        assert len(c.proto.waiting) <= 8
        raw = c.t.value()
        c.t.clear()
        answered += [int(line.split(b": ")[1]) for line in raw.split(b"\r\n")
                     if line.startswith(b"CSeq: ")]
        assert raw.count(b"RTSP/1.0 200 OK") == raw.count(b"CSeq: ")
        if len(answered) == 200:
            break
    assert answered == list(range(1, 201))
    assert c.t.producerState == "producing"
    assert rig.server.auth.asked == 200


def test_a_parse_error_is_answered_after_the_requests_before_it(tmp_path):
    rig = Rig(tmp_path)
    rig.server.auth = LaterAuth(rig.server.auth, rig.clock, 1)
    c = rig.connect()
    c.proto.dataReceived(b"DESCRIBE rtsp://h/stream1 RTSP/1.0\r\nCSeq: 1\r\n\r\n"
                         b"OPTIONS * RTSP/1.0\r\nCSeq: 2\r\n\r\nGARBAGE\r\n\r\n")
    assert c.t.value() == b"" and not c.t.disconnecting
    rig.clock.advance(1)
    rig.clock.advance(0)
    raw = c.t.value()
    assert raw.startswith(b"RTSP/1.0 200 OK\r\nCSeq: 1")
    assert raw.index(b"CSeq: 2") < raw.index(b"RTSP/1.0 400") and c.t.disconnecting


def test_a_setup_whose_connection_closed_during_its_check_leaves_no_session(tmp_path):
    rig = Rig(tmp_path)
    rig.server.auth = LaterAuth(rig.server.auth, rig.clock, 1)
    c = rig.connect()
    c.proto.dataReceived(b"SETUP rtsp://h/stream1/trackID=0 RTSP/1.0\r\nCSeq: 1\r\n"
                         b"Transport: RTP/AVP/TCP;interleaved=0-1\r\n\r\n")
    c.proto.connectionLost(None)
    rig.clock.advance(1)
    assert rig.server.sessions() == []


def test_pipelined_answers_take_turns_with_the_reactor(tmp_path):
    rig = Rig(tmp_path)
    c = rig.connect()
    c.proto.dataReceived(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n" * 5)
    # One answer now, the next one in a later reactor turn.
    assert c.t.value().count(b"RTSP/1.0 200") == 1
    assert [call.getTime() for call in rig.clock.getDelayedCalls()
            if call.func == c.proto._take_next] == [rig.clock.seconds()]
    rig.clock.advance(0)
    assert c.t.value().count(b"RTSP/1.0 200") == 5


class UnreadTransport(StringTransport):
    """A connection whose client reads nothing: every byte written stays unsent."""

    @property
    def dataBuffer(self):
        return self.value()

    offset = 0


def test_a_client_that_does_not_read_its_answers_gets_no_more(tmp_path):
    rig = Rig(tmp_path)
    proto = rig.factory.buildProtocol(None)
    t = UnreadTransport(peerAddress=IPv4Address("TCP", "127.0.0.2", 40000))
    proto.makeConnection(t)
    proto.dataReceived(b"".join(b"DESCRIBE rtsp://h/stream1 RTSP/1.0\r\nCSeq: %d\r\n\r\n" % n
                                for n in range(1, 501)))
    for _ in range(50):
        rig.clock.advance(0.1)
    one = len(t.value()) // t.value().count(b"RTSP/1.0 200")
    assert 65536 < len(t.value()) <= 65536 + one
    assert len(proto.waiting) <= 8 and t.producerState == "paused"
    answered = t.value().count(b"RTSP/1.0 200")
    t.clear()   # the client reads at last
    while answered < 500:
        rig.clock.advance(0.1)
        answered += t.value().count(b"RTSP/1.0 200")
        t.clear()
    assert t.producerState == "producing"


# -- receiver reports -------------------------------------------------------------------

def test_loss_and_jitter_come_from_the_block_about_the_sessions_own_stream(tmp_path):
    rig = Rig(tmp_path)
    c = rig.connect()
    code, _, sid = c.setup()
    assert code == 200 and c.ask("PLAY", Session=sid)[0] == 200
    session = rig.server.sessions_by_id[sid]
    ours = session.source.ssrc

    def report(*blocks):
        # RR from the viewer (SSRC 0x1234) with (ssrc, fraction lost /256, jitter) blocks.
        body = b"".join(struct.pack("!IBBHIIII", ssrc, lost, 0, 0, 0, jitter, 0, 0)
                        for ssrc, lost, jitter in blocks)
        head = struct.pack("!BBHI", 0x80 | len(blocks), 201, 1 + 6 * len(blocks), 0x1234)
        c.proto.dataReceived(b"$\x01" + struct.pack("!H", len(head + body)) + head + body)

    report(((ours + 1) & 0xFFFFFFFF, 128, 900), (ours, 64, 90))
    [seen] = [s for s in rig.server.sessions() if s["session"] == sid]
    assert (seen["loss"], seen["jitter"]) == (0.25, 90)
    report(((ours + 1) & 0xFFFFFFFF, 255, 5000))   # about another source: changes nothing
    [seen] = [s for s in rig.server.sessions() if s["session"] == sid]
    assert (seen["loss"], seen["jitter"]) == (0.25, 90)
