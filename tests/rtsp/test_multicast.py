"""Multicast RTP (RTP/AVP;multicast) without sockets: the transport choice, the SETUP reply,
one send per packet for every multicast viewer of a stream, and the group's RTCP."""

import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rotordream.config import ConfigError, from_dict
from rotordream.rtp.packet import parse_rtcp
from rotordream.rtsp import multicast
from rotordream.rtsp.transport import (MULTICAST, TCP, UDP, Chosen, Group, Unsupported,
                                       multicast_groups, negotiate, reply)
from rotordream.testing import FakeUDPPort
from tests.rtsp.test_session_rules import Rig, au
from tests.support.fuzz import fuzz_settings

GROUP = Group("239.255.42.1", 40000, 3)
MCAST = "RTP/AVP;multicast"
ON = {"multicast_group": "239.255.42.1", "multicast_port": 40000, "multicast_ttl": 3,
      "multicast_interface": "10.77.0.1"}


# -- the transport choice (pure) ------------------------------------------------------------

def test_multicast_offer_gets_the_servers_group():
    assert negotiate(MCAST, group=GROUP) == Chosen(MULTICAST, (40000, 40001), GROUP)
    # What the client asks for is never where the server sends.
    asked = "RTP/AVP;multicast;destination=10.1.2.3;port=9000-9001;ttl=127"
    assert negotiate(asked, group=GROUP) == Chosen(MULTICAST, (40000, 40001), GROUP)
    # In the client's order of preference, with unicast after it or before it.
    both = "RTP/AVP;multicast, RTP/AVP;unicast;client_port=5000-5001"
    assert negotiate(both, group=GROUP).kind == MULTICAST
    assert negotiate(both).kind == UDP            # multicast off: the next offer
    assert negotiate(both, pinned=UDP, group=GROUP).kind == MULTICAST


@pytest.mark.parametrize("header, pinned, group", [
    (MCAST, None, None),                          # off
    (MCAST, TCP, GROUP),                          # the URL pinned TCP
    ("RTP/AVP/TCP;multicast", None, GROUP),       # no multicast over TCP
    ("RTP/SAVP;multicast", None, GROUP),
])
def test_multicast_refused(header, pinned, group):
    with pytest.raises(Unsupported):
        negotiate(header, pinned=pinned, group=group)


def test_multicast_reply():
    assert reply(Chosen(MULTICAST, (40000, 40001), GROUP), 0xAB) == \
        "RTP/AVP;multicast;destination=239.255.42.1;port=40000-40001;ttl=3;ssrc=000000AB"


def test_groups_per_stream_from_config():
    cfg = from_dict({"rtsp": ON}).rtsp
    assert multicast_groups(cfg, ["stream1", "stream2"]) == {
        "stream1": Group("239.255.42.1", 40000, 3), "stream2": Group("239.255.42.2", 40002, 3)}
    assert multicast_groups(from_dict({}).rtsp, ["stream1", "stream2"]) == {}


@pytest.mark.parametrize("key, value, words", [
    ("multicast_group", "10.0.0.1", "multicast address"),
    ("multicast_group", "239.255.255.255", "multicast address"),  # no room for stream2
    ("multicast_group", "nonsense", "multicast address"),
    ("multicast_port", 40001, "even port"),
    ("multicast_port", 0, "1-65535"),
    ("multicast_ttl", 0, "1-255"),
    ("multicast_ttl", 256, "1-255"),
    ("multicast_interface", "eth0", "IPv4 address"),
])
def test_bad_multicast_config_names_the_key(key, value, words):
    with pytest.raises(ConfigError) as e:
        from_dict({"rtsp": {key: value}})
    assert key in str(e.value) and words in str(e.value)


# -- the server on a Clock -------------------------------------------------------------------

class FakeSocket:
    """Records setsockopt calls."""

    def __init__(self):
        self.options = {}

    def setsockopt(self, level, name, value):
        self.options[(level, name)] = value


class MulticastReactor:
    """listenUDP into FakeUDPPorts whose handle records the socket options."""

    def __init__(self):
        self.ports = []

    def listenUDP(self, port, proto, interface=""):
        p = FakeUDPPort(port or 45678, proto, interface)
        p.getHandle = lambda sock=FakeSocket(): sock
        self.ports.append(p)
        return p


def rig(tmp_path, settings=ON):
    r = Rig(tmp_path, rtsp=dict(settings))
    r.reactor = MulticastReactor()
    r.server._start_multicast(r.reactor)
    return r


def sent_to(port, addr):
    return [data for data, a in port.sent if a == addr]


def test_multicast_setup_when_off_is_461(tmp_path):
    r = rig(tmp_path, {})
    assert r.reactor.ports == [] and r.server.multicast is None
    code, h, _ = r.connect().setup(transport=MCAST)
    assert code == 461 and "Unsupported Transport" in h["_status"]


