"""Batched UDP sends: a run of equal-size RTP packets in one ``sendmsg`` (Linux UDP GSO).

With a ``UDP_SEGMENT`` control message the kernel cuts one buffer into
datagrams of the given size (the last may be shorter), so the FU-A
fragments of a NAL, which are all the same size, leave in one system call
instead of one ``sendto`` each. :func:`gso_runs` is the pure grouping rule;
:class:`Packets` joins one access unit's runs once for every viewer (and
frames them once for RTSP over TCP, :func:`interleave`);
:func:`send` is the system-call wrapper, which falls back to ``sendto`` on
a socket where the kernel refuses GSO and remembers that.
"""

import errno
import struct
import sys
import weakref

SOL_UDP = 17
UDP_SEGMENT = 103  # linux/udp.h; Python's socket module has no name for it
MAX_SEGMENTS = 64  # UDP_MAX_SEGMENTS of older kernels (128 since Linux 6.x)
MAX_BYTES = 65507  # one IPv4 UDP datagram's payload: 65535 - 20 (IP) - 8 (UDP)

# What the kernel answers when GSO cannot be used on a socket or route: EIO (no
# checksum offload on the device), EINVAL (segment larger than the path MTU, or
# checksums off), ENOPROTOOPT/EOPNOTSUPP (a kernel without UDP_SEGMENT).
_REFUSED = frozenset({errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP})

_no_gso = weakref.WeakSet()  # sockets on which the kernel refused GSO once
_segment_size = struct.Struct("=H")


def gso_runs(sizes, max_segments=MAX_SEGMENTS, max_bytes=MAX_BYTES):
    """Group datagram ``sizes`` (in send order) into runs that one GSO send can carry.

    Returns ``[(start, stop, segment_size)]`` covering every index in order. A
    run is packets of one size, optionally ended by one shorter packet (the
    kernel allows a short last segment), of at most ``max_segments`` packets
    and ``max_bytes`` bytes. A run of one packet is a plain datagram.
    """
    runs = []
    n = len(sizes)
    i = 0
    while i < n:
        seg = sizes[i]
        total = seg
        j = i + 1
        while j < n and j - i < max_segments and sizes[j] == seg and total + seg <= max_bytes:
            total += seg
            j += 1
        if j < n and j - i < max_segments and sizes[j] < seg and total + sizes[j] <= max_bytes:
            j += 1  # the short tail of a NAL goes with its fragments
        runs.append((i, j, seg))
        i = j
    return runs


class Packets(list):
    """One access unit's RTP packets, and what every viewer is sent built from them once
    and shared: their GSO runs joined (UDP), their interleaved chunk (RTSP over TCP).

    (``sendmsg`` also takes the packets as a list of buffers and gathers them, but
    that measured 0.15-0.3 µs a packet more per send than one joined buffer.)
    """

    __slots__ = ("_runs", "_framed")

    def __init__(self, packets=()):
        super().__init__(packets)
        self._runs = None
        self._framed = None

    def runs(self):
        """``[(buffer, segment_size, count)]``: each run of :func:`gso_runs` joined."""
        if self._runs is None:
            self._runs = joined_runs(self)
        return self._runs

    def framed(self, channel):
        """The packets as one interleaved chunk on ``channel`` (RFC 2326 10.12)."""
        if self._framed is None or self._framed[0] != channel:
            # One channel in practice (every client asks for 0-1): the last one is kept.
            self._framed = (channel, interleave(self, channel))
        return self._framed[1]


_INTERLEAVED = struct.Struct("!cBH")  # RFC 2326 10.12: "$", channel, length


def interleave(packets, channel):
    """``packets`` each behind its RFC 2326 10.12 header ("$", ``channel``, length)."""
    head = _INTERLEAVED.pack
    return b"".join(head(b"$", channel, len(p)) + p for p in packets)


def joined_runs(packets):
    """``packets`` as ``[(buffer, segment_size, count)]``, one entry per GSO send."""
    return [(packets[a] if b - a == 1 else b"".join(packets[a:b]), seg, b - a)
            for a, b, seg in gso_runs([len(p) for p in packets])]


def gso_supported(sock):
    """Whether GSO sends are still tried on ``sock`` (Linux, and never refused there)."""
    return sys.platform.startswith("linux") and sock not in _no_gso


def send(sock, packets, addr):
    """Send ``packets`` (a list, or :class:`Packets` for shared runs) to ``addr`` on ``sock``.

    Runs of equal-size packets go out in one GSO ``sendmsg`` each. If the kernel
    refuses GSO (and a plain ``sendto`` of the run's first packet works, so the
    destination is not what it refused) the rest is sent packet by packet and the
    socket is remembered as one without GSO. Other errors (a full buffer, an ICMP error from a
    closed client port) drop the run, as a lone ``sendto`` would drop its packet.
    Returns the number of system calls made.
    """
    if not gso_supported(sock):
        return _send_each(sock, packets, addr)
    runs = packets.runs() if isinstance(packets, Packets) else joined_runs(packets)
    calls = 0
    for i, (buf, seg, count) in enumerate(runs):
        calls += 1
        try:
            if count == 1:
                sock.sendto(buf, addr)
            else:
                sock.sendmsg([buf], [(SOL_UDP, UDP_SEGMENT, _segment_size.pack(seg))], 0, addr)
        except OSError as e:
            if count > 1 and e.errno in _REFUSED:
                rest = _segments(runs[i:])
                try:
                    sock.sendto(rest[0], addr)
                except OSError:
                    continue  # the destination is refused, not GSO: drop the run
                _no_gso.add(sock)
                return calls + 1 + _send_each(sock, rest[1:], addr)
    return calls


def _segments(runs):
    """The single datagrams of joined ``runs``."""
    out = []
    for buf, seg, count in runs:
        if count == 1:
            out.append(buf)
        else:
            out.extend(buf[k:k + seg] for k in range(0, len(buf), seg))
    return out


def _send_each(sock, packets, addr):
    for p in packets:
        try:
            sock.sendto(p, addr)
        except OSError:
            pass  # as Twisted's port would: the session's reaper notices a client gone
    return len(packets)
