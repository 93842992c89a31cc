"""The RTSP server on in-memory transports, with a Clock: methods, states, limits, timeouts."""

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from rotordream.auth.service import AuthService
from rotordream.config import from_dict
from rotordream.media.hub import AccessUnit
from rotordream.rtsp.connection import RTSPFactory
from rotordream.rtsp.server import RTSPServer
from rotordream.testing import FakePipeline

SPS, PPS = b"\x67\x42\xc0\x1f\xda", b"\x68\xce\x3c\x80"


def au(seq, key):
    nals = (SPS, PPS, b"\x65" + b"k" * 3000) if key else (b"\x41" + b"p" * 500,)
    return AccessUnit("stream1", seq, nals, key, seq * 3000, 1000.0 + seq / 30, 640, 360, 30,
                      SPS, PPS)


@pytest.fixture
def rig(tmp_path):
    clock = Clock()
    cfg = from_dict({"rtsp": {"max_sessions": 2, "session_timeout": 60, "reserved_sessions": 0,
                              "max_sessions_per_address": 10},
                     "auth": {"initial_admin_password": "admin-password"}})
    pipeline = FakePipeline()
    server = RTSPServer(config=cfg.rtsp, hubs=pipeline.hubs,
                        auth=AuthService(cfg, str(tmp_path), clock), clock=clock)
    server._reaper.start(10, now=False)
    for i in range(3):
        pipeline.hubs["stream1"].publish(au(i, i == 0))
    factory = RTSPFactory(server)

    def connect():
        proto = factory.buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        return proto, transport

    return server, clock, connect, pipeline


def settled(value):
    """The result of ``value``, or of the Deferred ``value`` that has already fired."""
    results = []
    defer.maybeDeferred(lambda: value).addBoth(results.append)
    return results[0]


def request(proto, transport, text):
    transport.clear()
    proto.dataReceived(text.replace("\n", "\r\n").encode() + b"\r\n")
    raw = transport.value()
    while raw[:1] == b"$":  # interleaved RTP/RTCP (e.g. the BYE of a TEARDOWN) may come first
        raw = raw[4 + int.from_bytes(raw[2:4], "big"):]
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(": ")
        headers.setdefault(k, v)
    return int(lines[0].split()[1]), headers, body


def setup_tcp(proto, t, url="rtsp://h/stream1/trackID=0", cseq=3):
    return request(proto, t, "SETUP %s RTSP/1.0\nCSeq: %d\n"
                             "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\n" % (url, cseq))


def test_options_lists_get_parameter_and_echoes_cseq(rig):
    server, clock, connect, _ = rig
    proto, t = connect()
    code, h, _ = request(proto, t, "OPTIONS rtsp://h/stream1 RTSP/1.0\nCSeq: 7\n")
    assert code == 200 and h["CSeq"] == "7" and "GET_PARAMETER" in h["Public"]
    assert h["Server"] and h["Date"]


def test_describe_gives_sdp_from_the_live_sps(rig):
    server, clock, connect, _ = rig
    proto, t = connect()
    code, h, body = request(proto, t, "DESCRIBE rtsp://h/stream1 RTSP/1.0\nCSeq: 2\n")
    assert code == 200 and h["Content-Type"] == "application/sdp"
    assert h["Content-Base"] == "rtsp://h/stream1/"
    text = body.decode()
    assert "m=video 0 RTP/AVP 96" in text and "a=rtpmap:96 H264/90000" in text
    assert "packetization-mode=1" in text and "profile-level-id=42c01f" in text
    assert "sprop-parameter-sets=Z0LAH9o=,aM48gA==" in text and "a=range:npt=now-" in text
    code, _, _ = request(proto, t, "DESCRIBE rtsp://h/nothing RTSP/1.0\nCSeq: 3\n")
    assert code == 404
    code, _, _ = request(proto, t, "DESCRIBE rtsp://h/recording RTSP/1.0\nCSeq: 4\n")
    assert code == 404