def test_socket_options(tmp_path):
    r = rig(tmp_path)
    (port,) = r.reactor.ports
    assert port.interface == "10.77.0.1"
    assert port.getHandle().options == {
        (socket.IPPROTO_IP, socket.IP_MULTICAST_TTL): 3,
        (socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP): 1,
        (socket.IPPROTO_IP, socket.IP_MULTICAST_IF): socket.inet_aton("10.77.0.1")}


def test_setup_reply_names_the_streams_group(tmp_path):
    r = rig(tmp_path)
    ssrc = r.server.core.fanouts["stream2"].ssrc
    code, h, sid = r.connect().setup("rtsp://h/stream2/trackID=0",
                                     transport=MCAST + ";destination=1.2.3.4;port=2000-2001")
    assert code == 200, h
    assert h["Transport"] == ("RTP/AVP;multicast;destination=239.255.42.2;port=40002-40003;"
                              "ttl=3;ssrc=%08X" % ssrc)
    assert r.server.sessions_by_id[sid].transport_name == "multicast"


def test_two_viewers_one_send_per_packet_until_the_last_leaves(tmp_path):
    r = rig(tmp_path)
    (port,) = r.reactor.ports
    fanout = r.server.core.fanouts["stream1"]
    rtp, rtcp = ("239.255.42.1", 40000), ("239.255.42.1", 40001)
    a, b = r.connect("127.0.0.2"), r.connect("127.0.0.3")
    sids = []
    for c in (a, b):
        code, h, sid = c.setup(transport=MCAST)
        assert code == 200
        code, h, _ = c.ask("PLAY", Session=sid)
        assert code == 200 and "RTP-Info" in h
        sids.append(sid)
        r.clock.advance(0)
    # One target for the group, whatever the number of viewers.
    assert [t.transport_name for t in fanout.targets] == ["multicast"]
    burst = len(sent_to(port, rtp))          # the cached GOP, once
    assert burst > 0
    hub = r.pipeline.hubs["stream1"]
    hub.publish(au(1, False))
    hub.publish(au(2, False))
    assert len(sent_to(port, rtp)) == burst + 2
    sr = parse_rtcp(sent_to(port, rtcp)[0])[0]
    assert sr.ssrc == fanout.ssrc
    assert r.server.counters()["packets"]["multicast"] == burst + 2
    # Each session counts what the group got while it held it.
    assert sorted(s["packets"] for s in r.server.sessions()) == [2, burst + 2]
    # SRs every 5 s from the group's target, not per session.
    before = len(sent_to(port, rtcp))
    r.clock.advance(5)
    assert len(sent_to(port, rtcp)) == before + 1
    # The first viewer leaves: no BYE to the group, the packets go on.
    assert a.ask("TEARDOWN", Session=sids[0])[0] == 200
    assert len(sent_to(port, rtcp)) == before + 1
    hub.publish(au(3, False))
    assert len(sent_to(port, rtp)) == burst + 3
    # The last one leaves: SR + BYE, and the group target leaves the fan-out.
    assert b.ask("TEARDOWN", Session=sids[1])[0] == 200
    last = parse_rtcp(sent_to(port, rtcp)[-1])
    assert [type(p).__name__ for p in last][-1] == "Bye"
    assert fanout.targets == []
    hub.publish(au(4, False))
    assert len(sent_to(port, rtp)) == burst + 3
    assert r.server.counters()["packets"]["multicast"] == burst + 3


def test_pause_releases_and_play_holds_again(tmp_path):
    r = rig(tmp_path)
    fanout = r.server.core.fanouts["stream1"]
    c = r.connect()
    _, _, sid = c.setup(transport=MCAST)
    c.ask("PLAY", Session=sid)
    r.clock.advance(0)
    assert len(fanout.targets) == 1
    assert c.ask("PAUSE", Session=sid)[0] == 200
    assert fanout.targets == []
    c.ask("PLAY", Session=sid)
    r.clock.advance(0)
    assert len(fanout.targets) == 1
    r.server.stop()
    assert fanout.targets == []


def test_an_onvif_hold_keeps_the_group_after_the_sessions(tmp_path):
    r = rig(tmp_path)
    groups = r.server.multicast
    fanout = r.server.core.fanouts["stream1"]
    groups.hold("stream1", multicast.ONVIF)
    assert groups.sending("stream1") and len(fanout.targets) == 1
    c = r.connect()
    _, _, sid = c.setup(transport=MCAST)
    c.ask("PLAY", Session=sid)
    r.clock.advance(0)
    c.ask("TEARDOWN", Session=sid)
    assert len(fanout.targets) == 1
    groups.hold("stream1", multicast.ONVIF)   # twice is once
    groups.release("stream1", multicast.ONVIF)
    assert fanout.targets == [] and not groups.sending("stream1")
    groups.release("stream1", multicast.ONVIF)   # nothing held: nothing happens


