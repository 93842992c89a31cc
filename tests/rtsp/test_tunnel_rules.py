"""RTSP-over-HTTP tunnel rules on in-memory transports with a Clock: expiry, caps, waiting
POST halves, backpressure on the POST half, and the site's own channel kept behind it."""

import base64

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.web import http, resource, server

from rotordream.rtsp.http_tunnel import TunnelChannel, install
from tests.rtsp.test_session_rules import LaterAuth, Rig

GET = (b"GET /stream1 HTTP/1.0\r\nx-sessioncookie: %s\r\n"
       b"Accept: application/x-rtsp-tunnelled\r\n\r\n")
POST = (b"POST /stream1 HTTP/1.0\r\nx-sessioncookie: %s\r\n"
        b"Content-Type: application/x-rtsp-tunnelled\r\nContent-Length: 32767\r\n\r\n")


class TunnelRig:
    """A Site with tunnels to a Rig's RTSP server; halves from any address."""

    def __init__(self, tmp_path, timeout=10, per_address=2):
        self.rig = Rig(tmp_path, {"tunnel_timeout": timeout,
                                  "max_tunnels_per_address": per_address})
        self.clock = self.rig.clock
        self.site = install(server.Site(resource.Resource(), reactor=self.clock),
                            self.rig.server)

    def half(self, head, host="127.0.0.1"):
        channel = self.site.buildProtocol(IPv4Address("TCP", host, 40000))
        t = StringTransport(peerAddress=IPv4Address("TCP", host, 40000))
        channel.makeConnection(t)
        channel.dataReceived(head)
        return channel, t

    def get(self, cookie, host="127.0.0.1"):
        return self.half(GET % cookie, host)

    def post(self, cookie, body=b"", host="127.0.0.1"):
        return self.half(POST % cookie + body, host)

    def close(self, channel, t):
        t.loseConnection()
        channel.connectionLost(None)


def b64(*requests):
    return base64.b64encode(b"".join(r.replace(b"\n", b"\r\n") + b"\r\n" for r in requests))


def test_a_get_half_without_a_session_is_closed_after_tunnel_timeout(tmp_path):
    tr = TunnelRig(tmp_path, timeout=10)
    channel, t = tr.get(b"c1")
    assert t.value().startswith(b"HTTP/1.0 200 OK")
    tr.clock.advance(9)
    assert not t.disconnecting
    tr.clock.advance(2)
    assert t.disconnecting


def test_a_tunnel_lives_while_it_has_a_session(tmp_path):
    tr = TunnelRig(tmp_path, timeout=10)
    get, gt = tr.get(b"c1")
    post, pt = tr.post(b"c1", b64(b"SETUP rtsp://h/stream1/trackID=0 RTSP/1.0\nCSeq: 1\n"
                                  b"Transport: RTP/AVP/TCP;interleaved=0-1\n"))
    sid = gt.value().split(b"Session: ")[1].split(b";")[0]
    post.dataReceived(b64(b"PLAY rtsp://h/stream1 RTSP/1.0\nCSeq: 2\nSession: " + sid + b"\n"))
    for _ in range(5):   # keep-alives name the session; the tunnel stays
        tr.clock.advance(9)
        post.dataReceived(b64(b"GET_PARAMETER rtsp://h/stream1 RTSP/1.0\nCSeq: 3\nSession: "
                              + sid + b"\n"))
    assert not gt.disconnecting and len(tr.rig.server.sessions()) == 1
    post.dataReceived(b64(b"TEARDOWN rtsp://h/stream1 RTSP/1.0\nCSeq: 4\nSession: " + sid
                          + b"\n"))
    tr.clock.advance(11)
    assert gt.disconnecting and pt.disconnecting is False   # the GET goes ...
    tr.close(get, gt)
    assert pt.disconnecting                                  # ... and its POST with it


def test_tunnels_are_capped_per_address(tmp_path):
    tr = TunnelRig(tmp_path, per_address=2)
    replies = [tr.get(b"c%d" % i, "127.0.0.2")[1].value() for i in range(3)]
    assert [r.split(b"\r\n")[0] for r in replies] == \
        [b"HTTP/1.0 200 OK"] * 2 + [b"HTTP/1.0 503 Service Unavailable"]
    assert tr.get(b"c9", "127.0.0.3")[1].value().startswith(b"HTTP/1.0 200 OK")
    assert tr.get(b"c0", "127.0.0.3")[1].value().startswith(b"HTTP/1.0 503")  # cookie taken


def test_a_post_half_waits_paused_for_its_get(tmp_path):
    tr = TunnelRig(tmp_path, timeout=10)
    post, pt = tr.post(b"c1", b64(b"OPTIONS * RTSP/1.0\nCSeq: 7\n"))
    assert pt.value() == b"" and pt.producerState == "paused"
    tr.clock.advance(5)
    get, gt = tr.get(b"c1")
    assert b"RTSP/1.0 200 OK\r\nCSeq: 7" in gt.value() and pt.producerState == "producing"
    lonely, lt = tr.post(b"nobody")
    tr.clock.advance(9)
    assert lt.value() == b""
    tr.clock.advance(2)
    assert lt.value().startswith(b"HTTP/1.0 404") and lt.disconnecting


def test_a_post_from_another_address_cannot_join(tmp_path):
    tr = TunnelRig(tmp_path)
    get, gt = tr.get(b"c1", "127.0.0.2")
    post, pt = tr.post(b"c1", b64(b"OPTIONS * RTSP/1.0\nCSeq: 7\n"), "127.0.0.3")
    assert pt.value().startswith(b"HTTP/1.0 404") and b"RTSP" not in gt.value()


def test_rtsp_backpressure_pauses_the_post_half(tmp_path):
    tr = TunnelRig(tmp_path)
    tr.rig.server.auth = LaterAuth(tr.rig.server.auth, tr.clock, 0.1)
    get, gt = tr.get(b"c1")
    post, pt = tr.post(b"c1", b64(*[b"DESCRIBE rtsp://h/stream1 RTSP/1.0\nCSeq: %d\n" % n
                                    for n in range(1, 31)]))
    assert pt.producerState == "paused"
    for _ in range(40):
        tr.clock.advance(0.1)
    assert gt.value().count(b"RTSP/1.0 200 OK") == 30 and pt.producerState == "producing"


class CountingChannel(http.HTTPChannel):
    """A site's own channel class (e.g. one bounding bodies): it must stay in place."""

    seen = 0

    def allHeadersReceived(self):
        CountingChannel.seen += 1
        return super().allHeadersReceived()


def test_install_keeps_the_sites_channel_behind_the_tunnel(tmp_path):
    rig = Rig(tmp_path)
    site = server.Site(resource.Resource(), reactor=rig.clock)
    site.protocol = CountingChannel
    install(site, rig.server)
    assert issubclass(site.protocol, TunnelChannel) and issubclass(site.protocol, CountingChannel)
    for head in (b"GET /nothing HTTP/1.0\r\n\r\n", GET % b"c1"):
        channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        t = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 1))
        channel.makeConnection(t)
        channel.dataReceived(head)
    assert t.value().startswith(b"HTTP/1.0 200 OK")   # the tunnel
    assert CountingChannel.seen == 1   # the ordinary request only; the tunnel came first
