"""ONVIF replay in the sans-IO RTSP core and its wire pieces, with no reactor: Require and
Unsupported, absolute clock ranges, Rate-Control, reverse playback refused, and the RTP
header extension's bytes."""

import struct

import pytest

from rotordream.auth.roles import Principal
from rotordream.config import from_dict
from rotordream.recording.playback import EXTENSION_BYTES, replay_extension, with_extension
from rotordream.rtp.clock import ntp_timestamp
from rotordream.rtp.packet import RtpPacket
from rotordream.rtsp.core import RTSPCore, RtspError
from rotordream.rtsp.effects import Answer, Authenticate, PrepareRecording, Replay
from rotordream.rtsp.message import (RequestParser, format_clock, parse_clock,
                                     parse_range_spec)

START = 1_800_000_000.25   # the recording's first frame
DURATION = 10.0


class Player:
    """What the core reads of a recording player."""

    id = "rec1"
    ssrc = 1
    start, duration = START, DURATION


class Playback:
    def player(self, rid, mtu):
        if rid not in (None, "rec1"):
            raise KeyError(rid)
        return Player()


class Conn:
    client_host = server_host = "127.0.0.1"
    connected = True
    pinned = token = None

    def __init__(self):
        self.sessions = {}


class Tcp:
    transport_name = "tcp"


def request(text):
    return RequestParser().feed(text.replace("\n", "\r\n").encode() + b"\r\n")[0]


@pytest.fixture
def core():
    cfg = from_dict({"rtsp": {"max_sessions": 10}})
    return RTSPCore(cfg.rtsp, {}, None, type("C", (), {"seconds": lambda self: 0.0})(),
                    Playback())


def step(core, conn, text):
    out = core.receive(conn, request(text))
    if isinstance(out, Authenticate):
        out = out.then(Principal("viewer1", "viewer"))
    return out


def setup(core, conn, require="onvif-replay"):
    answer = step(core, conn, "SETUP rtsp://h/recording/rec1/trackID=0 RTSP/1.0\nCSeq: 1\n"
                              "Transport: RTP/AVP/TCP;interleaved=0-1\n"
                              + ("Require: %s\n" % require if require else ""))
    assert isinstance(answer, Answer)
    (use,) = answer.effects
    return use.session


def test_clock_ranges_parse_and_print():
    assert parse_clock("20270115T080000.250Z") == 1800000000.25
    assert format_clock(1800000000.25) == "20270115T080000.250Z"
    assert parse_range_spec("clock=20270115T080000.250Z-") == ("clock", START, None)
    assert parse_range_spec("clock=20270115T080000Z-20270115T080010Z") == \
        ("clock", 1800000000.0, 1800000010.0)
    assert parse_range_spec("npt=now-") == ("npt", None, None)
    assert parse_range_spec(None) == (None, None, None)
    for bad in ("clock=-", "clock=2027-01-15T08:00:00Z-", "smpte=0:10:00-", "npt=-5-",
                "clock=20271315T080000Z-", "npt=5"):
        with pytest.raises(ValueError):
            parse_range_spec(bad)


def test_the_extension_bytes_and_a_packet_that_carries_them():
    ntp = ntp_timestamp(START)
    ext = replay_extension(ntp, clean=True, end=False, cseq=0x1234)
    assert len(ext) == EXTENSION_BYTES == 16
    assert struct.unpack("!HHQBBH", ext) == (0xABAC, 3, ntp, 0x80, 0x34, 0)
    assert replay_extension(ntp, end=True)[12] == 0x40
    plain = bytes(RtpPacket(96, 7, 90000, 0xABCD, b"\x65payload", True))
    packet = with_extension(plain, ext)
    assert packet[0] & 0x10 and packet[12:28] == ext
    again = RtpPacket.parse(packet)
    assert (again.sequence, again.timestamp, again.payload) == (7, 90000, b"\x65payload")