def test_setup_play_sends_the_cached_gop_then_live_units_and_teardown(rig):
    server, clock, connect, pipeline = rig
    proto, t = connect()
    code, h, _ = setup_tcp(proto, t)
    assert code == 200 and h["Session"].endswith(";timeout=60")
    assert "interleaved=0-1" in h["Transport"] and "ssrc=" in h["Transport"]
    sid = h["Session"].split(";")[0]
    code, h, burst = request(proto, t, "PLAY rtsp://h/stream1/ RTSP/1.0\nCSeq: 4\nSession: %s\n"
                             % sid)
    assert code == 200 and "seq=" in h["RTP-Info"] and "rtptime=" in h["RTP-Info"]
    # Right behind the answer, with no reactor turn between: the keyframe (STAP-A first)
    # and the two P-frames after it, at once.
    assert burst[:1] == b"$"
    assert burst[4 + 12] & 0x1F == 24
    assert burst.count(b"$\x00") >= 3
    t.clear()
    pipeline.hubs["stream1"].publish(au(3, False))
    assert t.value()[:2] == b"$\x00"
    code, _, _ = request(proto, t, "TEARDOWN rtsp://h/stream1 RTSP/1.0\nCSeq: 5\nSession: %s\n"
                         % sid)
    assert code == 200 and server.sessions() == []
    t.clear()
    pipeline.hubs["stream1"].publish(au(4, False))
    assert t.value() == b""


def test_state_errors_unknown_session_method_and_track(rig):
    server, clock, connect, _ = rig
    proto, t = connect()
    code, _, _ = request(proto, t, "PLAY rtsp://h/stream1 RTSP/1.0\nCSeq: 2\n")
    assert code == 454
    code, _, _ = request(proto, t, "PLAY rtsp://h/stream1 RTSP/1.0\nCSeq: 3\nSession: nope\n")
    assert code == 454
    code, h, _ = request(proto, t, "BREW rtsp://h/stream1 RTSP/1.0\nCSeq: 4\n")
    assert code == 405 and "DESCRIBE" in h["Allow"] and "DESCRIBE" in h["Public"]
    code, _, _ = setup_tcp(proto, t, "rtsp://h/stream1/trackID=9")
    assert code == 404
    code, _, _ = request(proto, t, "SETUP rtsp://h/stream1/trackID=0 RTSP/1.0\nCSeq: 6\n"
                                   "Transport: RTP/AVP;multicast\n")
    assert code == 461
    code, _, _ = request(proto, t, "SETUP rtsp://h/stream1/trackID=0?tcp RTSP/1.0\nCSeq: 7\n"
                                   "Transport: RTP/AVP;unicast;client_port=5000-5001\n")
    assert code == 461
    code, h, _ = setup_tcp(proto, t)
    sid = h["Session"].split(";")[0]
    code, _, _ = request(proto, t, "SETUP rtsp://h/stream2/trackID=0 RTSP/1.0\nCSeq: 8\n"
                                   "Session: %s\nTransport: RTP/AVP/TCP;interleaved=2-3\n" % sid)
    assert code == 459
    # Keep-alives: GET_PARAMETER and SET_PARAMETER with a body both answer 200.
    code, _, _ = request(proto, t, "GET_PARAMETER rtsp://h/stream1 RTSP/1.0\nCSeq: 9\n"
                                   "Session: %s\n" % sid)
    assert code == 200
    code, _, _ = request(proto, t, "SET_PARAMETER rtsp://h/stream1 RTSP/1.0\nCSeq: 10\n"
                                   "Session: %s\nContent-Length: 6\n\nx: 1\r\n" % sid)
    assert code == 200


