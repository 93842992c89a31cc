"""Each part's ``reconfigure``: the new values apply to what comes next, nothing is dropped."""

import os

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.task import Clock

from rotordream import config as configmod
from rotordream.auth.ratelimit import Lockout, RateLimiter
from rotordream.auth.service import AuthError
from rotordream.listener import ListenError, Listener
from rotordream.recording import RecorderError
from rotordream.recording.recorder import Recorder
from rotordream.recording.store import RecordingStore
from rotordream.service import _Discovery
from rotordream.state import CameraState
from rotordream.testing import ImmediateReactor, SyncThreadPool
from tests.conftest import free_port
from tests.support.auth import make_auth, result


def make(**sections):
    return configmod.from_dict({name: dict(values) for name, values in sections.items()})


def test_a_rate_limiter_takes_a_new_limit_for_the_next_event():
    clock = Clock()
    limiter = RateLimiter(2, 60, clock)
    assert limiter.hit("a") == 0 and limiter.hit("a") == 0
    assert limiter.hit("a") > 0
    limiter.configure(5, 60)
    assert limiter.hit("a") == 0
    limiter.configure(0, 60)
    assert limiter.hit("a") == 0 and not limiter.enabled


def test_a_lockout_keeps_a_running_lock_and_counts_with_the_new_limit():
    clock = Clock()
    lockout = Lockout(2, 60, 600, clock)
    lockout.failed("k")
    assert lockout.failed("k") == 60
    lockout.configure(1, 30, 300)
    assert lockout.retry_after("k") == 60     # the lock already running stays
    assert lockout.failed("other") == 30      # one failure now locks, for the new window


def test_auth_takes_new_limits_and_anonymous_role(tmp_path):
    auth, clock = make_auth(tmp_path, login_failures=100, attempts_per_address=0)
    assert auth.anonymous().role == "viewer"
    new = make(auth={"login_failures": 1, "anonymous": "guest", "token_lifetime": 60,
                     "attempts_per_address": 0})
    auth.reconfigure(new)
    assert auth.anonymous().role == "guest"
    assert auth.tokens.lifetime == 60
    with pytest.raises(AuthError):
        result(auth.check_password("admin", "wrong", "10.0.0.1"))
    with pytest.raises(AuthError) as e:
        result(auth.check_password("admin", "wrong", "10.0.0.1"))
    assert e.value.code == "RATE_LIMITED" and e.value.limit == 1


def test_the_websocket_factory_applies_limits_to_connected_clients(tmp_path):
    from rotordream.web.websocket import ControlFactory
    state = CameraState(str(tmp_path))
    auth, clock = make_auth(tmp_path)
    factory = ControlFactory(make(), state, auth, clock)

    class Client:
        limiter = RateLimiter(100, 1, clock)
    client = Client()
    factory.clients[1] = client
    factory.reconfigure(make(websocket={"rate_limit": 7, "max_message": 1024},
                             http={"allowed_origins": ["https://nvr.example"]}))
    assert factory.rate_limit == 7 and client.limiter.limit == 7
    assert factory.maxMessagePayloadSize == 1024
    assert factory.allowed_origins == ("https://nvr.example",)
    assert factory.clients == {1: client}
    factory.clients.clear()
    factory.close_all()


def make_recorder(tmp_path):
    clock = Clock()
    store = RecordingStore(str(tmp_path / "rec"))
    from rotordream.media.hub import StreamHub
    rec = Recorder(ImmediateReactor(clock), CameraState(str(tmp_path)), StreamHub("stream1"),
                   store, SyncThreadPool(), 300, clock=clock)
    rec.startService()
    return rec


