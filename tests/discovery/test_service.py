"""The WS-Discovery service on a fake multicast reactor: announcements, answers, timing, identity."""

import json
import os
import random
import socket
from types import SimpleNamespace

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.interfaces import IMulticastTransport, IReactorMulticast, IReactorTime
from zope.interface.verify import verifyClass, verifyObject

from rotordream import config as configmod
from rotordream.discovery import identity as identitymod
from rotordream.discovery import message as m
from rotordream.discovery import service as svcmod
from rotordream.discovery.netif import Interface, select_interfaces
from rotordream.discovery.protocol import (DiscoveryProtocol, PacketInfo,
                                           PacketInfoMulticastPort, parse_pktinfo)
from rotordream.listener import Listener, described_port
from rotordream.testing import FakeMulticastReactor, FakeMulticastTransport
from rotordream.state import CameraState

LO = Interface("lo", 1, "127.0.0.1", None, loopback=True, multicast=False)
ETH0 = Interface("eth0", 2, "192.168.1.20", "02:00:00:00:00:01")
WLAN0 = Interface("wlan0", 3, "10.9.0.7", "02:00:00:00:00:02")
ADDRESS = "urn:uuid:5fbd0e4c-cbd1-4c3c-a3a4-2e0d2f1c7a11"
GROUP = (m.MULTICAST_GROUP, m.PORT)
PROBER = ("192.168.1.50", 40001)
LATER = svcmod.APP_MAX_DELAY + 2 * svcmod.UDP_UPPER_DELAY  # every delay and repeat has passed


class World:
    """A discovery service on a fake reactor, with the interfaces and state a test sets."""

    def __init__(self, interfaces=(LO, ETH0, WLAN0), names=(), mode="discoverable"):
        self.reactor = FakeMulticastReactor()
        self.state = CameraState()
        self.state.update({"device-name": "Bench Cam", "device-location": "Lab 2",
                           "discovery-mode": mode})
        self.interfaces = list(interfaces)
        self.saved = []
        routes = {"192.168.1.": "192.168.1.20", "10.9.0.": "10.9.0.7"}
        self.service = svcmod.DiscoveryService(
            self.reactor, self.state, identitymod.Identity(ADDRESS, 5, 2), lambda: 8080,
            interface_names=names, list_interfaces=lambda: self.interfaces,
            local_address_for=lambda peer: next(
                (v for k, v in routes.items() if peer.startswith(k)), None),
            save_identity=self.saved.append, rng=random.Random(7))

    def start(self):
        self.service.startService()
        return self

    @property
    def transport(self):
        return self.reactor.ports[0]

    def sent(self, advance=LATER):
        """Advance past every delay and return the (message, addr, via) written meanwhile."""
        self.reactor.pump([0.01] * int(advance / 0.01 + 1))
        return [(m.parse(data), addr, via) for data, addr, via in self.transport.take()]

    def receive(self, msg, source=PROBER, info=None):
        self.transport.protocol.datagramReceived(m.serialize(msg), source, info)


def xaddr(host):
    return "http://%s:8080/onvif/device_service" % host


def test_fakes_implement_twisted_interfaces():
    assert verifyClass(IMulticastTransport, FakeMulticastTransport)
    assert verifyClass(IReactorMulticast, FakeMulticastReactor)
    assert verifyObject(IReactorTime, FakeMulticastReactor())


def test_off_by_default_and_built_when_enabled(tmp_path):
    ctx = SimpleNamespace(config=configmod.from_dict({"server": {"state_dir": str(tmp_path)}}),
                          reactor=FakeMulticastReactor(), state=CameraState())
    assert svcmod.build_discovery_service(ctx.reactor, ctx.state, ctx.config) is None
    assert not os.listdir(tmp_path)
    ctx.config = configmod.from_dict({"server": {"state_dir": str(tmp_path),
                                                 "http": "tcp:8081:interface=0.0.0.0"},
                                      "discovery": {"enabled": True, "interfaces": ["eth0"]}})
    svc = svcmod.build_discovery_service(ctx.reactor, ctx.state, ctx.config)
    assert svc.interface_names == ("eth0",)
    assert svc.identity.address.startswith("urn:uuid:") and svc.identity.instance_id == 1
    assert svc.http_port() == 8081


