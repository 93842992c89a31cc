"""Fuzz the RTSP server's state machine through in-memory transports on a Clock.

Several clients (anonymous and logged in, from a few addresses) send random sequences of
well-formed and malformed requests: every method, random headers, Transport values, Session
ids (real ones and junk), CSeq, Range, credentials; interleaved and UDP RTCP; time passes and
video arrives. Every byte the server writes must be a well-formed RTSP response with a 1xx-5xx
status (never 500) or an interleaved frame; every well-formed request gets exactly one answer,
in order, echoing its CSeq; and nothing is logged as a failure.
"""

import base64
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from rotordream.auth.service import AuthService
from rotordream.config import from_dict
from rotordream.media.hub import AccessUnit
from rotordream.rtp.packet import Bye, ReceiverReport, ReportBlock, SenderReport
from rotordream.rtsp.connection import RTSPFactory
from rotordream.rtsp.server import RTSPServer
from rotordream.testing import FakePipeline, FakeUDPReactor
from tests.support.fuzz import (NUMBERS, assert_no_failures, fuzz_settings, hostile_text,
                                mutated, watch_log)

SPS, PPS = b"\x67\x42\xc0\x1f\xda", b"\x68\xce\x3c\x80"
PASSWORD = "admin-password"
ADDRESSES = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


def au(stream, seq, key):
    """An access unit of ``stream``: a keyframe (with SPS/PPS) or a P-frame."""
    nals = (SPS, PPS, b"\x65" + b"k" * 3000) if key else (b"\x41" + b"p" * 500,)
    return AccessUnit(stream, seq, nals, key, seq * 3000, 1000.0 + seq / 30, 640, 360, 30,
                      SPS, PPS)


class Rig:
    """An RTSP server with fake video and UDP. The clock and the auth service (whose set-up
    hashes a password) last the whole test; each example gets a new server via ``fresh()``."""

    def __init__(self, tmp):
        self.clock = FakeUDPReactor()
        self.clock.advance(1_800_000_000)
        self.cfg = from_dict({"rtsp": {"max_sessions": 4, "reserved_sessions": 1,
                                       "max_sessions_per_address": 2, "session_timeout": 60,
                                       "setup_timeout": 10, "rtp_port_min": 50000,
                                       "rtp_port_max": 50010},
                              "auth": {"initial_admin_password": PASSWORD,
                                       "secret_file": str(tmp / "secret.key")}})
        state = tmp / "state"
        state.mkdir()
        self.auth = AuthService(self.cfg, str(state), self.clock)
        self.server = None

    def fresh(self):
        """A new server with one GOP of stream1 published (the previous one stopped)."""
        if self.server is not None:
            self.server.stop()
        self.pipeline = FakePipeline()
        self.server = RTSPServer(config=self.cfg.rtsp, hubs=self.pipeline.hubs, auth=self.auth,
                                 clock=self.clock)
        self.server.start(self.clock)
        self.factory = RTSPFactory(self.server)
        self.seq = 0
        self.publish("stream1", True)
        self.publish("stream1", False)
        return self

    def publish(self, stream, key):
        self.seq += 1
        self.pipeline.hubs[stream].publish(au(stream, self.seq, key))

    def connect(self, address, port):
        proto = self.factory.buildProtocol(IPv4Address("TCP", address, port))
        transport = StringTransport(peerAddress=IPv4Address("TCP", address, port))
        proto.makeConnection(transport)
        return Client(proto, transport)

    def settle(self):
        """Run everything due now (answers are taken one reactor turn apart)."""
        for _ in range(10000):
            if not any(c.getTime() <= self.clock.seconds() for c in self.clock.getDelayedCalls()):
                return
            self.clock.advance(0)
        raise AssertionError("the server keeps scheduling calls for now")


class Client:
    """One connection: what was sent (CSeqs), whether it was mangled, its transport."""

    def __init__(self, proto, transport):
        self.proto = proto
        self.transport = transport
        self.cseqs = []
        self.sessions = []
        self.mangled = False
        self.closed = False

    @property
    def usable(self):
        return not (self.closed or self.transport.disconnecting)


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    """The module's Rig."""
    rig = Rig(tmp_path_factory.mktemp("rtspfuzz"))
    yield rig
    if rig.server is not None:
        rig.server.stop()


