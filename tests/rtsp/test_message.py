"""RTSP message parsing: byte by byte and all at once, limits, interleaved frames."""

import struct

import pytest

from rotordream.rtsp.message import (Interleaved, ParseError, Request, RequestParser, Response,
                                     parse_range, parse_transport)
from rotordream.rtsp.session import INIT, PLAYING, READY, next_state

DESCRIBE = (b"DESCRIBE rtsp://127.0.0.1:8554/stream1 RTSP/1.0\r\nCSeq: 2\r\n"
            b"Accept: application/sdp\r\nUser-Agent: Lavf61\r\n\r\n")
SETPARAM = (b"SET_PARAMETER rtsp://h/stream1 RTSP/1.0\r\nCSeq: 3\r\nSession: abc\r\n"
            b"Content-Type: text/parameters\r\nContent-Length: 9\r\n\r\nping: 1\r\n")
FRAME = b"$\x01" + struct.pack("!H", 8) + b"\x81\xc9\x00\x01\x00\x00\x00\x2a"


def feed_all(data, one_at_a_time):
    parser = RequestParser()
    events = []
    if one_at_a_time:
        for i in range(len(data)):
            events += parser.feed(data[i:i + 1])
    else:
        events = parser.feed(data)
    return events


@pytest.mark.parametrize("one_at_a_time", [False, True])
def test_pipelined_requests_bodies_and_interleaved_frames(one_at_a_time):
    events = feed_all(DESCRIBE + FRAME + SETPARAM + b"\r\n" + DESCRIBE, one_at_a_time)
    assert [type(e) for e in events] == [Request, Interleaved, Request, Request]
    assert events[0].method == "DESCRIBE" and events[0].cseq == "2"
    assert events[0].headers.get("user-agent") == "Lavf61"
    assert events[1] == Interleaved(1, FRAME[4:])
    assert events[2].body == b"ping: 1\r\n" and events[2].headers.get("session") == "abc"


@pytest.mark.parametrize("data, status", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"\x00\xff\x10binary\r\n\r\n", 400),
    (b"OPTIONS * RTSP/1.0\r\n\r\n", 400),  # no CSeq
    (b"OPTIONS * RTSP/2.0\r\nCSeq: 1\r\n\r\n", 505),
    (b"OPTIONS * HTTP/1.1\r\nCSeq: 1\r\n\r\n", 400),
    (b"ANNOUNCE * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 99999999\r\n\r\n", 413),
    (b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX: " + b"a" * (1024 * 1024), 400),
])
def test_bad_requests_raise_with_a_status(data, status):
    with pytest.raises(ParseError) as e:
        RequestParser().feed(data)
    assert e.value.status == status


def test_response_and_helpers():
    raw = bytes(Response(200, [("CSeq", "1")], b"v=0\r\n"))
    assert raw == b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 5\r\n\r\nv=0\r\n"
    offers = parse_transport("RTP/AVP/TCP;unicast;interleaved=0-1, RTP/AVP;unicast;"
                             "client_port=5000-5001")
    assert offers[0] == {"protocol": "RTP/AVP/TCP", "unicast": True, "interleaved": "0-1"}
    assert offers[1]["client_port"] == "5000-5001"
    assert parse_range("npt=5.5-") == 5.5 and parse_range("npt=now-") is None


def test_session_state_table():
    assert next_state(INIT, "SETUP") == READY
    assert next_state(INIT, "PLAY") is None
    assert next_state(READY, "PLAY") == PLAYING
    assert next_state(PLAYING, "PAUSE") == READY
    assert next_state(PLAYING, "GET_PARAMETER") == PLAYING