def test_session_of_another_connection_from_the_same_address(tmp_path):
    r = rig(tmp_path)
    _, _, sid = r.connect("127.0.0.5").setup(transport=MCAST)
    # Like UDP: another connection from the same address and user may PLAY it.
    assert r.connect("127.0.0.5").ask("PLAY", Session=sid)[0] == 200
    assert r.connect("127.0.0.6").ask("PLAY", Session=sid)[0] == 454


# -- any order of requests, closes and expiry ------------------------------------------------

STEPS = st.lists(st.tuples(
    st.sampled_from(["setup", "setup-udp", "play", "pause", "teardown", "close", "expire",
                     "publish", "onvif-start", "onvif-stop"]),
    st.integers(0, 2)), min_size=1, max_size=14)


@pytest.fixture(scope="module")
def shared_rig(tmp_path_factory):
    """One server for every example (its auth set-up hashes a password)."""
    r = rig(tmp_path_factory.mktemp("mcfuzz"))
    yield r
    r.server.stop()


@fuzz_settings(150)
@given(steps=STEPS)
def test_the_group_is_held_exactly_while_someone_plays_it(shared_rig, steps):
    from twisted.python.failure import Failure
    from twisted.internet.error import ConnectionDone
    r = shared_rig
    server, groups = r.server, r.server.multicast
    fanout = server.core.fanouts["stream1"]
    (port,) = r.reactor.ports
    clients = {}
    onvif = False
    seq = 100
    for step, n in steps:
        c = clients.get(n)
        if c is None or c.proto.connected == 0:
            c = clients[n] = r.connect("127.0.0.%d" % (n + 2))
            c.sids = []
        if step in ("setup", "setup-udp"):
            code, _, sid = c.setup(transport=MCAST if step == "setup" else
                                   "RTP/AVP;unicast;client_port=6000-6001")
            if code == 200:
                c.sids.append(sid)
        elif step in ("play", "pause", "teardown") and c.sids:
            c.ask(step.upper(), Session=c.sids[-1])
        elif step == "close":
            c.proto.connectionLost(Failure(ConnectionDone()))
        elif step == "expire":
            r.clock.advance(61)
        elif step == "publish":
            seq += 1
            before = len(sent_to(port, ("239.255.42.1", 40000)))
            r.pipeline.hubs["stream1"].publish(au(seq, seq % 5 == 0))
            r.clock.advance(0)
            sent = len(sent_to(port, ("239.255.42.1", 40000))) - before
            # Sent to the group while anyone holds it, never otherwise (and never twice:
            # the one target is in the fan-out at most once, checked below).
            assert (sent > 0) == groups.sending("stream1")
        elif step == "onvif-start":
            groups.hold("stream1", multicast.ONVIF)
            onvif = True
        elif step == "onvif-stop":
            groups.release("stream1", multicast.ONVIF)
            onvif = False
        r.clock.advance(0)
        playing = {s.id for s in server.sessions_by_id.values()
                   if s.transport_name == "multicast" and s.state == "PLAYING"}
        assert groups.holders["stream1"] == playing | ({multicast.ONVIF} if onvif else set())
        target = groups.targets["stream1"]
        joined = target in fanout.targets or target in fanout.catching_up
        assert joined == bool(groups.holders["stream1"])
        assert [t for t in fanout.targets if t.transport_name == "multicast"] in ([], [target])
    # Leave nothing for the next example.
    for c in clients.values():
        c.proto.connectionLost(Failure(ConnectionDone()))
    groups.release("stream1", multicast.ONVIF)
    assert groups.holders["stream1"] == set() and target not in fanout.targets


def test_describe_with_multicast_names_the_group_in_the_sdp(tmp_path):
    r = rig(tmp_path)
    c = r.connect()
    code, _, body = c.ask("DESCRIBE", "rtsp://h/stream2?multicast")
    assert code == 200
    lines = body.decode().split("\r\n")
    assert "c=IN IP4 239.255.42.2/3" in lines and "m=video 40002 RTP/AVP 96" in lines
    code, _, body = c.ask("DESCRIBE", "rtsp://h/stream2")
    assert "c=IN IP4 0.0.0.0" in body.decode() and "m=video 0 RTP/AVP 96" in body.decode()


def test_describe_with_multicast_when_off_is_plain(tmp_path):
    r = rig(tmp_path, {})
    code, _, body = r.connect().ask("DESCRIBE", "rtsp://h/stream1?multicast")
    assert code == 200 and "c=IN IP4 0.0.0.0" in body.decode()
