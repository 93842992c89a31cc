"""Test doubles shared by every test, checked against the interfaces they stand for.

The one home for fakes (like ``autobahn.twisted.testing``): a video pipeline,
a motor controller, synchronous and queued thread pools, reactors made of a
``task.Clock`` (threads, UDP, multicast) and in-memory UDP and multicast
ports. ``tests/test_testing.py`` checks each with ``verifyObject`` against
the rotordream or Twisted interface it stands for.

Why it is long: it is a catalogue of small independent fakes, each read on
its own; one home keeps every test on the same doubles.
"""

import ipaddress

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.error import MulticastJoinError
from twisted.internet.interfaces import (IMulticastTransport, IReactorFromThreads,
                                         IReactorMulticast, IReactorTime, IReactorUDP,
                                         IUDPTransport)
from twisted.internet.task import Clock
from zope.interface import implementer

from rotordream.auth.roles import Principal
from rotordream.auth.service import AuthError
from rotordream.interfaces import ICredentialChecker, IMotorController, IVideoPipeline
from rotordream.media.capture import Buckets
from rotordream.media.hub import StreamHub

# A minimal valid JPEG (1x1 grey), so snapshot consumers can be tested without encoding.
TINY_JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c140d0c0b"
    "0b0c1912130f141d1a1f1e1d1a1c1c20242e2720222c231c1c2837292c30313434341f27393d38323c2e3334"
    "32ffc0000b080001000101011100ffc4001f0000010501010101010100000000000000000102030405060708"
    "090a0bffc400b5100002010303020403050504040000017d01020300041105122131410613516107227114"
    "328191a1082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a434445464748"
    "494a535455565758595a636465666768696a737475767778797a838485868788898a92939495969798999a"
    "a2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7"
    "e8e9eaf1f2f3f4f5f6f7f8f9faffda0008010100003f00fbd3ffd9")


@implementer(IVideoPipeline)
class FakePipeline:
    """Hubs you publish into yourself, a fixed snapshot, counters you can set."""

    def __init__(self, jpeg=TINY_JPEG):
        self.hubs = {"stream1": StreamHub("stream1"), "stream2": StreamHub("stream2")}
        self.jpeg = jpeg
        self.frame_observers = []
        self.snapshots_taken = 0
        self.snaps = []
        self.captured = 0
        self.dropped = 0
        self.latency = {"encode_seconds": {n: Buckets() for n in self.hubs},
                        "capture_to_hub_seconds": Buckets()}

    def snapshot(self, quality=None):
        """The fixed JPEG."""
        self.snapshots_taken += 1
        return defer.succeed(self.jpeg)

    def snap(self, snap_id):
        """The fixed JPEG for a snap id made by :meth:`take_snap`; KeyError otherwise."""
        if snap_id not in self.snaps:
            raise KeyError(snap_id)
        return defer.succeed(self.jpeg)

    def take_snap(self):
        """A new snap id, fetchable with :meth:`snap`."""
        snap_id = "snap-%d" % (len(self.snaps) + 1)
        self.snaps.append(snap_id)
        return snap_id

    def stats(self):
        """Counters shaped like the real pipeline's."""
        return {"source": "fake", "signal": True, "captured": self.captured,
                "dropped": self.dropped,
                "source_failures": 0, "uptime": 0, "latency_ms_p50": None,
                "latency_ms_p99": None,
                "streams": {n: h.stats() for n, h in self.hubs.items()}}

    def observe_frames(self, fn):
        """Remember ``fn``; tests call it with frames they make."""
        self.frame_observers.append(fn)

    def histograms(self):
        """The histograms in :attr:`latency`, which tests fill with ``observe``."""
        return self.latency


@implementer(ICredentialChecker)
class FakeAuth:
    """One user and one token: ``op``/``secret`` is an operator, token ``tok`` an admin."""

    OPERATOR = Principal("op", "operator")
    ADMIN = Principal("admin", "admin")

    def check_password(self, username, password, client=None, protocol="http"):
        """The operator for ``op``/``secret``; AuthError otherwise."""
        if (username, password) == ("op", "secret"):
            return self.OPERATOR
        raise AuthError("wrong username or password")

    def check_token(self, token):
        """The admin for ``tok``; AuthError otherwise."""
        if token == "tok":
            return self.ADMIN
        raise AuthError("unknown or expired token")


class SyncThreadPool:
    """A thread pool that runs work at once in the calling thread (for unit tests).

    Pair it with a reactor whose ``callFromThread`` calls at once (see
    :class:`ImmediateReactor`) so ``deferToThreadPool`` results arrive synchronously.
    """

    def __init__(self):
        self.started = False
        self.calls = 0

    def start(self):
        """Nothing to start."""
        self.started = True

    def stop(self):
        """Nothing to stop."""
        self.started = False

    def callInThread(self, fn, *args, **kwargs):
        """Run ``fn`` now."""
        self.calls += 1
        fn(*args, **kwargs)

    def callInThreadWithCallback(self, on_result, fn, *args, **kwargs):
        """Run ``fn`` now and report ``(success, result)`` like twisted's ThreadPool."""
        self.calls += 1
        _run_and_report(on_result, fn, args, kwargs)


