"""A push target's adapter on in-memory transports with a Clock: the conversation, RTP from
the cached keyframe, RTCP sender reports, keep-alives, retry with backoff, stop."""

from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor, MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from rotordream.media.hub import AccessUnit, StreamHub
from rotordream.push import service as push
from rotordream.rtp.sender import StreamFanout
from rotordream.rtsp.message import RequestParser

SPS, PPS = b"\x67\x42\xc0\x1f\xda", b"\x68\xce\x3c\x80"


def au(seq, key):
    nals = (SPS, PPS, b"\x65" + b"k" * 3000) if key else (b"\x41" + b"p" * 500,)
    return AccessUnit("stream1", seq, nals, key, seq * 3000, 1000.0 + seq / 30, 640, 360, 30,
                      SPS, PPS)


def reply(cseq, *headers):
    return ("\r\n".join(["RTSP/1.0 200 OK", "CSeq: %d" % cseq] + list(headers))
            + "\r\n\r\n").encode()


def requests_in(data):
    """The RTSP requests in bytes written by the client (interleaved frames left out)."""
    return [e for e in RequestParser().feed(data) if hasattr(e, "method")]


def frames_in(data):
    return [e for e in RequestParser().feed(data) if hasattr(e, "channel")]


def make_target():
    clock, reactor = Clock(), MemoryReactor()
    hub = StreamHub("stream1")
    for i in range(3):
        hub.publish(au(i, i == 0))
    fanouts = {"stream1": StreamFanout("stream1", hub, 1400)}
    spec = push.PushSpec("rtsp://cam:pw@127.0.0.1:8554/live")
    target = push.PushTarget("0", spec, fanouts, clock, reactor)
    return target, clock, reactor, hub, fanouts["stream1"]


def connect(target, reactor):
    """Complete the connection the target asked the reactor for; its (protocol, transport)."""
    host, port, factory = reactor.tcpClients[-1][:3]
    assert (host, port) == ("127.0.0.1", 8554)
    proto = factory.buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)
    return proto, transport


def record(target, reactor):
    proto, transport = connect(target, reactor)
    (announce,) = requests_in(transport.value())
    assert announce.method == "ANNOUNCE" and b"sprop-parameter-sets" in announce.body
    transport.clear()
    proto.dataReceived(reply(1))
    proto.dataReceived(reply(2, "Session: s1;timeout=20",
                             "Transport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record"))
    transport.clear()
    proto.dataReceived(reply(3, "Session: s1"))
    return proto, transport


def test_recording_sends_the_gop_then_reports_and_keepalives():
    target, clock, reactor, hub, fanout = make_target()
    target.start()
    proto, transport = record(target, reactor)
    assert target.state == "recording"
    frames = frames_in(transport.value())
    # The cached GOP from its keyframe, then an early sender report (RTCP PT 200).
    assert frames[0].channel == 0 and frames[-1].channel == 1 and frames[-1].data[1] == 200
    assert target.bytes > 3000 and len(fanout.targets) == 1
    transport.clear()
    hub.publish(au(3, False))
    assert [f.channel for f in frames_in(transport.value())] == [0]
    transport.clear()
    clock.advance(5)
    assert [f.data[1] for f in frames_in(transport.value()) if f.channel == 1] == [200]
    clock.advance(5)   # half the session timeout: an OPTIONS with the session
    (keep,) = requests_in(transport.value())
    assert keep.method == "OPTIONS" and keep.headers.get("Session") == "s1"
    assert target.status()["url"] == "rtsp://cam@127.0.0.1:8554/live"


def test_a_lost_connection_is_retried_with_backoff_from_a_keyframe():
    target, clock, reactor, hub, fanout = make_target()
    target.start()
    proto, transport = record(target, reactor)
    proto.connectionLost(Failure(ConnectionError("gone")))
    status = target.status()
    assert status["state"] == "retrying" and status["reconnects"] == 1
    assert "gone" in status["last_error"] and fanout.targets == []
    assert len(reactor.tcpClients) == 1
    clock.advance(0.9)
    assert len(reactor.tcpClients) == 1
    clock.advance(0.1)
    assert len(reactor.tcpClients) == 2    # 1 s later
    # This attempt is refused: the next waits 2 s.
    proto2, transport2 = connect(target, reactor)
    proto2.dataReceived(b"RTSP/1.0 404 Not Found\r\nCSeq: 1\r\n\r\n")
    assert target.status()["last_error"] == "ANNOUNCE refused: 404 Not Found"
    clock.advance(1.9)
    assert len(reactor.tcpClients) == 2
    clock.advance(0.1)
    assert len(reactor.tcpClients) == 3


def test_no_answer_in_time_fails_the_attempt_and_stop_tears_down():
    target, clock, reactor, hub, fanout = make_target()
    target.start()
    proto, transport = connect(target, reactor)
    clock.advance(push.ANSWER_TIMEOUT)
    assert "no answer" in target.status()["last_error"] and transport.disconnecting
    clock.advance(1)
    proto, transport = record(target, reactor)
    transport.clear()
    target.stop()
    (teardown,) = requests_in(transport.value())
    assert teardown.method == "TEARDOWN" and transport.disconnecting
    assert fanout.targets == [] and target.status()["state"] == "stopped"
    clock.advance(60)
    assert len(reactor.tcpClients) == 2    # nothing more after a stop


def test_reload_replaces_changed_config_targets_and_keeps_the_api_ones():
    reactor = MemoryReactorClock()
    hub = StreamHub("stream1")
    fanouts = {"stream1": StreamFanout("stream1", hub, 1400),
               "stream2": StreamFanout("stream2", StreamHub("stream2"), 1400)}
    a = {"url": "rtsp://127.0.0.1:1/a"}
    b = {"url": "rtsp://127.0.0.1:1/b", "stream": "stream2"}
    svc = push.PushService(reactor, fanouts, [a, b])
    svc.startService()
    api = svc.add(push.PushSpec("rtsp://127.0.0.1:1/c", enabled=False))
    assert [t.id for t in svc.targets] == ["0", "1", "2"]
    assert api.status()["state"] == "disabled"
    svc.reconfigure([a, dict(b, transport="udp")])
    assert [(t.id, t.origin) for t in svc.targets] == [("0", "config"), ("2", "api"),
                                                       ("3", "config")]
    assert svc.remove("2") and not svc.remove("2")
    svc.stopService()
    assert all(t.state in ("stopped", "disabled") for t in svc.targets)
