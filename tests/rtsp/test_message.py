"""RTSP message parsing: byte by byte and all at once, limits, interleaved frames."""

import struct

import pytest

from rotordream.rtsp.message import (Interleaved, ParseError, Request, RequestParser, Response,
                                     client_ports, interleaved_channels, parse_range,
                                     parse_transport, split_url)
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
    ("OPTIONS * RTSP/1.0\r\nCSeq: \u0661\u0662\r\n\r\n".encode(), 400),  # Arabic-Indic 12
    ("OPTIONS * RTSP/1.0\r\nCSeq: \uff11\r\n\r\n".encode(), 400),        # fullwidth 1
    ("OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: \u00b2\r\n\r\n".encode(), 400),
    (b"OPTIONS * RTSP/1.0\r\nCSeq: 12345678901\r\n\r\n", 400),
    (b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX: a\nInjected: 1\r\n\r\n", 400),
    (b"DESCRIBE rtsp://h/s\nInjected:1 RTSP/1.0\r\nCSeq: 1\r\n\r\n", 400),
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


def test_a_bad_cseq_is_never_echoed():
    with pytest.raises(ParseError) as e:
        RequestParser().feed(b"OPTIONS * RTSP/2.0\r\nCSeq: 1 x\r\n\r\n")
    assert e.value.status == 505 and e.value.cseq is None


def test_next_event_hands_out_one_event_at_a_time():
    parser = RequestParser()
    parser.receive_data(DESCRIBE + FRAME + DESCRIBE[:10])
    assert isinstance(parser.next_event(), Request)
    assert parser.next_event() == Interleaved(1, FRAME[4:])
    assert parser.next_event() is None and parser.buffered == 10


@pytest.mark.parametrize("value, pair", [("0-1", (0, 1)), ("254-255", (254, 255)), ("6", (6, 7))])
def test_interleaved_channels(value, pair):
    assert interleaved_channels(value) == pair


@pytest.mark.parametrize("value", ["300-301", "255", "255-256", "1-1", "-1-0", "a-b", "",
                                   "\u0661-\u0662", "0-1-2", " 0-1"])
def test_interleaved_channels_out_of_range(value):
    with pytest.raises(ValueError):
        interleaved_channels(value)


@pytest.mark.parametrize("value, pair", [("5000-5001", (5000, 5001)), ("5000", (5000, 5001)),
                                         ("65534-65535", (65534, 65535))])
def test_client_ports(value, pair):
    assert client_ports(value) == pair


@pytest.mark.parametrize("value", ["70000-70001", "70000", "0-1", "5001-5002", "5001",
                                   "5000-5003", "65535", "x", "+5000"])
def test_client_ports_out_of_range(value):
    with pytest.raises(ValueError):
        client_ports(value)


def test_split_url():
    assert split_url("*") == ([], {})
    assert split_url("rtsp://h:554/stream1/trackID=0?tcp&token=a%20b") == \
        (["stream1", "trackID=0"], {"tcp": [""], "token": ["a b"]})
    assert split_url("rtsp://[::1]:554/stream2")[0] == ["stream2"]
    for bad in ("rtsp://[::1/stream1", "rtsp://h:70000/s", "rtsp://h:x/s",
                "rtsp://h/s?" + "&".join("a%d=1" % i for i in range(100))):
        with pytest.raises(ValueError):
            split_url(bad)


def test_a_reason_phrase_stays_on_its_line():
    raw = bytes(Response(503, [("CSeq", "1")], reason="Service Unavailable:\r\nX: all in use"))
    assert raw.startswith(b"RTSP/1.0 503 Service Unavailable: X: all in use\r\nCSeq: 1\r\n")