class QueuedThreadPool:
    """A thread pool whose work waits until the test runs it (:meth:`run_next`).

    For code that must behave while work is still "in the thread".
    """

    def __init__(self):
        self.queue = []

    def callInThreadWithCallback(self, on_result, fn, *args, **kwargs):
        """Queue ``fn``; report ``(success, result)`` like twisted's ThreadPool once run."""
        self.queue.append((on_result, fn, args, kwargs))

    def run_next(self):
        """Run the oldest queued work now."""
        _run_and_report(*self.queue.pop(0))


def _run_and_report(on_result, fn, args, kwargs):
    from twisted.python.failure import Failure
    try:
        result = fn(*args, **kwargs)
    except BaseException:
        on_result(False, Failure())
    else:
        on_result(True, result)


@implementer(IReactorTime, IReactorFromThreads)
class ImmediateReactor:
    """A task.Clock-based reactor stand-in whose callFromThread runs at once.

    Give several the same ``clock`` to share one time line.
    """

    def __init__(self, clock=None):
        self.clock = clock or Clock()

    def callFromThread(self, fn, *args, **kwargs):
        """Call now (the 'thread' is the test itself)."""
        fn(*args, **kwargs)

    def callLater(self, delay, fn, *args, **kwargs):
        """Schedule on the clock."""
        return self.clock.callLater(delay, fn, *args, **kwargs)

    def seconds(self):
        """The clock's time."""
        return self.clock.seconds()

    def getDelayedCalls(self):
        """The clock's pending calls."""
        return self.clock.getDelayedCalls()

    def advance(self, seconds):
        """Move the clock on, running what falls due."""
        self.clock.advance(seconds)


@implementer(IReactorFromThreads)
class ThreadClock(Clock):
    """A ``task.Clock`` that also takes ``callFromThread`` (run at once), for code that hands
    results over from a worker thread (the motion detector, the capture thread)."""

    def callFromThread(self, fn, *args, **kwargs):
        """Call now (the 'thread' is the test itself)."""
        fn(*args, **kwargs)


# -- a motor controller --------------------------------------------------------------

@implementer(IMotorController)
class FakeMotor:
    """A motor that arrives at once: moves set :attr:`pan`/:attr:`tilt` and are logged in
    :attr:`calls`; limits are the state's defaults (-180..180, -90..90)."""

    def __init__(self, pan=0.0, tilt=0.0):
        self.pan, self.tilt = pan, tilt
        self.calls = []
        self.rotor = {"enabled": False, "speed": 0, "direction": "cw"}
        self.faults = 0
        self._presets = {}
        self.home_position = (0.0, 0.0)

    def _log(self, name, *args):
        self.calls.append((name,) + args)

    def continuous_move(self, pan_velocity, tilt_velocity, timeout=None):
        """Logged; the axes stay where they are."""
        self._log("continuous_move", pan_velocity, tilt_velocity, timeout)
        return defer.succeed(None)

    def absolute_move(self, pan=None, tilt=None, speed=None):
        """Arrive at once (None leaves an axis)."""
        self._log("absolute_move", pan, tilt, speed)
        self.pan = self.pan if pan is None else pan
        self.tilt = self.tilt if tilt is None else tilt
        return defer.succeed(None)

    def relative_move(self, pan=0.0, tilt=0.0, speed=None):
        """Arrive at once."""
        self._log("relative_move", pan, tilt, speed)
        return self.absolute_move(self.pan + pan, self.tilt + tilt, speed)

    def stop(self, pan=True, tilt=True):
        """Logged."""
        self._log("stop", pan, tilt)
        return defer.succeed(None)

    def home(self):
        """Go to the home position at once."""
        return self.absolute_move(*self.home_position)

    def set_home(self):
        """The current position becomes home."""
        self.home_position = (self.pan, self.tilt)

    def set_rotor(self, enabled=None, speed=None, direction=None):
        """Change what is given."""
        for key, value in (("enabled", enabled), ("speed", speed), ("direction", direction)):
            if value is not None:
                self.rotor[key] = value
        return defer.succeed(None)

    def status(self):
        """Shaped like the motor service's status."""
        return {"pan": self.pan, "tilt": self.tilt, "pan_moving": False, "tilt_moving": False,
                "state": "idle", "rotor_enabled": self.rotor["enabled"],
                "rotor_rpm": self.rotor["speed"], "connected": True}

    def limits(self):
        """The state's pan/tilt ranges and the simulator's speeds."""
        return {"pan_min": -180.0, "pan_max": 180.0, "tilt_min": -90.0, "tilt_max": 90.0,
                "pan_speed": 60.0, "tilt_speed": 40.0}

    def presets(self):
        """Stored presets as dicts (token, name, pan, tilt)."""
        return [dict(token=t, **p) for t, p in self._presets.items()]

    def set_preset(self, name, token=None):
        """Store the current position; return its token."""
        token = token or "p%d" % (len(self._presets) + 1)
        self._presets[token] = {"name": name, "pan": self.pan, "tilt": self.tilt}
        return token

    def goto_preset(self, token, speed=None):
        """Move to a preset; KeyError for an unknown token."""
        p = self._presets[token]
        return self.absolute_move(p["pan"], p["tilt"], speed)

    def remove_preset(self, token):
        """Forget a preset; KeyError for an unknown token."""
        del self._presets[token]


