"""The RTSP server paces a new UDP viewer's catch-up at ``[rtsp] catchup_rate`` (reloadable);
TCP viewers get the cached GOP at once. In memory: fake UDP ports, StringTransport, a Clock."""

import dataclasses

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from rotordream.auth.service import AuthService
from rotordream.config import from_dict
from rotordream.media.hub import AccessUnit
from rotordream.rtsp.connection import RTSPFactory
from rotordream.rtsp.server import RTSPServer
from rotordream.testing import FakePipeline, FakeUDPReactor

SPS, PPS = b"\x67\x42\xc0\x1f\xda", b"\x68\xce\x3c\x80"


def au(seq, key):
    """A 100 kB keyframe or a 10 kB P frame."""
    nals = (SPS, PPS, b"\x65" + b"k" * 100000) if key else (b"\x41" + b"p" * 10000,)
    return AccessUnit("stream1", seq, nals, key, seq * 3000, 1000.0 + seq / 30, 640, 360, 30,
                      SPS, PPS)


def make_server(tmp_path, rate):
    clock = FakeUDPReactor()
    cfg = from_dict({"rtsp": {"catchup_rate": rate, "max_sessions_per_address": 10},
                     "auth": {"initial_admin_password": "admin-password",
                              "secret_file": str(tmp_path / "secret.key")}})
    pipeline = FakePipeline()
    # the hub's bitrate from the Clock: all units at one instant, so none measured
    pipeline.hubs["stream1"]._monotonic = clock.seconds
    server = RTSPServer(config=cfg.rtsp, hubs=pipeline.hubs,
                        auth=AuthService(cfg, str(tmp_path), clock), clock=clock)
    server.start(clock)
    for i in range(20):  # 290 kB of GOP
        pipeline.hubs["stream1"].publish(au(i, i == 0))
    return server, clock, cfg


def play(server, clock, udp=True):
    proto = RTSPFactory(server).buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
    proto.makeConnection(transport)
    spec = "RTP/AVP;unicast;client_port=6000-6001" if udp else \
        "RTP/AVP/TCP;unicast;interleaved=0-1"
    proto.dataReceived(("SETUP rtsp://h/stream1/trackID=0 RTSP/1.0\r\nCSeq: 1\r\n"
                        "Transport: %s\r\n\r\n" % spec).encode())
    clock.advance(0)
    sid = transport.value().split(b"Session: ")[1].split(b";")[0].split(b"\r\n")[0].decode()
    transport.clear()
    proto.dataReceived(("PLAY rtsp://h/stream1/ RTSP/1.0\r\nCSeq: 2\r\nSession: %s\r\n\r\n"
                        % sid).encode())
    clock.advance(0)
    clock.advance(0)
    return transport


def rtp_sent(server):
    return [data for data, addr in server.udp_ports[0].sent if addr == ("127.0.0.1", 6000)]


def test_a_udp_viewer_gets_the_gop_at_the_rate_and_tcp_at_once(tmp_path):
    server, clock, cfg = make_server(tmp_path, 100000)
    try:
        play(server, clock)
        first = sum(len(p) for p in rtp_sent(server))
        assert 30000 < first < 34000  # one burst of 32 kB
        clock.advance(1.0)
        assert sum(len(p) for p in rtp_sent(server)) < first + 100000 + 1500
        clock.pump([0.05] * 60)
        assert sum(len(p) for p in rtp_sent(server)) > 290000
        tcp = play(server, clock, udp=False)
        assert len(tcp.value()) > 290000  # no pacing on TCP
    finally:
        server.stop()


def test_the_rate_is_reloaded_and_zero_sends_at_once(tmp_path):
    server, clock, cfg = make_server(tmp_path, 100000)
    try:
        server.reconfigure(dataclasses.replace(cfg.rtsp, catchup_rate=0))
        play(server, clock)
        assert sum(len(p) for p in rtp_sent(server)) > 290000
        assert not server.core.fanouts["stream1"].catching_up
    finally:
        server.stop()
