"""The thin Twisted adapter: datagrams in, parsed WS-Discovery messages out to a receiver.

:class:`PacketInfoMulticastPort` is Twisted's multicast port that also
reads ``IP_PKTINFO``, so the receiver learns which interface a Probe came
in on and can answer with that interface's address.
"""

import errno
import socket
import struct
from dataclasses import dataclass

from twisted.internet import udp
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from twisted.python import log as legacy_log

from rotordream.discovery import message

log = Logger()

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Linux value; Python < 3.13 lacks the name
_PKTINFO = struct.Struct("=I4s4s")             # struct in_pktinfo
_IGNORE = getattr(udp, "_sockErrReadIgnore", [errno.EAGAIN, errno.EINTR, errno.EWOULDBLOCK])
_REFUSED = getattr(udp, "_sockErrReadRefuse", [errno.ECONNREFUSED])


@dataclass(frozen=True)
class PacketInfo:
    """Where a datagram arrived: interface index, our local address, its destination address."""

    ifindex: int
    local: str
    destination: str

    @property
    def multicast(self):
        """True when the datagram was sent to a multicast group."""
        return 224 <= int(self.destination.split(".")[0]) <= 239


class DiscoveryProtocol(DatagramProtocol):
    """Parses each datagram and calls ``receiver.message_received(msg, addr, info)``.

    Anything that is not a WS-Discovery message is dropped here: a
    multicast group hears all kinds of traffic, and none of it deserves a
    reply or more than a debug line.
    """

    def __init__(self, receiver):
        self.receiver = receiver

    def datagramReceived(self, datagram, addr, info=None):
        """Parse ``datagram`` from ``addr``; ``info`` is a :class:`PacketInfo` when known."""
        try:
            msg = message.parse(datagram)
        except message.DiscoveryError as e:
            log.debug("ignoring datagram from {addr}: {why}", addr=addr, why=e)
            return
        self.receiver.message_received(msg, addr, info)


def parse_pktinfo(ancdata):
    """The :class:`PacketInfo` in ``recvmsg`` ancillary data, or None."""
    for level, kind, data in ancdata:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= _PKTINFO.size:
            ifindex, spec_dst, addr = _PKTINFO.unpack(data[:_PKTINFO.size])
            return PacketInfo(ifindex, socket.inet_ntoa(spec_dst), socket.inet_ntoa(addr))
    return None


class PacketInfoMulticastPort(udp.MulticastPort):
    """A multicast UDP port passing each datagram's :class:`PacketInfo` to the protocol.

    Twisted reads with ``recvfrom``, which drops the arrival interface; the
    same loop here uses ``recvmsg`` with ``IP_PKTINFO`` on.
    """

    _ancillary = socket.CMSG_SPACE(_PKTINFO.size)

    def createInternetSocket(self):
        skt = super().createInternetSocket()
        skt.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        return skt

    def doRead(self):
        read = 0
        while read < self.maxThroughput:
            try:
                data, ancdata, _flags, addr = self.socket.recvmsg(self.maxPacketSize,
                                                                  self._ancillary)
            except OSError as se:
                if se.args[0] in _IGNORE or se.args[0] in _REFUSED:
                    return
                raise
            read += len(data)
            try:
                self.protocol.datagramReceived(data, addr[:2], parse_pktinfo(ancdata))
            except BaseException:
                legacy_log.err()