def test_http_port_is_the_bound_listener_when_there_is_one(tmp_path):
    ctx = SimpleNamespace(config=configmod.from_dict({"server": {"state_dir": str(tmp_path)},
                                                      "discovery": {"enabled": True}}),
                          reactor=FakeMulticastReactor(), state=CameraState())
    listener = Listener(ctx.reactor, "tcp:0:interface=127.0.0.1", None, "http")
    assert listener.number() == 0   # not bound yet: the described port
    listener.port = SimpleNamespace(getHost=lambda: SimpleNamespace(port=39123))
    svc = svcmod.build_discovery_service(ctx.reactor, ctx.state, ctx.config,
                                         http_port=listener.number)
    assert svc.http_port() == 39123


@pytest.mark.parametrize("desc, port", [
    ("tcp:8080", 8080), ("tcp:8080:interface=0.0.0.0", 8080), ("tcp:port=81:interface=::", 81),
    ("tcp:interface=0.0.0.0:port=82", 82), ("unix:/run/x.sock", 80), ("tcp6:9000", 9000)])
def test_described_port(desc, port):
    assert described_port(desc) == port


def test_identity_is_stable_counts_starts_and_survives_corruption(tmp_path):
    first = identitymod.load(str(tmp_path))
    second = identitymod.load(str(tmp_path))
    assert second.address == first.address
    assert (first.instance_id, second.instance_id) == (1, 2)
    identitymod.save(str(tmp_path), identitymod.Identity(first.address, 2, 9))
    assert identitymod.load(str(tmp_path)).metadata_version == 9
    path = tmp_path / identitymod.IDENTITY_FILE
    for junk in (b"{not json", b'{"address": "urn:uuid:zzz"}', b"[]"):
        path.write_bytes(junk)
        fresh = identitymod.load(str(tmp_path))
        assert fresh.address != first.address and fresh.instance_id == 1
        assert json.loads(path.read_bytes())["address"] == fresh.address
    assert len([p for p in os.listdir(tmp_path) if ".corrupt-" in p]) == 3


def test_start_joins_every_interface_and_says_hello_on_each_after_a_random_delay():
    w = World().start()
    assert w.transport.groups == {(m.MULTICAST_GROUP, "192.168.1.20"),
                                  (m.MULTICAST_GROUP, "10.9.0.7")}
    assert w.transport.take() == []          # nothing before the random delay
    sent = w.sent()
    hellos = [(msg, addr, via) for msg, addr, via in sent]
    assert {via for _, _, via in hellos} == {"192.168.1.20", "10.9.0.7"}
    assert all(addr == GROUP and msg.kind == m.HELLO for msg, addr, _ in hellos)
    # Each Hello goes twice (one retransmission), the repeat with the same MessageID.
    by_iface = {}
    for msg, _, via in hellos:
        by_iface.setdefault(via, []).append(msg)
    for via, msgs in by_iface.items():
        assert len(msgs) == 1 + svcmod.MULTICAST_UDP_REPEAT
        assert len({x.message_id for x in msgs}) == 1
        (endpoint,) = msgs[0].endpoints
        assert endpoint.address == ADDRESS and endpoint.metadata_version == 2
        assert endpoint.types == m.DEVICE_TYPES
        assert endpoint.xaddrs == (xaddr(via),)
        assert msgs[0].app_sequence[0] == 5
    eth0 = by_iface["192.168.1.20"][0].endpoints[0]
    assert set(eth0.scopes) == {
        "onvif://www.onvif.org/type/video_encoder", "onvif://www.onvif.org/type/ptz",
        "onvif://www.onvif.org/Profile/Streaming", "onvif://www.onvif.org/hardware/RotorDream",
        "onvif://www.onvif.org/name/Bench%20Cam", "onvif://www.onvif.org/location/Lab%202",
        "onvif://www.onvif.org/MAC/02:00:00:00:00:01"}


def test_retransmission_timing_follows_soap_over_udp():
    w = World(interfaces=[ETH0]).start()
    times = []
    t = 0.0
    while len(times) < 2 and t < 5:
        w.reactor.advance(0.01)
        t += 0.01
        times += [t for _ in w.transport.take()]
    assert 0 <= times[0] <= svcmod.APP_MAX_DELAY + 0.011
    assert svcmod.UDP_MIN_DELAY - 0.011 <= times[1] - times[0] <= svcmod.UDP_MAX_DELAY + 0.011


def test_configured_interfaces_only():
    w = World(names=("wlan0",)).start()
    assert w.transport.groups == {(m.MULTICAST_GROUP, "10.9.0.7")}
    assert {via for _, _, via in w.sent()} == {"10.9.0.7"}
    # Loopback is used when named explicitly, and only then.
    assert select_interfaces([LO, ETH0], ("lo",)) == [LO]
    assert select_interfaces([LO, ETH0]) == [ETH0]