# -- UDP and multicast in memory -----------------------------------------------------

@implementer(IUDPTransport)
class FakeUDPPort:
    """A UDP port in memory: ``sent`` holds ``(datagram, addr)``, and a destination a real
    socket's ``sendto()`` would refuse raises as it would."""

    def __init__(self, port, protocol=None, interface=""):
        self.port = port
        self.interface = interface
        self.protocol = protocol
        self.sent = []
        self.broadcast = False
        self.listening = True
        if protocol is not None:
            protocol.makeConnection(self)

    def write(self, packet, addr=None):
        """Record ``packet``; a port out of range or a host that is no IP address raises."""
        host, port = addr
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise OverflowError("getsockaddrarg: port must be 0-65535.")
        ipaddress.ip_address(host)
        self.sent.append((packet, addr))

    def connect(self, host, port):
        """Never used by the daemon's UDP ports."""
        raise NotImplementedError("the fake UDP port is never connected")

    def getHost(self):
        """The bound address."""
        return IPv4Address("UDP", self.interface or "127.0.0.1", self.port)

    def stopListening(self):
        """Close; the protocol is told."""
        if self.listening:
            self.listening = False
            if self.protocol is not None:
                self.protocol.doStop()
        return defer.succeed(None)

    def setBroadcastAllowed(self, enabled):
        """Remembered."""
        self.broadcast = bool(enabled)

    def getBroadcastAllowed(self):
        """As set."""
        return self.broadcast


@implementer(IMulticastTransport)
class FakeMulticastTransport(FakeUDPPort):
    """A multicast UDP port in memory.

    ``written`` holds ``(datagram, addr, outgoing_interface)``; ``groups``
    the joined ``(group, interface)`` pairs. Interfaces listed in
    ``refuse_join`` fail to join, as an interface without multicast would.
    """

    def __init__(self, protocol, port, interface=""):
        super().__init__(port, interface=interface)
        self.protocol = protocol  # connected by the reactor that made it
        self.written = []
        self.groups = set()
        self.refuse_join = set()
        self.outgoing = "0.0.0.0"
        self.loopback = 1
        self.ttl = 1

    def write(self, packet, addr=None):
        """Record ``packet`` with the outgoing interface of the moment."""
        if not self.listening:
            raise RuntimeError("write on a closed port")
        self.written.append((packet, addr, self.outgoing))

    def getHost(self):
        """The bound address (every interface unless one was given)."""
        return IPv4Address("UDP", self.interface or "0.0.0.0", self.port)

    def setBroadcastAllowed(self, enabled):
        """Remembered."""
        self.broadcast = bool(enabled)

    def getBroadcastAllowed(self):
        """As set."""
        return self.broadcast

    def getOutgoingInterface(self):
        """As set."""
        return self.outgoing

    def setOutgoingInterface(self, addr):
        """Remembered; later writes are recorded with it."""
        self.outgoing = addr
        return defer.succeed(1)

    def getLoopbackMode(self):
        """As set."""
        return self.loopback

    def setLoopbackMode(self, mode):
        """Remembered."""
        self.loopback = mode

    def getTTL(self):
        """As set."""
        return self.ttl

    def setTTL(self, ttl):
        """Remembered."""
        self.ttl = ttl

    def joinGroup(self, addr, interface=""):
        """Join, unless ``interface`` is in :attr:`refuse_join`."""
        if interface in self.refuse_join:
            return defer.fail(MulticastJoinError(addr, interface))
        self.groups.add((addr, interface))
        return defer.succeed(1)

    def leaveGroup(self, addr, interface=""):
        """Leave."""
        self.groups.discard((addr, interface))
        return defer.succeed(None)

    def take(self):
        """Return and forget everything written so far."""
        written, self.written = self.written, []
        return written


@implementer(IReactorUDP, IReactorMulticast)
class FakeUDPReactor(Clock):
    """A ``task.Clock`` that listens on UDP (:class:`FakeUDPPort`) and multicast
    (:class:`FakeMulticastTransport`) in memory; ``ports`` lists every port handed out."""

    def __init__(self):
        super().__init__()
        self.ports = []

    def listenUDP(self, port, protocol, interface="", maxPacketSize=8192):
        """A :class:`FakeUDPPort`, connected to ``protocol``."""
        transport = FakeUDPPort(port, protocol, interface)
        self.ports.append(transport)
        return transport

    def listenMulticast(self, port, protocol, interface="", maxPacketSize=8192,
                        listenMultiple=False):
        """A :class:`FakeMulticastTransport`, connected to ``protocol``."""
        transport = FakeMulticastTransport(protocol, port, interface)
        protocol.makeConnection(transport)
        self.ports.append(transport)
        return transport


FakeMulticastReactor = FakeUDPReactor
"""The name the WS-Discovery tests know it by: the same reactor, multicast included."""
