"""Multicast RTP: one target per stream joined to its StreamFanout while anyone holds it.

A stream's multicast target (:class:`MulticastTarget`) sends every packet
once to the stream's group (transport.Group), whatever the number of
viewers. It joins the stream's fan-out when its first *holder* arrives (an
RTSP session that PLAYs with ``RTP/AVP;multicast``, or ONVIF
StartMulticastStreaming) and leaves when the last one goes; meanwhile an
RTCP SR goes to the group's port + 1 every ``sr_interval`` seconds, and an
SR + BYE when it leaves.

A session's own ``target`` is a :class:`MulticastView` of the shared target:
it reports what the group got while that session held it and never sends
RTP itself (so a viewer's TEARDOWN says no BYE to the others).

Receivers send their RTCP to the group, not to the server: multicast
sessions are kept alive by their RTSP requests (FFmpeg and GStreamer send
keep-alives by themselves).
"""

import socket

from twisted.internet import protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from rotordream.rtp.sender import UdpTarget

log = Logger()

ONVIF = "onvif"   # the holder name of ONVIF StartMulticastStreaming


class MulticastTarget(UdpTarget):
    """RTP to a stream's group and RTCP to its port + 1, from the multicast socket."""

    transport_name = "multicast"

    def __init__(self, port, group):
        """``port`` is the datagram protocol of the multicast socket; ``group`` a Group."""
        super().__init__(port, port, group.address, group.port, group.port + 1)
        self.group = group


class MulticastView:
    """A session's view of its stream's shared :class:`MulticastTarget` (sends nothing)."""

    transport_name = "multicast"
    dropped_units = 0

    def __init__(self, shared):
        self.shared = shared
        self.group = shared.group
        self.loss = None
        self.jitter = None
        self._held = 0      # packets counted in holds that ended
        self._since = None  # the shared count when the current hold began

    @property
    def packets(self):
        """RTP packets the group got while this session held it."""
        now = self.shared.packets - self._since if self._since is not None else 0
        return self._held + now

    def held(self):
        """The session started holding the group (PLAY)."""
        self._since = self.shared.packets

    def released(self):
        """The session stopped holding the group (PAUSE, TEARDOWN)."""
        if self._since is not None:
            self._held += self.shared.packets - self._since
            self._since = None

    def sender_report(self, ssrc, cname):
        """The shared target's report (for a BYE compound)."""
        return self.shared.sender_report(ssrc, cname)

    def send_rtcp(self, data):
        """Nothing: the group's RTCP is the shared target's."""


class SocketPort(protocol.DatagramProtocol):
    """The multicast sending socket's protocol; what arrives on it is ignored."""

    def datagramReceived(self, data, addr):
        pass


def configure_socket(sock, ttl, interface=""):
    """IP_MULTICAST_TTL ``ttl``, loopback on, and the outgoing ``interface`` address if set."""
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    if interface:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface))


class MulticastGroups:
    """The multicast targets of every stream that has a group, and who holds each."""

    def __init__(self, fanouts, groups, port, clock, sr_interval=5.0):
        """``fanouts`` and ``groups`` by stream; ``port`` the sending socket's protocol."""
        self.fanouts = fanouts
        self.groups = dict(groups)
        self.clock = clock
        self.sr_interval = sr_interval
        self.targets = {name: MulticastTarget(port, g) for name, g in self.groups.items()}
        self.holders = {name: set() for name in self.groups}
        self._sr_loops = {}

    @property
    def packets(self):
        """RTP packets sent to all groups, each counted once however many receive it."""
        return sum(t.packets for t in self.targets.values())

    def view(self, stream):
        """A new :class:`MulticastView` for a session of ``stream``."""
        return MulticastView(self.targets[stream])

    def sending(self, stream):
        """Is ``stream``'s group being sent to?"""
        return bool(self.holders.get(stream))

    def hold(self, stream, holder):
        """``holder`` wants ``stream`` on its group; the first one joins the fan-out."""
        holders = self.holders[stream]
        first = not holders
        holders.add(holder)
        if not first:
            return
        target = self.targets[stream]
        fanout = self.fanouts[stream]
        log.info("multicast of {stream} to {group}:{port} starts", event="rtsp_multicast",
                 stream=stream, group=target.group.address, port=target.group.port)
        fanout.add(target)
        self._send_sr(stream)
        loop = self._sr_loops[stream] = LoopingCall(self._send_sr, stream)
        loop.clock = self.clock
        loop.start(self.sr_interval, now=False)

    def release(self, stream, holder):
        """``holder`` is done with ``stream``; the last one leaves the fan-out (SR + BYE)."""
        holders = self.holders.get(stream)
        if not holders or holder not in holders:
            return
        holders.discard(holder)
        if holders:
            return
        target = self.targets[stream]
        fanout = self.fanouts[stream]
        loop = self._sr_loops.pop(stream, None)
        if loop is not None and loop.running:
            loop.stop()
        target.send_rtcp(fanout.bye(target))   # send errors are the target's to swallow
        # The target stays: its counts go on with the fan-out's SSRC (RFC 3550 6.4.1).
        fanout.remove(target)
        log.info("multicast of {stream} stops", event="rtsp_multicast", stream=stream)

    def release_all(self):
        """Stop every group (server stop)."""
        for stream, holders in self.holders.items():
            for holder in list(holders):
                self.release(stream, holder)

    def _send_sr(self, stream):
        target = self.targets[stream]
        fanout = self.fanouts[stream]
        report = target.sender_report(fanout.ssrc, fanout.cname)
        if report is not None:
            target.send_rtcp(report)
