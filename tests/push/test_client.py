"""The push client's sans-IO core: the state table, authentication, parsing, backoff."""

import hashlib

import pytest

from rotordream.auth.digest import expected_response, parse_params
from rotordream.push import client as core
from rotordream.rtsp.message import RequestParser

URL = "rtsp://cam:s3cret@127.0.0.1:8554/live"
SDP = b"v=0\r\nm=video 0 RTP/AVP 96\r\n"


def reply(status, cseq, *headers, reason="OK", body=b""):
    lines = ["RTSP/1.0 %d %s" % (status, reason), "CSeq: %d" % cseq] + list(headers)
    if body:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def parse_request(data):
    (request,) = RequestParser().feed(data)
    return request


def feed(client, data, bytewise):
    if not bytewise:
        return client.receive_data(data)
    events = []
    for i in range(len(data)):
        events += client.receive_data(data[i:i + 1])
    return events


@pytest.mark.parametrize("bytewise", [False, True])
def test_announce_setup_record_over_tcp(bytewise):
    c = core.PushClient(URL, SDP)
    first = c.start()
    announce = parse_request(first)
    assert (announce.method, announce.uri) == ("ANNOUNCE", "rtsp://127.0.0.1:8554/live")
    assert announce.body == SDP and announce.headers.get("Content-Type") == "application/sdp"
    assert b"s3cret" not in first
    (send,) = feed(c, reply(200, 1), bytewise)
    assert c.state == core.ANNOUNCED
    setup = parse_request(send.data)
    assert setup.method == "SETUP" and setup.uri == "rtsp://127.0.0.1:8554/live/trackID=0"
    assert setup.headers.get("Transport") == "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record"
    (send,) = feed(c, reply(200, 2, "Session: abc;timeout=30",
                            "Transport: RTP/AVP/TCP;unicast;interleaved=2-3;mode=record"),
                   bytewise)
    record = parse_request(send.data)
    assert record.method == "RECORD" and record.headers.get("Session") == "abc"
    (rec,) = feed(c, reply(200, 3, "Session: abc"), bytewise)
    assert rec == core.Recording("abc", (2, 3), None, 30)
    assert c.state == core.RECORDING
    keep = parse_request(c.keepalive())
    assert keep.method == "OPTIONS" and keep.headers.get("Session") == "abc"
    assert c.keepalive() is None   # one at a time
    assert feed(c, reply(200, 4) + b"$\x01\x00\x04abcd", bytewise) == [core.Rtcp(1, b"abcd")]
    assert parse_request(c.teardown()).method == "TEARDOWN"


def test_udp_setup_offers_client_ports_and_takes_server_ports():
    c = core.PushClient(URL, SDP, "udp", (40000, 40001))
    c.start()
    (send,) = c.receive_data(reply(200, 1))
    assert "client_port=40000-40001;mode=record" in parse_request(send.data).headers.get(
        "Transport")
    (send,) = c.receive_data(reply(200, 2, "Session: 1",
                                   "Transport: RTP/AVP;unicast;client_port=40000-40001;"
                                   "server_port=5000-5001"))
    (rec,) = c.receive_data(reply(200, 3))
    assert rec.server_ports == (5000, 5001) and rec.channels is None


def test_digest_challenge_is_answered_once():
    c = core.PushClient(URL, SDP)
    c.start()
    challenge = 'WWW-Authenticate: Digest realm="gst", nonce="n0nce", qop="auth"'
    (send,) = c.receive_data(reply(401, 1, challenge, reason="Unauthorized"))
    again = parse_request(send.data)
    assert again.method == "ANNOUNCE" and again.body == SDP
    scheme, _, rest = again.headers.get("Authorization").partition(" ")
    params = parse_params(rest)
    assert scheme == "Digest" and params["username"] == "cam" and params["qop"] == "auth"
    ha1 = hashlib.md5(b"cam:gst:s3cret").hexdigest()
    assert params["response"] == expected_response(ha1, "ANNOUNCE", params, "MD5")
    (send,) = c.receive_data(reply(200, 2))
    # Later requests carry credentials for the same challenge (nonce count goes up).
    params = parse_params(parse_request(send.data).headers.get("Authorization")[7:])
    assert params["nc"] == "00000002"
    # A new challenge is answered once per request; the same refusal again is final.
    (send,) = c.receive_data(reply(401, 3, challenge, reason="Unauthorized"))
    assert parse_request(send.data).method == "SETUP"
    with pytest.raises(core.AuthFailed, match="wrong user name or password"):
        c.receive_data(reply(401, 4, challenge, reason="Unauthorized"))


def test_rfc2069_digest_and_basic():
    c = core.PushClient(URL, SDP)
    c.start()
    (send,) = c.receive_data(reply(401, 1, 'WWW-Authenticate: Digest realm="r", nonce="x"'))
    params = parse_params(parse_request(send.data).headers.get("Authorization")[7:])
    ha1 = hashlib.md5(b"cam:r:s3cret").hexdigest()
    assert "qop" not in params
    assert params["response"] == expected_response(ha1, "ANNOUNCE", params, "MD5")
    c = core.PushClient(URL, SDP)
    c.start()
    (send,) = c.receive_data(reply(401, 1, 'WWW-Authenticate: Basic realm="r"'))
    assert parse_request(send.data).headers.get("Authorization") == "Basic Y2FtOnMzY3JldA=="


def test_credentials_asked_but_none_in_the_url():
    c = core.PushClient("rtsp://127.0.0.1/live", SDP)
    c.start()
    with pytest.raises(core.AuthFailed, match="has none"):
        c.receive_data(reply(401, 1, 'WWW-Authenticate: Basic realm="r"'))


@pytest.mark.parametrize("answer, error", [
    (reply(404, 1, reason="Not Found"), "ANNOUNCE refused: 404 Not Found"),
    (b"HTTP/1.1 200 OK\r\n\r\n", "bad response"),
    (reply(200, 1, "Content-Length: x"), "bad response"),
])
def test_refusals_end_the_attempt(answer, error):
    c = core.PushClient(URL, SDP)
    c.start()
    with pytest.raises(core.PushFailed, match=error):
        c.receive_data(answer)


def test_setup_answer_without_session_fails():
    c = core.PushClient(URL, SDP)
    c.start()
    c.receive_data(reply(200, 1))
    with pytest.raises(core.PushFailed, match="Session"):
        c.receive_data(reply(200, 2, "Transport: RTP/AVP/TCP;interleaved=0-1"))


def test_url_parsing_keeps_passwords_out_of_what_is_shown():
    url = core.parse_url("rtsps://u%40x:p%3Aw@example.test/a/b?x=1")
    assert (url.user, url.password, url.port) == ("u@x", "p:w", 322)
    assert url.request == "rtsps://example.test/a/b?x=1"
    assert "p:w" not in url.public and "p%3Aw" not in url.public
    for bad in ("http://x/y", "rtsp:///x", "rtsp://x:99999/", "rtsp://x/\r\nA: b"):
        with pytest.raises(ValueError):
            core.parse_url(bad)


def test_backoff_doubles_to_the_cap_and_resets_after_a_lasting_session():
    b = core.Backoff(1, 30, reset_after=10)
    assert [b.failed(0) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    b.connected(100)
    assert b.failed(105) == 30        # a short session does not reset
    b.connected(200)
    assert b.failed(215) == 1         # a lasting one does
    assert b.failed(216, at_least=30) == 30