# -- requests ---------------------------------------------------------------------

VALID_METHODS = ["OPTIONS", "DESCRIBE", "SETUP", "PLAY", "PAUSE", "TEARDOWN", "GET_PARAMETER",
                 "SET_PARAMETER"]
METHODS = VALID_METHODS * 4 + ["SETUP", "PLAY"] * 4 + ["RECORD", "ANNOUNCE", "REDIRECT", "GET"]
GOOD_URIS = ["rtsp://h/stream1", "rtsp://h/stream1/trackID=0", "rtsp://h/stream2/trackID=0"]
GOOD_TRANSPORTS = ["RTP/AVP/TCP;unicast;interleaved=0-1", "RTP/AVP/TCP;unicast;interleaved=2-3",
                   "RTP/AVP;unicast;client_port=5000-5001", "RTP/AVP/UDP;unicast;client_port=6000",
                   "RTP/AVP;multicast,RTP/AVP/TCP;interleaved=4-5"]
URIS = ["rtsp://h/stream1", "rtsp://h/stream1/", "rtsp://h/stream1/trackID=0",
        "rtsp://h/stream2/trackID=0", "rtsp://h/stream1?tcp", "rtsp://h/stream1/trackID=0?udp",
        "rtsp://h/stream1/trackID=9", "*", "rtsp://h/recording", "rtsp://h/recording/x/trackID=0",
        "rtsp://[::1/stream1", "rtsp://h:99999/stream1", "rtsp://h:x/stream1",
        "rtsp://h/stream1?token=junk", "rtsp://h/%2e%2e/stream1", "rtsp://h/stream1/../stream2",
        "rtsp://h/stream1?" + "a=1&" * 100, "rtsp://h/" + "s" * 3000,
        "rtsp://[fe80::1%25eth0]/stream1",
        "stream1", "rtsp://h/stream1\x00", "rtsp://h/str\u00e9am1"]
# URIs, header names and values without CR or LF, so the request stays well-formed (the
# "mangled" step sends the ill-formed ones).
_CLEAN = st.text(st.characters(exclude_characters="\r\n", exclude_categories=["Cs"]),
                 max_size=30).map(str.strip)
_URI = st.sampled_from(URIS) | st.text(st.characters(
    exclude_characters="\r\n ", exclude_categories=["Cs"]), min_size=1, max_size=40)
_PAIR = st.one_of(st.builds("{}-{}".format, st.integers(-2, 70000), st.integers(-2, 70000)),
                  st.integers(-2, 70000).map(str), st.sampled_from(NUMBERS),
                  st.sampled_from(["0-1", "2-3", "254-255", "300-301", "5000-5001", "5001-5002",
                                   "0-0", "-", "1-2-3"]))
_PARAM = st.one_of(
    st.sampled_from(["unicast", "multicast", "mode=play", "mode=record", "ttl=300",
                     "destination=192.0.2.9", "ssrc=DEADBEEF", "ssrc=x", "append", "="]),
    _PAIR.map("interleaved={}".format), _PAIR.map("client_port={}".format),
    _PAIR.map("port={}".format), hostile_text().map(lambda t: t.replace("\r", "").replace(
        "\n", "")))
_OFFER = st.builds(lambda proto, params: ";".join([proto] + params),
                   st.sampled_from(["RTP/AVP", "RTP/AVP/UDP", "RTP/AVP/TCP", "rtp/avp/tcp",
                                    "RTP/SAVP", "", "RTP/AVP/TCPX"]),
                   st.lists(_PARAM, max_size=4))
TRANSPORTS = st.lists(_OFFER, min_size=1, max_size=3).map(",".join)
RANGES = st.sampled_from(["npt=0-", "npt=now-", "npt=abc-", "clock=20270101T000000Z-",
                          "npt=1e999-", "npt=nan-", "npt=-5-", "npt=", "smpte=0:00:00-"])


def _basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