def test_the_recorder_takes_segment_length_retention_and_directory(tmp_path):
    rec = make_recorder(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    with open(other / "index.json", "w") as f:
        f.write('{"recordings": []}')
    section = make(recording={"segment_seconds": 60, "max_total_mb": 5,
                              "min_free_mb": 1}).recording
    rec.reconfigure(section, str(other))
    assert rec.segment_seconds == 60
    assert rec.store.max_total == 5 * 1024 * 1024 and rec.store.min_free == 1024 * 1024
    assert rec.store.directory == str(other)
    rec.stopService()


def test_a_new_directory_waits_for_the_running_recording(tmp_path):
    rec = make_recorder(tmp_path)
    first = rec.store.directory
    rec.mode = "recording"            # as if recording: the file stays where it began
    rec.reconfigure(configmod.Recording(), str(tmp_path / "later"))
    assert rec.store.directory == first
    rec.mode = "idle"
    rec._move()
    assert rec.store.directory == str(tmp_path / "later")
    assert os.path.isdir(tmp_path / "later")


def test_start_is_refused_while_the_directory_moves(tmp_path):
    rec = make_recorder(tmp_path)
    rec._moving = defer.Deferred()
    with pytest.raises(RecorderError) as e:
        rec.start()
    assert e.value.code == "CONFLICT"


class FakeDiscovery:
    def __init__(self, config):
        self.config = config
        self.parent = None
        self.reconfigured = []
        self.readdressed_count = 0

    def setServiceParent(self, parent):
        self.parent = parent

    def disownServiceParent(self):
        self.parent = None

    def reconfigure(self, section):
        self.reconfigured.append(section)

    def readdressed(self):
        self.readdressed_count += 1


def test_discovery_starts_stops_and_follows_the_http_port():
    built = []
    top = object()
    switch = _Discovery(top, lambda cfg: built.append(FakeDiscovery(cfg)) or built[-1])
    switch.reconfigure(make())
    assert switch.service is None and built == []
    on = make(discovery={"enabled": True, "interfaces": ["eth0"]})
    switch.reconfigure(on)
    assert built[0].parent is top
    moved = make(discovery={"enabled": True, "interfaces": ["eth1"]},
                 server={"http": "tcp:8081"})
    switch.reconfigure(moved, on)
    assert built[0].reconfigured[-1].interfaces == ("eth1",)
    assert built[0].readdressed_count == 1
    switch.reconfigure(make(), moved)
    assert built[0].parent is None and switch.service is None


def test_discovery_says_bye_on_the_interfaces_left_out(tmp_path):
    from rotordream.discovery import message, netif
    from rotordream.discovery.service import DiscoveryService
    from rotordream.discovery.identity import Identity
    service = DiscoveryService(Clock(), CameraState(str(tmp_path)),
                               Identity("urn:uuid:1", 1, 1), lambda: 80,
                               interface_names=("eth0", "eth1"))
    eth0 = netif.Interface("eth0", 2, "192.0.2.1", None)
    announced = []
    service.transport = object()
    service.running = True
    service.interfaces = {2: eth0}
    service.list_interfaces = lambda: []
    service._announce = lambda kind, ifaces=None: announced.append((kind, ifaces))
    service.refresh_interfaces = lambda: None
    service.reconfigure(configmod.Discovery(enabled=True, interfaces=("eth1",)))
    assert service.interface_names == ("eth1",)
    assert announced == [(message.BYE, [eth0])]


@pytest_twisted.inlineCallbacks
def test_a_listener_moves_and_keeps_its_accepted_connections():
    from twisted.internet import protocol, reactor
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    class Echo(protocol.Protocol):
        def dataReceived(self, data):
            self.transport.write(data)

    class Client(protocol.Protocol):
        def connectionMade(self):
            self.received = defer.Deferred()

        def dataReceived(self, data):
            d, self.received = self.received, defer.Deferred()
            d.callback(data)

    factory = protocol.Factory.forProtocol(Echo)
    old_port, new_port = free_port(), free_port()
    listener = Listener(reactor, "tcp:%d:interface=127.0.0.1" % old_port, factory, "http")
    listener.privilegedStartService()
    listener.startService()
    try:
        client = yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", old_port),
                                       Client())
        port = listener.open("tcp:%d:interface=127.0.0.1" % new_port)
        yield listener.move_to("tcp:%d:interface=127.0.0.1" % new_port, port)
        assert listener.number() == new_port
        client.transport.write(b"still here")
        assert (yield client.received) == b"still here"
        fresh = yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", new_port),
                                      Client())
        fresh.transport.write(b"new")
        assert (yield fresh.received) == b"new"
        fresh.transport.loseConnection()
        client.transport.loseConnection()
        with pytest.raises(Exception):
            yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", old_port,
                                                     timeout=5), Client())
        with pytest.raises(ListenError) as e:
            listener.open("tcp:%d:interface=127.0.0.1" % new_port)
        assert "already in use" in str(e.value)
    finally:
        yield listener.stopService()
