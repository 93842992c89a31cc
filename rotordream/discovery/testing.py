"""Test doubles for multicast UDP: Twisted's MemoryReactor has none.

:class:`FakeMulticastReactor` is a ``task.Clock`` that also listens for
multicast, handing out :class:`FakeMulticastTransport` objects that record
what is written (with the outgoing interface chosen at the time) and which
groups were joined. Tests check both against Twisted's interfaces with
``verifyClass``.
"""

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.error import MulticastJoinError
from twisted.internet.interfaces import IMulticastTransport, IReactorMulticast
from twisted.internet.task import Clock
from zope.interface import implementer


@implementer(IMulticastTransport)
class FakeMulticastTransport:
    """A multicast UDP port in memory.

    ``written`` holds ``(datagram, addr, outgoing_interface)``; ``groups``
    the joined ``(group, interface)`` pairs. Interfaces listed in
    ``refuse_join`` fail to join, as an interface without multicast would.
    """

    def __init__(self, protocol, port, interface=""):
        self.protocol = protocol
        self.port = port
        self.interface = interface
        self.written = []
        self.groups = set()
        self.refuse_join = set()
        self.outgoing = "0.0.0.0"
        self.loopback = 1
        self.ttl = 1
        self.broadcast = False
        self.listening = True

    def write(self, packet, addr=None):
        if not self.listening:
            raise RuntimeError("write on a closed port")
        self.written.append((packet, addr, self.outgoing))

    def connect(self, host, port):
        raise NotImplementedError("a multicast listener is never connected")

    def getHost(self):
        return IPv4Address("UDP", self.interface or "0.0.0.0", self.port)

    def stopListening(self):
        if self.listening:
            self.listening = False
            self.protocol.doStop()
        return defer.succeed(None)

    def setBroadcastAllowed(self, enabled):
        self.broadcast = bool(enabled)

    def getBroadcastAllowed(self):
        return self.broadcast

    def getOutgoingInterface(self):
        return self.outgoing

    def setOutgoingInterface(self, addr):
        self.outgoing = addr
        return defer.succeed(1)

    def getLoopbackMode(self):
        return self.loopback

    def setLoopbackMode(self, mode):
        self.loopback = mode

    def getTTL(self):
        return self.ttl

    def setTTL(self, ttl):
        self.ttl = ttl

    def joinGroup(self, addr, interface=""):
        if interface in self.refuse_join:
            return defer.fail(MulticastJoinError(addr, interface))
        self.groups.add((addr, interface))
        return defer.succeed(1)

    def leaveGroup(self, addr, interface=""):
        self.groups.discard((addr, interface))
        return defer.succeed(None)

    def take(self):
        """Return and forget everything written so far."""
        written, self.written = self.written, []
        return written


@implementer(IReactorMulticast)
class FakeMulticastReactor(Clock):
    """A ``task.Clock`` whose ``listenMulticast`` gives :class:`FakeMulticastTransport` ports."""

    def __init__(self):
        super().__init__()
        self.ports = []

    def listenMulticast(self, port, protocol, interface="", maxPacketSize=8192,
                        listenMultiple=False):
        transport = FakeMulticastTransport(protocol, port, interface)
        protocol.makeConnection(transport)
        self.ports.append(transport)
        return transport
