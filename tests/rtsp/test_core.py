"""The sans-IO RTSP core, its state table and transport negotiation, with no reactor."""

import pytest

from rotordream.rtsp import session as states
from rotordream.rtsp.effects import Answer, Authenticate, StartSending, StopSending, UseTransport
from rotordream.rtsp.message import RequestParser
from rotordream.rtsp.transport import TCP, UDP, Chosen, Unsupported, negotiate, reply


def test_negotiate_takes_the_first_servable_offer():
    both = "RTP/AVP/TCP;unicast;interleaved=2-3, RTP/AVP;unicast;client_port=5000-5001"
    assert negotiate(both) == Chosen(TCP, (2, 3))
    assert negotiate(both, pinned=UDP) == Chosen(UDP, (5000, 5001))
    assert negotiate(both, used_channels=[2]) == Chosen(UDP, (5000, 5001))
    assert negotiate("RTP/AVP/TCP;unicast") == Chosen(TCP, (0, 1))


@pytest.mark.parametrize("header, problem", [
    ("", "Transport header missing"),
    ("RTP/AVP;multicast", None),
    ("RTP/AVP;unicast;client_port=5000-5001", None),  # without a UDP port pair
    ("RTP/AVP/TCP;interleaved=0-1", "interleaved channels already in use"),
])
def test_negotiate_refuses(header, problem):
    with pytest.raises(Unsupported) as e:
        negotiate(header, used_channels=[1], udp=False)
    assert e.value.problem == problem


def test_transport_reply():
    assert reply(Chosen(TCP, (0, 1)), 0xAB) == "RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=000000AB"
    assert reply(Chosen(UDP, (5000, 5001)), 1, 50000) == \
        "RTP/AVP;unicast;client_port=5000-5001;server_port=50000-50001;ssrc=00000001"


def test_every_transition_is_in_the_table():
    t = states.transition
    assert t(states.READY, "PLAY").effects == (states.START,)
    assert t(states.PLAYING, "PAUSE") == states.Transition(states.READY, (states.STOP,))
    assert states.BYE in t(states.PLAYING, "TEARDOWN").effects
    assert states.BYE not in t(states.READY, "TEARDOWN").effects
    assert t(states.INIT, "PLAY") is None and t(states.PLAYING, "OPTIONS").effects == ()
    assert states.transition(states.PLAYING, "SETUP") is None  # refused 455 under a stream
    assert states.TRANSITIONS[(states.READY, "PLAY")] == states.PLAYING


class Conn:
    """What the core reads of a connection."""

    client_host = server_host = "127.0.0.1"
    connected = True
    pinned = token = None

    def __init__(self):
        self.sessions = {}


def request(text):
    return RequestParser().feed(text.replace("\n", "\r\n").encode() + b"\r\n")[0]


def test_a_session_from_setup_to_teardown_as_steps_and_effects(tmp_path):
    from tests.rtsp.test_session_rules import Rig
    core = Rig(tmp_path).server.core
    conn = Conn()
    step = core.receive(conn, request("SETUP rtsp://h/stream1/trackID=0 RTSP/1.0\nCSeq: 1\n"
                                      "Transport: RTP/AVP/TCP;interleaved=0-1\n"))
    assert isinstance(step, Authenticate) and step.client == "127.0.0.1"
    answer = step.then(Viewer())
    assert isinstance(answer, Answer)
    (use,) = answer.effects
    assert isinstance(use, UseTransport) and use.chosen == Chosen(TCP, (0, 1))
    sid = use.session.id
    assert use.session.state == states.READY and conn.sessions == {sid: use.session}
    play = core.receive(conn, request("PLAY rtsp://h/stream1 RTSP/1.0\nCSeq: 2\n"
                                      "Session: %s\n" % sid))
    assert play.effects == (StartSending(use.session),) and core.sending(use.session)
    pause = core.receive(conn, request("PAUSE rtsp://h/stream1 RTSP/1.0\nCSeq: 3\n"
                                       "Session: %s\n" % sid))
    assert pause.effects == (StopSending(use.session),) and not core.sending(use.session)
    assert [type(e).__name__ for e in core.end(use.session)] == ["StopSending", "CloseSource"]
    assert core.sessions_by_id == {} and conn.sessions == {} and core.end(use.session) == ()


class Viewer:
    """An anonymous principal allowed to watch."""

    authenticated = False
    name = None

    def can(self, permission):
        return True