AUTHS = st.sampled_from([
    _basic("admin", PASSWORD), _basic("admin", "wrong"), _basic("nobody", "x"), "Basic !!!",
    "Basic " + base64.b64encode(b"\xff\xfe:x").decode(), "Digest garbage",
    'Digest username="admin", realm="RotorDream", nonce="x", uri="rtsp://h/stream1", '
    'response="00", qop=auth, nc=00000001, cnonce="c"', "Bearer junk", "Negotiate x", ""])


@st.composite
def request_text(draw, cseq, sessions, own=()):
    """One well-formed request (as text) with CSeq ``cseq``, maybe naming a known session
    (``own``: those of this connection, ``sessions``: any)."""
    method = draw(st.sampled_from(METHODS))
    uri = draw(st.sampled_from(GOOD_URIS) | st.sampled_from(GOOD_URIS) | _URI)
    lines = ["%s %s RTSP/1.0" % (method, uri), "CSeq: %d" % cseq]
    # The same draws whatever the server answered so far, so Hypothesis can replay them.
    pick, suffix, junk = draw(st.integers(0, 7)), draw(st.sampled_from(
        ["", ";timeout=60", " ; x"])), draw(_CLEAN)
    if own and pick < 4:
        lines.append("Session: %s%s" % (own[pick % len(own)], suffix))
    elif sessions and pick < 6:
        lines.append("Session: %s%s" % (sessions[pick % len(sessions)], suffix))
    elif pick < 7:
        lines.append("Session: %s" % junk)
    if method == "SETUP" or draw(st.integers(0, 5)) == 0:
        lines.append("Transport: %s" % draw(st.sampled_from(GOOD_TRANSPORTS) | TRANSPORTS))
    if method == "PLAY" and draw(st.booleans()):
        lines.append("Range: %s" % draw(RANGES))
    if draw(st.integers(0, 4)) == 0:
        lines.append("Authorization: %s" % draw(AUTHS))
    for name, value in draw(st.lists(st.tuples(st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,15}",
                                                             fullmatch=True), _CLEAN),
                                     max_size=3)):
        if name.lower() not in ("cseq", "content-length"):
            lines.append("%s: %s" % (name, value))
    body = draw(st.binary(max_size=40)) if draw(st.integers(0, 5)) == 0 else b""
    if body:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def rtcp_bytes():
    """RTCP a client might send, well-formed or not."""
    blocks = st.lists(st.builds(ReportBlock, st.integers(0, 2 ** 32 - 1), st.integers(0, 255),
                                st.integers(-(1 << 23), (1 << 23) - 1),
                                *[st.integers(0, 2 ** 32 - 1)] * 4), max_size=2)
    packets = st.one_of(st.builds(ReceiverReport, st.integers(0, 2 ** 32 - 1), blocks),
                        st.builds(SenderReport, *[st.integers(0, 2 ** 32 - 1)] * 5),
                        st.builds(Bye, st.lists(st.integers(0, 2 ** 32 - 1), max_size=3)))
    return mutated(st.lists(packets, min_size=1, max_size=3).map(
        lambda ps: b"".join(bytes(p) for p in ps)), max_ops=3)


# -- the response checker -----------------------------------------------------------

_STATUS = re.compile(rb"RTSP/1\.0 ([1-5][0-9][0-9]) [\x20-\x7e\x80-\xff]*\Z")  # obs-text allowed
_HEADER = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+): ([^\r\n]*)\Z")


def responses(raw):
    """(status, headers dict) of each response in ``raw``, interleaved frames skipped.

    Fails unless the whole stream is responses and frames, each well-formed.
    """
    out = []
    i = 0
    while i < len(raw):
        if raw[i:i + 1] == b"$":
            assert len(raw) >= i + 4, "truncated interleaved header"
            length = int.from_bytes(raw[i + 2:i + 4], "big")
            assert len(raw) >= i + 4 + length, "truncated interleaved frame"
            i += 4 + length
            continue
        end = raw.find(b"\r\n\r\n", i)
        assert end >= 0, "unterminated response: %r" % raw[i:i + 200]
        lines = raw[i:end].split(b"\r\n")
        status = _STATUS.match(lines[0])
        assert status, "bad status line %r" % lines[0]
        headers = {}
        for line in lines[1:]:
            m = _HEADER.match(line)
            assert m, "bad header line %r in %r" % (line, raw[i:end])
            headers.setdefault(m.group(1).decode().lower(), m.group(2).decode("utf-8"))
        length = int(headers.get("content-length", "0"))
        i = end + 4 + length
        assert i <= len(raw), "truncated body"
        out.append((int(status.group(1)), headers))
    return out