def test_probe_answered_unicast_with_relates_to_and_the_arrival_interface():
    w = World().start()
    w.sent()
    probe = m.probe(types=[(m.DN, "NetworkVideoTransmitter")],
                    scopes=["onvif://www.onvif.org/Profile/Streaming"])
    w.receive(probe, info=PacketInfo(2, "192.168.1.20", m.MULTICAST_GROUP))
    assert w.transport.take() == []          # a multicast Probe waits a random delay
    replies = w.sent()
    assert len(replies) == 1 + svcmod.UNICAST_UDP_REPEAT
    msg, addr, _ = replies[0]
    assert addr == PROBER
    assert msg.kind == m.PROBE_MATCHES and msg.relates_to == probe.message_id
    assert msg.to == m.ANONYMOUS
    (endpoint,) = msg.endpoints
    assert endpoint.address == ADDRESS and endpoint.xaddrs == (xaddr("192.168.1.20"),)
    assert replies[1][0].message_id == msg.message_id


def test_probe_without_packet_info_uses_the_route_to_the_prober():
    w = World().start()
    w.sent()
    w.receive(m.probe(), source=("10.9.0.99", 3702))
    (msg, addr, _), _ = w.sent()
    assert addr == ("10.9.0.99", 3702)
    assert msg.endpoints[0].xaddrs == (xaddr("10.9.0.7"),)


def test_unicast_probe_is_answered_at_once():
    w = World().start()
    w.sent()
    w.receive(m.probe(types=[(m.TDS, "Device")]), info=PacketInfo(2, "192.168.1.20", "192.168.1.20"))
    assert len(w.transport.take()) == 1


@pytest.mark.parametrize("probe", [
    m.probe(types=[("http://example.com/printers", "Printer")]),
    m.probe(types=[(m.DN, "NetworkVideoTransmitter"), (m.DN, "Other")]),
    m.probe(scopes=["onvif://www.onvif.org/name/Other"]),
    m.probe(scopes=["onvif://www.onvif.org/type"], match_by="urn:no-such-rule"),
])
def test_probes_that_do_not_match_get_no_answer(probe):
    w = World().start()
    w.sent()
    w.receive(probe, info=PacketInfo(2, "192.168.1.20", m.MULTICAST_GROUP))
    assert w.sent() == []


def test_probe_on_an_interface_we_do_not_serve_is_ignored():
    w = World(names=("wlan0",)).start()
    w.sent()
    w.receive(m.probe(), info=PacketInfo(2, "192.168.1.20", m.MULTICAST_GROUP))
    w.receive(m.probe(), source=("172.16.0.1", 5000))     # no route to a served interface
    assert w.sent() == []


def test_repeated_probe_is_answered_once_per_interface():
    w = World().start()
    w.sent()
    probe = m.probe()
    for _ in range(3):
        w.receive(probe, info=PacketInfo(2, "192.168.1.20", m.MULTICAST_GROUP))
    w.receive(probe, source=("10.9.0.99", 1234), info=PacketInfo(3, "10.9.0.7", m.MULTICAST_GROUP))
    sent = w.sent()
    assert sorted(addr for _, addr, _ in sent) == sorted([PROBER] * 2 + [("10.9.0.99", 1234)] * 2)


def test_resolve():
    w = World().start()
    w.sent()
    w.receive(m.resolve(ADDRESS.upper().replace("URN:UUID:", "urn:uuid:")),
              info=PacketInfo(3, "10.9.0.7", m.MULTICAST_GROUP))
    w.receive(m.resolve("urn:uuid:00000000-0000-0000-0000-000000000000"),
              info=PacketInfo(3, "10.9.0.7", m.MULTICAST_GROUP))
    sent = w.sent()
    assert len(sent) == 2 and sent[0][0].message_id == sent[1][0].message_id
    msg, addr, _ = sent[0]
    assert msg.kind == m.RESOLVE_MATCHES and addr == PROBER
    assert msg.endpoints[0].xaddrs == (xaddr("10.9.0.7"),)


def test_non_discoverable_sends_no_hello_and_answers_nothing():
    w = World(mode="non-discoverable").start()
    assert w.transport.groups                    # still listening, to come back quickly
    w.receive(m.probe(), info=PacketInfo(2, "192.168.1.20", m.MULTICAST_GROUP))
    w.receive(m.resolve(ADDRESS), info=PacketInfo(2, "192.168.1.20", m.MULTICAST_GROUP))
    assert w.sent() == []
    d = w.service.stopService()
    assert w.transport.take() == [] and d.called   # no Bye either