def test_require_is_refused_with_unsupported_except_onvif_replay_of_a_recording(core):
    conn = Conn()
    with pytest.raises(RtspError) as e:
        core.receive(conn, request("DESCRIBE rtsp://h/recording/rec1 RTSP/1.0\nCSeq: 1\n"
                                   "Require: onvif-replay, funky\n"))
    assert e.value.status == 551 and e.value.headers == [("Unsupported", "funky")]
    with pytest.raises(RtspError) as e:
        core.receive(conn, request("DESCRIBE rtsp://h/stream1 RTSP/1.0\nCSeq: 1\n"
                                   "Require: onvif-replay\n"))
    assert e.value.status == 551 and e.value.headers == [("Unsupported", "onvif-replay")]
    assert isinstance(core.receive(conn, request(
        "OPTIONS * RTSP/1.0\nCSeq: 2\nRequire: onvif-replay\n")), Answer)
    assert setup(core, conn).replay is True
    assert setup(core, Conn(), require=None).replay is False


def test_play_from_a_clock_time_seeks_and_answers_in_clock_time(core):
    conn = Conn()
    session = setup(core, conn)
    session.target = Tcp()
    prepare = step(core, conn, "PLAY rtsp://h/recording/rec1 RTSP/1.0\nCSeq: 300\n"
                               "Session: %s\nRequire: onvif-replay\nRate-Control: no\n"
                               "Range: clock=%s-\n" % (session.id, format_clock(START + 4.5)))
    assert isinstance(prepare, PrepareRecording)
    assert prepare.npt == pytest.approx(4.5)
    assert prepare.replay == Replay(300 & 0xFF, paced=False)
    answer = prepare.then((4.0, 11, 22))   # the keyframe before it is at 4 s
    headers = dict(answer.headers)
    assert headers["Range"] == "clock=%s-%s" % (format_clock(START + 4.0),
                                                format_clock(START + DURATION))
    assert headers["Rate-Control"] == "no"
    # A PLAY while playing seeks at once (Immediate); before the recording: its start.
    again = step(core, conn, "PLAY rtsp://h/recording/rec1 RTSP/1.0\nCSeq: 301\n"
                             "Session: %s\nImmediate: yes\nRange: clock=%s-\n"
                             % (session.id, format_clock(START - 30)))
    assert again.npt == 0.0 and again.replay == Replay(301 & 0xFF, paced=True)
    assert again.effects  # the old sending stops first


def test_rate_control_off_needs_tcp_and_plain_play_has_no_extension(core):
    conn = Conn()
    session = setup(core, conn)   # no TCP target: a UDP session
    prepare = step(core, conn, "PLAY rtsp://h/recording/rec1 RTSP/1.0\nCSeq: 5\n"
                               "Session: %s\nRate-Control: no\nRange: npt=1-\n" % session.id)
    assert prepare.replay == Replay(5, paced=True) and prepare.npt == 1.0
    plain = setup(core, Conn(), require=None)
    prepare = core.receive(plain.connection, request(
        "PLAY rtsp://h/recording/rec1 RTSP/1.0\nCSeq: 6\nSession: %s\nRange: npt=1-\n"
        % plain.id))
    assert prepare.replay is None


@pytest.mark.parametrize("headers, status", [
    ("Range: clock=%s-\n" % format_clock(START + DURATION + 1), 457),
    ("Range: clock=yesterday-\n", 457),
    ("Scale: -1.0\n", 551),
    ("Scale: fast\n", 456),
])
def test_what_cannot_be_played_is_refused(core, headers, status):
    conn = Conn()
    session = setup(core, conn)
    with pytest.raises(RtspError) as e:
        core.receive(conn, request("PLAY rtsp://h/recording/rec1 RTSP/1.0\nCSeq: 7\n"
                                   "Session: %s\nRequire: onvif-replay\n%s"
                                   % (session.id, headers)))
    assert e.value.status == status
