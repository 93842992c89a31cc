"""What the host itself says about its network and clock (Linux), read without blocking I/O.

Shared by the Device service and WS-Discovery (MAC scope, endpoint UUID).
Every reader tolerates a missing file and returns an empty answer.
"""

import ctypes
import fcntl
import json
import os
import socket
import struct
import time
import uuid

from rotordream.fsutil import atomic_write

ENDPOINT_FILE = "endpoint-uuid"
_SIOCGIFADDR = 0x8915
_SIOCGIFNETMASK = 0x891B


def endpoint_uuid(state_dir):
    """The device's stable ``urn:uuid:...``: WS-Discovery's endpoint address.

    Read from the discovery identity file; created there (once) if discovery
    has never run, so GetEndpointReference and ProbeMatches always agree.
    """
    try:
        from rotordream.discovery import identity
    except ImportError:
        identity = None
    if identity is not None:
        try:
            with open(os.path.join(state_dir, identity.IDENTITY_FILE), "rb") as f:
                address = json.loads(f.read())["address"]
            return "urn:uuid:" + str(uuid.UUID(address[len("urn:uuid:"):]))
        except (OSError, ValueError, KeyError, TypeError):
            return identity.load(state_dir).address
    path = os.path.join(state_dir, ENDPOINT_FILE)
    try:
        with open(path) as f:
            value = str(uuid.UUID(f.read().strip()))
    except (OSError, ValueError):
        value = str(uuid.uuid4())
        atomic_write(path, (value + "\n").encode(), mode=0o644)
    return "urn:uuid:" + value


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _ioctl_addr(name, request):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            raw = fcntl.ioctl(s.fileno(), request, struct.pack("256s", name.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(raw[20:24])


def interfaces():
    """Network interfaces but loopback: dicts name, mac, mtu, up, ipv4, prefix."""
    out = []
    try:
        names = sorted(os.listdir("/sys/class/net"))
    except OSError:
        return out
    for name in names:
        base = "/sys/class/net/" + name
        if name == "lo" or _read(base + "/type") == "772":
            continue
        mac = _read(base + "/address") or "00:00:00:00:00:00"
        mtu = _read(base + "/mtu")
        ipv4 = _ioctl_addr(name, _SIOCGIFADDR)
        mask = _ioctl_addr(name, _SIOCGIFNETMASK)
        prefix = bin(struct.unpack(">I", socket.inet_aton(mask))[0]).count("1") if mask else 0
        out.append({"name": name, "mac": mac, "mtu": int(mtu) if mtu and mtu.isdigit() else 1500,
                    "up": (_read(base + "/operstate") or "down") in ("up", "unknown"),
                    "ipv4": ipv4, "prefix": prefix})
    return out


def primary_mac():
    """The MAC of the first non-loopback interface (for serial numbers and scopes)."""
    for iface in interfaces():
        if iface["mac"] and iface["mac"] != "00:00:00:00:00:00":
            return iface["mac"]
    return "%012x" % uuid.getnode()


def default_gateways():
    """IPv4 default gateways from /proc/net/route."""
    text = _read("/proc/net/route") or ""
    out = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 2 and fields[1] == "00000000":
            gw = socket.inet_ntoa(struct.pack("<I", int(fields[2], 16)))
            if gw != "0.0.0.0" and gw not in out:
                out.append(gw)
    return out


def dns():
    """(nameservers, search domains) from /etc/resolv.conf."""
    servers, search = [], []
    for line in (_read("/etc/resolv.conf") or "").splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            servers.append(fields[1])
        elif fields and fields[0] in ("search", "domain"):
            search.extend(fields[1:])
    return servers, search


def ntp_servers():
    """NTP servers named in timesyncd, chrony or ntpd configuration."""
    out = []
    for path in ("/etc/systemd/timesyncd.conf", "/etc/chrony/chrony.conf", "/etc/chrony.conf",
                 "/etc/ntp.conf", "/etc/ntpsec/ntp.conf"):
        for line in (_read(path) or "").splitlines():
            line = line.strip()
            if line.startswith("NTP="):
                out.extend(line[4:].split())
            elif line.split()[:1] in (["server"], ["pool"]):
                out.append(line.split()[1])
    return list(dict.fromkeys(out))


class _Timex(ctypes.Structure):
    # Only the leading fields matter; the kernel writes the whole struct, so pad generously.
    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long),
                ("status", ctypes.c_int), ("pad", ctypes.c_byte * 256)]


def clock_synchronized():
    """True when the kernel says the clock is NTP-synchronised (adjtimex != TIME_ERROR)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        tx = _Timex()
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return False
    return 0 <= state < 5  # 5 is TIME_ERROR: not synchronised


def posix_tz():
    """The local zone as a POSIX TZ string (e.g. ``UTC0``, ``CET-1CEST``)."""
    std, dst = time.tzname
    offset = time.timezone
    sign = "-" if offset < 0 else ""
    hours, rem = divmod(abs(offset), 3600)
    tz = "%s%s%d" % (std if std.isalpha() and len(std) >= 3 else "UTC", sign, hours)
    if rem:
        tz += ":%02d" % (rem // 60)
    if time.daylight and dst and dst.isalpha() and len(dst) >= 3:
        tz += dst
    return tz