def test_switching_discovery_mode_says_hello_and_bye():
    w = World(interfaces=[ETH0]).start()
    w.sent()
    w.state.update({"discovery-mode": "non-discoverable"})
    assert [msg.kind for msg, _, _ in w.sent()] == [m.BYE, m.BYE]
    w.receive(m.probe(), info=PacketInfo(2, "192.168.1.20", m.MULTICAST_GROUP))
    assert w.sent() == []
    w.state.update({"discovery-mode": "discoverable"})
    assert [msg.kind for msg, _, _ in w.sent()] == [m.HELLO, m.HELLO]


def test_new_name_means_new_metadata_version_and_a_hello():
    w = World(interfaces=[ETH0]).start()
    w.sent()
    w.state.update({"device-name": "Gate"})
    sent = w.sent()
    assert [msg.kind for msg, _, _ in sent] == [m.HELLO, m.HELLO]
    endpoint = sent[0][0].endpoints[0]
    assert endpoint.metadata_version == 3
    assert "onvif://www.onvif.org/name/Gate" in endpoint.scopes
    assert w.saved[-1].metadata_version == 3 and w.saved[-1].address == ADDRESS
    w.state.update({"brightness": 60})             # not a scope: nothing to announce
    assert w.sent() == []


def test_extra_scopes_are_announced_and_answered():
    w = World(interfaces=[ETH0]).start()
    w.sent()
    w.service.set_extra_scopes(["onvif://www.onvif.org/location/building/7"])
    hello = w.sent()[0][0].endpoints[0]
    assert hello.metadata_version == 3 and hello.scopes[-1].endswith("/building/7")
    w.receive(m.probe(scopes=["onvif://www.onvif.org/location/building"]),
              info=PacketInfo(2, "192.168.1.20", m.MULTICAST_GROUP))
    assert [msg.kind for msg, _, _ in w.sent()] == [m.PROBE_MATCHES] * 2
    with pytest.raises(ValueError):
        w.service.set_extra_scopes(["two words"])
    w.service.set_extra_scopes(["onvif://www.onvif.org/location/building/7"])  # no change
    assert w.sent() == []


def test_extra_scopes_are_camera_state_that_discovery_follows(tmp_path):
    state = CameraState(str(tmp_path))
    state.scopes.set(["onvif://www.onvif.org/x/kept", "two words"])
    # A restart: the saved scopes are announced, with no new MetadataVersion.
    again = CameraState(str(tmp_path))
    assert again.scopes.get() == ("onvif://www.onvif.org/x/kept", "two words")
    w = World(interfaces=[ETH0])
    w.state = again
    w.service = svcmod.DiscoveryService(w.reactor, again, identitymod.Identity(ADDRESS, 5, 2),
                                        lambda: 8080, list_interfaces=lambda: w.interfaces,
                                        save_identity=w.saved.append, rng=random.Random(7))
    w.start()
    hello = w.sent()[0][0].endpoints[0]
    assert hello.metadata_version == 2 and hello.scopes[-1].endswith("/x/kept")
    again.scopes.set(["onvif://www.onvif.org/x/new"])  # what ONVIF AddScopes does
    hello = w.sent()[0][0].endpoints[0]
    assert hello.metadata_version == 3 and hello.scopes[-1].endswith("/x/new")


def test_stop_says_bye_everywhere_and_waits_for_the_repeat():
    w = World().start()
    w.sent()
    d = w.service.stopService()
    first = w.transport.take()                    # the first Bye goes at once
    assert sorted(via for _, _, via in first) == ["10.9.0.7", "192.168.1.20"]
    assert not d.called and w.transport.listening
    sent = w.sent()
    assert d.called and not w.transport.listening
    byes = [m.parse(data) for data, _, _ in first] + [msg for msg, _, _ in sent]
    assert [b.kind for b in byes] == [m.BYE] * 4
    assert all(b.endpoints[0].address == ADDRESS for b in byes)
    w.receive(m.probe())                          # too late: stopped
    assert not w.reactor.getDelayedCalls()


def test_stop_cancels_a_hello_not_yet_sent():
    w = World(interfaces=[ETH0]).start()
    d = w.service.stopService()
    w.reactor.pump([0.01] * int(LATER / 0.01))
    assert [m.parse(data).kind for data, _, _ in w.transport.take()] == [m.BYE, m.BYE]
    assert d.called