def test_garbage_gets_400_and_close_and_others_are_unaffected(rig):
    server, clock, connect, _ = rig
    good, gt = connect()
    bad, bt = connect()
    bad.dataReceived(b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
    assert bt.value().startswith(b"RTSP/1.0 400") and bt.disconnecting
    code, _, _ = request(good, gt, "OPTIONS * RTSP/1.0\nCSeq: 1\n")
    assert code == 200


def test_session_limit_and_idle_sessions_reaped_by_the_clock(rig):
    server, clock, connect, _ = rig
    p1, t1 = connect()
    p2, t2 = connect()
    p3, t3 = connect()
    assert setup_tcp(p1, t1)[0] == 200
    assert setup_tcp(p2, t2)[0] == 200
    code, h, _ = setup_tcp(p3, t3)
    assert code == 503
    sid = setup_tcp(p1, t1)  # same connection, new session: also over the limit
    assert sid[0] == 503
    assert len(server.sessions()) == 2
    ids = {}
    for proto, t in ((p1, t1), (p2, t2)):
        ids[proto] = [s.id for s in server.sessions_by_id.values() if s.connection is proto][0]
        code, _, _ = request(proto, t, "PLAY rtsp://h/stream1 RTSP/1.0\nCSeq: 4\nSession: %s\n"
                             % ids[proto])
        assert code == 200
    # p2 keeps alive with GET_PARAMETER naming its session; p1 only talks (OPTIONS
    # without a session) and is reaped after 60 s.
    for _ in range(7):
        clock.advance(10)
        request(p2, t2, "GET_PARAMETER rtsp://h/stream1 RTSP/1.0\nCSeq: 9\nSession: %s\n"
                % ids[p2])
        request(p1, t1, "OPTIONS rtsp://h/stream1 RTSP/1.0\nCSeq: 9\n")
    assert [s["session"] for s in server.sessions()] == [ids[p2]]
    assert setup_tcp(p3, t3)[0] == 200


def test_auth_required_when_anonymous_is_guest(tmp_path):
    clock = Clock()
    cfg = from_dict({"auth": {"anonymous": "guest", "initial_admin_password": "admin-password"}})
    pipeline, auth = FakePipeline(), AuthService(cfg, str(tmp_path), clock)
    pipeline.hubs["stream1"].publish(au(0, True))
    proto = RTSPFactory(RTSPServer(config=cfg.rtsp, hubs=pipeline.hubs, auth=auth,
                                   clock=clock)).buildProtocol(None)
    t = StringTransport()
    proto.makeConnection(t)
    code, h, _ = request(proto, t, "DESCRIBE rtsp://h/stream1 RTSP/1.0\nCSeq: 2\n")
    assert code == 401 and h["WWW-Authenticate"].startswith("Digest")
    assert t.value().count(b"WWW-Authenticate: ") == 3
    import base64
    basic = base64.b64encode(b"admin:admin-password").decode()
    code, _, _ = request(proto, t, "DESCRIBE rtsp://h/stream1 RTSP/1.0\nCSeq: 3\n"
                                   "Authorization: Basic %s\n" % basic)
    assert code == 200
    token = settled(auth.login("admin", "admin-password"))["token"]
    code, _, _ = request(proto, t, "DESCRIBE rtsp://h/stream1?token=%s RTSP/1.0\nCSeq: 4\n"
                         % token)
    assert code == 200


def test_describe_before_the_first_keyframe_waits_then_503(tmp_path):
    clock = Clock()
    cfg = from_dict({"auth": {"initial_admin_password": "admin-password"}})
    pipeline, auth = FakePipeline(), AuthService(cfg, str(tmp_path), clock)
    proto = RTSPFactory(RTSPServer(config=cfg.rtsp, hubs=pipeline.hubs, auth=auth,
                                   clock=clock)).buildProtocol(None)
    t = StringTransport()
    proto.makeConnection(t)
    proto.dataReceived(b"DESCRIBE rtsp://h/stream1 RTSP/1.0\r\nCSeq: 2\r\n\r\n")
    assert t.value() == b""  # waiting for video
    clock.advance(5)
    assert t.value().startswith(b"RTSP/1.0 503") and b"Retry-After: 1" in t.value()
    t.clear()
    proto.dataReceived(b"DESCRIBE rtsp://h/stream1 RTSP/1.0\r\nCSeq: 3\r\n\r\n")
    pipeline.hubs["stream1"].publish(au(0, True))
    assert t.value().startswith(b"RTSP/1.0 200") and b"sprop-parameter-sets" in t.value()