def check(client):
    """The answers ``client`` got, after checking their form, status and CSeqs."""
    answers = responses(client.transport.value())
    for status, _ in answers:
        assert status != 500, "the server failed: %r" % (answers,)
    if not client.mangled:
        cseqs = [h.get("cseq") for _, h in answers]
        sent = [str(c) for c in client.cseqs]
        # Every request answered once, in order, with its own CSeq; a connection the client
        # closed itself may have left the last ones unanswered.
        if client.closed:
            sent = sent[:len(cseqs)]
        assert cseqs == sent, (cseqs, client.cseqs, answers)
    return answers


# -- the run ------------------------------------------------------------------------

STEPS = st.sampled_from(["request"] * 6 + ["play"] * 2 + ["mangled", "frame", "udp-rtcp",
                                                         "advance", "publish", "close"])
PLAY_TRANSPORTS = st.sampled_from(GOOD_TRANSPORTS[:4])


@fuzz_settings(200)
@given(st.data())
def test_random_request_sequences_get_well_formed_answers(rig, data):
    rig.fresh()
    clients = {}
    sessions = []
    port = iter(range(40000, 41000))

    def client(n):
        if n not in clients or not clients[n].usable:
            if n in clients:
                finished.append(clients[n])
            clients[n] = rig.connect(ADDRESSES[n % len(ADDRESSES)], next(port))
        return clients[n]

    finished = []
    with watch_log(collect=False) as seen:
        for step in data.draw(st.lists(STEPS, min_size=1, max_size=10)):
            c = client(data.draw(st.integers(0, 3)))
            if step == "request":
                cseq = data.draw(st.integers(0, 999_999_999))
                raw = data.draw(request_text(cseq, sessions, c.sessions))
                c.cseqs.append(cseq)
                c.proto.dataReceived(raw)
            elif step == "play":
                # What real players do: SETUP a transport, then PLAY the session it gave.
                transport = data.draw(PLAY_TRANSPORTS)
                auth = data.draw(st.sampled_from(["", "Authorization: %s\r\n" % _basic(
                    "admin", PASSWORD)]))
                c.cseqs.append(len(c.cseqs) + 1)
                c.proto.dataReceived(b"SETUP rtsp://h/stream1/trackID=0 RTSP/1.0\r\nCSeq: %d\r\n"
                                     b"Transport: %s\r\n%s\r\n" % (
                                         c.cseqs[-1], transport.encode(), auth.encode()))
                rig.settle()
                answers = responses(c.transport.value())
                sid = answers[-1][1].get("session", "") if answers else ""
                c.cseqs.append(len(c.cseqs) + 1)
                c.proto.dataReceived(b"PLAY rtsp://h/stream1/ RTSP/1.0\r\nCSeq: %d\r\n"
                                     b"Session: %s\r\n\r\n" % (c.cseqs[-1],
                                                               sid.split(";")[0].encode()))
            elif step == "mangled":
                c.mangled = True
                raw = data.draw(mutated(request_text(1, sessions), max_ops=4))
                for piece in (raw[:len(raw) // 2], raw[len(raw) // 2:]):
                    if c.usable:
                        c.proto.dataReceived(piece)
            elif step == "frame":
                payload = data.draw(rtcp_bytes())
                channel = data.draw(st.integers(0, 255))
                c.proto.dataReceived(b"$" + bytes([channel]) + len(payload).to_bytes(2, "big")
                                     + payload)
            elif step == "udp-rtcp":
                rig.server.rtcp_received(data.draw(rtcp_bytes()), (
                    ADDRESSES[data.draw(st.integers(0, 2))], data.draw(st.integers(0, 65535))))
            elif step == "advance":
                rig.clock.advance(data.draw(st.sampled_from([0.1, 1, 5, 11, 61])))
            elif step == "publish":
                rig.publish(data.draw(st.sampled_from(["stream1", "stream2"])),
                            data.draw(st.booleans()))
            elif step == "close":
                c.closed = True
                c.proto.connectionLost(None)
            rig.settle()
            for _, h in responses(c.transport.value()):
                sid = h.get("session", "").split(";")[0]
                if sid and sid not in sessions:
                    sessions.append(sid)
                if sid and sid not in c.sessions:
                    c.sessions.append(sid)
        rig.clock.advance(6)  # a DESCRIBE waiting for video is answered (503) by now
        rig.settle()
        for c in list(clients.values()) + finished:
            check(c)
            if not c.closed:
                c.proto.connectionLost(None)
        rig.settle()
    assert_no_failures(seen)
    # Each example's connections are gone, and so are their sessions.
    assert all(s.connection.connected for s in rig.server.sessions_by_id.values())


def exchange(rig, *requests, frames=()):
    """Send ``requests`` on one new connection, then ``frames``; return the answers after
    checking them as the fuzz run does. A request may be a function of the answers so far
    (to name the session a SETUP gave)."""
    rig.fresh()
    c = rig.connect("10.0.0.9", 40999)
    c.mangled = True  # CSeqs are not tracked here
    with watch_log(collect=False) as seen:
        for raw in requests:
            c.proto.dataReceived(raw(responses(c.transport.value())) if callable(raw) else raw)
            rig.settle()
        for frame in frames:
            c.proto.dataReceived(frame)
        rig.publish("stream1", True)  # video for whatever plays, to its port or channel
        rig.publish("stream1", False)
        rig.clock.advance(6)
        rig.settle()
        answers = check(c)
        c.proto.connectionLost(None)
        rig.settle()
    assert_no_failures(seen)
    return answers


def play_the_session(answers):
    """A PLAY of the session the last answer gave."""
    sid = answers[-1][1].get("session", "none").split(";")[0] if answers else "none"
    return PLAY % sid.encode()


# Inputs the fuzzing found (issue 13 item 10 among them), kept as plain examples.
SETUP = b"SETUP rtsp://h/stream1/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: %s\r\n\r\n"
PLAY = b"PLAY rtsp://h/stream1 RTSP/1.0\r\nCSeq: 2\r\nSession: %s\r\n\r\n"
FOUND = {
    "interleaved-300": SETUP % b"RTP/AVP/TCP;unicast;interleaved=300-301",
    "client-port-70000": SETUP % b"RTP/AVP;unicast;client_port=70000-70001",
    "client-port-superscript": SETUP % "RTP/AVP;unicast;client_port=\u00b2".encode(),
    "unclosed-ipv6": b"DESCRIBE rtsp://[::1/stream1 RTSP/1.0\r\nCSeq: 1\r\n\r\n",
    "port-not-a-number": b"DESCRIBE rtsp://h:x/stream1 RTSP/1.0\r\nCSeq: 1\r\n\r\n",
}


@pytest.mark.parametrize("raw", FOUND.values(), ids=FOUND.keys())
def test_found_setups_then_play(rig, raw):
    answers = exchange(rig, raw, play_the_session)
    assert answers[0][0] in (400, 461)  # refused when it arrives, not failing later


def test_found_rtcp_bye_claiming_more_sources_than_it_holds(rig):
    setup = SETUP % b"RTP/AVP/TCP;unicast;interleaved=0-1"
    bye = b"\x85\xcb\x00\x01\x00\x00\x00\x01"
    exchange(rig, setup, frames=[b"$\x01\x00\x08" + bye])


def test_found_line_feed_in_uri_is_not_echoed_into_a_header(rig):
    # DESCRIBE echoed the URI in Content-Base: a bare LF there forged a header.
    [(status, headers)] = exchange(
        rig, b"DESCRIBE rtsp://h/stream1/\nInjected:1 RTSP/1.0\r\nCSeq: 1\r\n\r\n")
    assert status == 400 and "injected" not in headers