def test_new_interface_is_joined_and_greeted_on_the_next_look():
    w = World(interfaces=[LO, ETH0]).start()
    w.sent()
    w.interfaces.append(WLAN0)
    w.reactor.advance(svcmod.REFRESH_INTERVAL)
    assert (m.MULTICAST_GROUP, "10.9.0.7") in w.transport.groups
    assert {via for _, _, via in w.sent()} == {"10.9.0.7"}
    w.interfaces.remove(ETH0)
    w.reactor.advance(svcmod.REFRESH_INTERVAL)
    assert (m.MULTICAST_GROUP, "192.168.1.20") not in w.transport.groups
    assert w.sent() == []


def test_cannot_listen_leaves_the_daemon_running_without_discovery():
    from twisted.internet.error import CannotListenError
    w = World()

    def refuse(*a, **kw):
        raise CannotListenError("", m.PORT, OSError(98, "Address already in use"))

    w.reactor.listenMulticast = refuse
    w.start()
    assert w.service.transport is None and not w.reactor.getDelayedCalls()
    w.state.update({"device-name": "Gate"})        # observers were never attached
    d = w.service.stopService()
    assert d is None


def test_no_matching_interface_warns_once_and_sends_nothing():
    w = World(names=("eth9",)).start()
    assert w.transport.groups == set() and w.sent() == []
    w.reactor.advance(svcmod.REFRESH_INTERVAL)
    assert w.service._warned_missing


def test_a_failed_join_is_logged_and_the_rest_work():
    w = World()
    w.reactor.listenMulticast = (lambda orig: lambda *a, **kw: _refusing(orig(*a, **kw)))(
        w.reactor.listenMulticast)
    w.start()
    assert w.transport.groups == {(m.MULTICAST_GROUP, "10.9.0.7")}


def _refusing(transport):
    transport.refuse_join.add("192.168.1.20")
    return transport


def test_garbage_and_other_peoples_messages_are_ignored():
    w = World().start()
    w.sent()
    proto = w.transport.protocol
    for junk in (b"", b"\xff" * 100, b"<a/>", b"M-SEARCH * HTTP/1.1\r\n\r\n"):
        proto.datagramReceived(junk, PROBER)
    other = m.Endpoint("urn:uuid:other", m.DEVICE_TYPES)
    w.receive(m.hello(other, (1, 1)))
    w.receive(m.probe_matches(m.probe(), other, (1, 2)))
    assert w.sent() == []
    w.receive(m.probe(), info=PacketInfo(2, "192.168.1.20", m.MULTICAST_GROUP))
    assert len(w.sent()) == 2                     # still answering


def test_a_probe_flood_is_capped():
    w = World(interfaces=[ETH0]).start()
    w.sent()
    for _ in range(svcmod.MAX_PENDING * 3):
        w.receive(m.probe(), info=PacketInfo(2, "192.168.1.20", m.MULTICAST_GROUP))
    assert len(w.service._pending) <= svcmod.MAX_PENDING
    assert len(w.sent()) <= 2 * svcmod.MAX_PENDING


def test_pktinfo_parsing():
    data = (2).to_bytes(4, "little") + socket.inet_aton("10.0.0.1") + socket.inet_aton("239.255.255.250")
    info = parse_pktinfo([(socket.IPPROTO_IP, 8, data), (0, 0, b"")])
    assert info == PacketInfo(2, "10.0.0.1", "239.255.255.250") and info.multicast
    assert parse_pktinfo([]) is None
    assert not PacketInfo(1, "127.0.0.1", "127.0.0.1").multicast


class _Collect:
    def __init__(self):
        self.got = defer.Deferred()

    def message_received(self, msg, addr, info):
        self.got.callback((msg, addr, info))


@pytest_twisted.inlineCallbacks
def test_packet_info_port_reports_the_arrival_interface():
    """The real port on loopback (unicast only: nothing leaves this host)."""
    from twisted.internet import reactor
    receiver = _Collect()
    port = PacketInfoMulticastPort(0, DiscoveryProtocol(receiver), interface="127.0.0.1",
                                   reactor=reactor)
    port.startListening()
    try:
        probe = m.probe()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(m.serialize(probe), ("127.0.0.1", port.getHost().port))
            msg, addr, info = yield receiver.got
        assert msg.message_id == probe.message_id and addr[0] == "127.0.0.1"
        assert info.ifindex == socket.if_nametoindex("lo")
        assert info.destination == "127.0.0.1" and not info.multicast
    finally:
        yield port.stopListening()
