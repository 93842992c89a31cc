"""Requests as FFmpeg and GStreamer really send them: parsed, and serialized back to the byte."""

import os

import pytest

from rotordream.rtsp.message import Interleaved, Request, RequestParser, parse_transport

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "rtsp")
PEERS = ("ffprobe", "ffmpeg", "gstreamer")


def captured(peer):
    with open(os.path.join(FIXTURES, peer + ".bin"), "rb") as f:
        return f.read()


def events(data, one_byte_at_a_time=False):
    parser = RequestParser()
    if not one_byte_at_a_time:
        return parser.feed(data)
    out = []
    for i in range(len(data)):
        out.extend(parser.feed(data[i:i + 1]))
    assert parser.buffered == 0
    return out


def serialized(event):
    if isinstance(event, Request):
        return bytes(event)
    return b"$" + bytes([event.channel]) + len(event.data).to_bytes(2, "big") + event.data


@pytest.mark.parametrize("peer", PEERS)
def test_round_trip(peer):
    data = captured(peer)
    parsed = events(data)
    assert b"".join(serialized(e) for e in parsed) == data
    assert events(data, one_byte_at_a_time=True) == parsed


@pytest.mark.parametrize("peer", PEERS)
def test_what_each_peer_asks(peer):
    requests = [e for e in events(captured(peer)) if isinstance(e, Request)]
    methods = [r.method for r in requests]
    assert methods[:4] == ["OPTIONS", "DESCRIBE", "SETUP", "PLAY"]
    assert [int(r.cseq) for r in requests] == list(range(1, len(requests) + 1))
    setup = requests[2]
    assert setup.uri.endswith("/stream1/trackID=0")
    offer = parse_transport(setup.headers.get("Transport"))[0]
    assert offer["protocol"] == "RTP/AVP/TCP" and offer["interleaved"] == "0-1"
    session = requests[3].headers.get("Session")
    assert session and all(r.headers.get("Session") == session for r in requests[3:])
    if peer == "ffmpeg":
        assert methods[-1] == "TEARDOWN"
        assert requests[3].headers.get("Range") == "npt=0.000-"
    if peer == "gstreamer":
        assert requests[3].headers.get("Range") == "npt=now-"
        # GStreamer repeats User-Agent (RealMedia compatibility): both are kept, in order.
        agents = [v for k, v in requests[0].headers.items() if k == "User-Agent"]
        assert agents[0].startswith("GStreamer/") and len(agents) == 2
        frames = [e for e in events(captured(peer)) if isinstance(e, Interleaved)]
        assert frames and all(f.channel == 1 for f in frames)
