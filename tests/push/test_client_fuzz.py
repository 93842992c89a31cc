"""Fuzzing the push client's response parsing: whatever an upstream sends, the attempt ends
with PushFailed or AuthFailed (or goes on), never another exception."""

from hypothesis import given
from hypothesis import strategies as st

from rotordream.push import client as core
from tests.support.fuzz import chunked, fuzz_settings, mutated

URL = "rtsp://cam:pw@127.0.0.1:8554/live"
ANSWERS = [
    b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n",
    b"RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: Digest realm=\"r\", "
    b"nonce=\"n\", qop=\"auth\", algorithm=MD5\r\n\r\n",
    b"RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: Basic realm=\"r\"\r\n\r\n",
    b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nSession: abc;timeout=30\r\n"
    b"Transport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record\r\n\r\n",
    b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nContent-Length: 4\r\n\r\nabcd",
    b"$\x01\x00\x08\x81\xc9\x00\x01abcd",
]


@given(st.lists(mutated(st.sampled_from(ANSWERS)), min_size=1, max_size=6), st.data(),
       st.sampled_from(["tcp", "udp"]))
@fuzz_settings(300)
def test_any_answer_ends_in_a_push_error_or_goes_on(answers, data, transport):
    c = core.PushClient(URL, b"v=0\r\n", transport, (40000, 40001))
    c.start()
    try:
        for piece in data.draw(chunked(b"".join(answers))):
            for event in c.receive_data(piece):
                assert isinstance(event, (core.Send, core.Recording, core.Rtcp))
                if isinstance(event, core.Send):
                    assert b"\r\n\r\n" in event.data and b"pw" not in event.data.split(
                        b"\r\n")[0]
    except core.PushError:
        pass
