"""The host's IPv4 interfaces (name, index, address, MAC) and local address lookups.

Linux ioctls, standard library only: the daemon needs no extra
package to know where to announce itself.
"""

import fcntl
import socket
import struct
from dataclasses import dataclass

_SIOCGIFFLAGS = 0x8913
_SIOCGIFADDR = 0x8915
_SIOCGIFHWADDR = 0x8927
_IFF_UP = 0x1
_IFF_LOOPBACK = 0x8
_IFF_MULTICAST = 0x1000


@dataclass(frozen=True)
class Interface:
    """One IPv4 interface: its name, index, primary address and MAC (None if it has none)."""

    name: str
    index: int
    address: str
    mac: str = None
    loopback: bool = False
    multicast: bool = True


def _ioctl(sock, request, name):
    return fcntl.ioctl(sock.fileno(), request, struct.pack("256s", name.encode()[:15]))


def _mac(sock, name):
    # An ioctl, not /sys/class/net: /sys shows the namespace it was mounted in.
    try:
        raw = _ioctl(sock, _SIOCGIFHWADDR, name)[18:24]
    except OSError:
        return None
    mac = ":".join("%02x" % b for b in raw)
    return None if mac == "00:00:00:00:00:00" else mac


def list_interfaces():
    """Every interface that is up and has an IPv4 address, loopback included (flagged)."""
    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for index, name in socket.if_nameindex():
            try:
                flags = struct.unpack("H", _ioctl(sock, _SIOCGIFFLAGS, name)[16:18])[0]
                if not flags & _IFF_UP:
                    continue
                address = socket.inet_ntoa(_ioctl(sock, _SIOCGIFADDR, name)[20:24])
            except OSError:
                continue  # no IPv4 address, or gone meanwhile
            found.append(Interface(name, index, address, _mac(sock, name),
                                   loopback=bool(flags & _IFF_LOOPBACK),
                                   multicast=bool(flags & _IFF_MULTICAST)))
    return found


def select_interfaces(interfaces, names=()):
    """The interfaces to announce on: those named, else every multicast non-loopback one."""
    if names:
        return [i for i in interfaces if i.name in names]
    return [i for i in interfaces if not i.loopback and i.multicast]


def local_address_for(peer):
    """The local IPv4 address the kernel would send from to reach ``peer`` (None if unroutable).

    Connecting a UDP socket sends nothing; it only asks the routing table.
    """
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect((peer, 9))
            return sock.getsockname()[0]
    except OSError:
        return None
