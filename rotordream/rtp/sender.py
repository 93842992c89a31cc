"""The RTP sender: encode once, packetize once, one packet stream per video stream for all.

A :class:`StreamFanout` subscribes to a StreamHub while it has clients,
turns each access unit into RTP packets exactly once (one SSRC and one
sequence space per stream) and hands the same bytes to every target. It
keeps the packets of the current GOP so a new client starts at a keyframe
immediately.

Targets are where one session's packets go: :class:`UdpTarget` (the
server's shared UDP sockets, runs of equal-size packets batched into one GSO
send by :mod:`rotordream.rtp.udp`) and :class:`TcpTarget` (interleaved on an
RTSP connection). No I/O of its own: targets write through what they are
given (a datagram port, or ``write``/``backlog`` functions of a TCP
transport), and timers run on the clock passed in, so RTSP live streams and
recording playback share it without depending on RTSP.

A new UDP target gets the cached GOP at a bounded byte rate
(:class:`CatchUp`): sent at once it is a burst of up to a second of video,
more than a default UDP receive buffer holds. TCP has flow control and a
per-client queue limit, so TCP targets get it at once.
"""

import collections
import random
import socket
import struct

from rotordream.rtp import udp
from rotordream.rtp.clock import ntp_timestamp, rtp_time
from rotordream.rtp.h264 import payloads
from rotordream.rtp.packet import Bye, SenderReport, rtp_header, sdes_cname

PAYLOAD_TYPE = 96


def payload_octets(packets):
    """RTP payload bytes of ``packets`` (12-byte headers, no CSRCs or extensions)."""
    return sum(len(p) - 12 for p in packets)


class Target:
    """Where one session's RTP goes; counts what it was sent (for RTCP SR)."""

    paced = False  # whether a new target's catch-up GOP is sent at a bounded rate

    def __init__(self):
        self.packets = 0
        self.octets = 0
        self.dropped_units = 0
        self.last = None  # (capture_time, rtp timestamp) of the last unit sent
        self.loss = None
        self.jitter = None

    def deliver(self, au, timestamp, packets, octets=None):
        """Send one access unit's packets (``octets``: their payload bytes, when known)."""
        self.send_packets(packets)
        self.count(au, timestamp, packets, octets)

    def deliver_all(self, units):
        """Send ``units``, ``[(au, timestamp, packets, octets)]`` (a cached GOP), in order."""
        for au, ts, packets, octets in units:
            self.deliver(au, ts, packets, octets)

    def count(self, au, timestamp, packets, octets=None):
        """Add one access unit's ``packets``, once all were sent, to the SR counters."""
        self.packets += len(packets)
        self.octets += payload_octets(packets) if octets is None else octets
        self.last = (au.capture_time, timestamp)

    def sender_report(self, ssrc, cname):
        """A compound RTCP SR + SDES mapping capture wall time to RTP time, or None yet."""
        if self.last is None:
            return None
        wall, ts = self.last
        return bytes(SenderReport(ssrc, ntp_timestamp(wall), ts, self.packets, self.octets)) + \
            sdes_cname(ssrc, cname)


class UdpTarget(Target):
    """RTP/RTCP to a client's UDP port pair from the server's shared sockets."""

    transport_name = "udp"
    paced = True

    def __init__(self, rtp_port, rtcp_port, host, client_rtp, client_rtcp):
        super().__init__()
        self.rtp_port = rtp_port
        self.rtcp_port = rtcp_port
        self.rtp_addr = (host, client_rtp)
        self.rtcp_addr = (host, client_rtcp)

    def send_packets(self, packets):
        transport = self.rtp_port.transport
        sock = getattr(transport, "socket", None)  # a Twisted UDP port's socket object
        if sock is not None:
            udp.send(sock, packets, self.rtp_addr)
            return
        write = transport.write
        addr = self.rtp_addr
        for p in packets:
            try:
                write(p, addr)
            except OSError:
                pass  # ICMP errors from a closed client port: the reaper ends the session

    def send_rtcp(self, data):
        try:
            self.rtcp_port.transport.write(data, self.rtcp_addr)
        except OSError:
            pass


class TcpTarget(Target):
    """RTP/RTCP interleaved on the RTSP connection, one write per access unit.

    When the connection's unsent bytes pass ``limit`` the client is too slow:
    units are skipped until the next keyframe (counted), so it never stalls
    the others nor grows memory without bound.
    """

    transport_name = "tcp"

    def __init__(self, write, backlog, rtp_channel, rtcp_channel, limit):
        """``write(bytes)`` sends on the connection; ``backlog()`` is its unsent byte count."""
        super().__init__()
        self.write = write
        self.backlog = backlog
        self.rtp_channel = rtp_channel
        self.rtcp_channel = rtcp_channel
        self.limit = limit
        self.waiting_for_keyframe = False

    def deliver(self, au, timestamp, packets, octets=None):
        if self.waiting_for_keyframe and not au.keyframe:
            self.dropped_units += 1
            return
        if self.backlog() > self.limit:
            self._skip()
            return
        self.waiting_for_keyframe = False
        super().deliver(au, timestamp, packets, octets)

    def deliver_all(self, units):
        """The cached GOP in one write: one system call for the lot, not one per unit.

        What would take the connection's queue past ``limit`` is left out, as one
        unit at a time would be, and the target waits for the next keyframe.
        """
        room = self.limit - self.backlog()
        chunks = []
        for au, ts, packets, octets in units:
            if room < 0:
                self._skip()
                continue
            chunks.append(self._framed(packets))
            room -= len(chunks[-1])
        if chunks:
            self.write(chunks)
        for au, ts, packets, octets in units[:len(chunks)]:
            self.count(au, ts, packets, octets)

    def _skip(self):
        # The connection's queue is past its limit: this unit is left out, and the ones
        # after it until the next keyframe.
        self.waiting_for_keyframe = True
        self.dropped_units += 1

    def _framed(self, packets):
        if isinstance(packets, udp.Packets):
            return packets.framed(self.rtp_channel)   # built once for every viewer
        return udp.interleave(packets, self.rtp_channel)

    def send_packets(self, packets):
        self.write(self._framed(packets))

    def send_rtcp(self, data):
        self.write(udp.interleave([data], self.rtcp_channel))


class RtpSource:
    """One RTP sender: its SSRC, sequence space and timestamp base, packetizing once."""

    def __init__(self, name, mtu):
        self.name = name
        self.mtu = mtu
        self.ssrc = random.getrandbits(32)
        self.seq = random.getrandbits(16)
        self.ts_base = random.getrandbits(32)
        self.cname = "rotordream-%s@%s" % (name, socket.gethostname())

    def _packetize(self, nals, pts):
        ts = rtp_time(self.ts_base, pts)
        parts = payloads(nals, self.mtu)
        packets = udp.Packets()
        last = len(parts) - 1
        for i, payload in enumerate(parts):
            packets.append(rtp_header(PAYLOAD_TYPE, self.seq, ts, self.ssrc, i == last) + payload)
            self.seq = (self.seq + 1) & 0xFFFF
        return ts, packets

    def bye(self, target=None):
        """A compound RTCP SR (when ``target`` was sent anything) + BYE for this SSRC.

        A lone BYE is 8 bytes and FFmpeg ignores RTCP shorter than 12, so the
        report goes first as RFC 3550 asks of every compound packet.
        """
        report = target.sender_report(self.ssrc, self.cname) if target is not None else None
        return (report or b"") + bytes(Bye([self.ssrc]))


class CatchUp:
    """A new target's way from the cached GOP's keyframe to live delivery, at ``rate`` bytes/s.

    The cached units go out in bursts of at most ``burst`` bytes on ``clock``;
    live units arriving meanwhile are queued behind them and sent in order, so
    the target joins live delivery with no gap and no duplicate. Should the
    backlog ahead of a newer keyframe reach ``max_lag`` seconds of sending,
    it is skipped (counted in ``dropped_units``): a rate below the stream's
    bitrate still ends, at a keyframe.
    """

    def __init__(self, target, units, rate, clock, joined, burst=32768, max_lag=1.0):
        """``units`` are ``(au, timestamp, packets, octets)`` from a keyframe on;
        ``joined(catch_up)`` is called once the queue is empty."""
        self.target = target
        self.rate = float(rate)
        self.clock = clock
        self.joined = joined
        self.burst = burst
        self.max_lag = max_lag
        self.queue = collections.deque(units)
        self.octets = sum(u[3] for u in self.queue)  # payload bytes queued, kept as it changes
        self.done = 0  # packets of queue[0] already sent
        self.credit = float(burst)
        self.stamp = clock.seconds()
        self.call = None

    def queued(self, unit):
        """A live unit: queue it behind the catch-up; a keyframe may cut the backlog short."""
        ahead = self.octets
        self.queue.append(unit)
        self.octets += unit[3]
        if unit[0].keyframe and len(self.queue) > 1 and ahead > self.rate * self.max_lag:
            keep = [self.queue[0]] if self.done else []  # finish the unit begun
            self.target.dropped_units += len(self.queue) - 1 - len(keep)
            self.queue = collections.deque(keep + [unit])
            self.octets = sum(u[3] for u in self.queue)

    def pump(self):
        """Send what the rate allows now; schedule the rest or join live delivery."""
        self.call = None
        now = self.clock.seconds()
        self.credit = min(float(self.burst), self.credit + (now - self.stamp) * self.rate)
        self.stamp = now
        target, queue = self.target, self.queue
        while queue and self.credit > 0:
            au, ts, packets, octets = queue[0]
            start = stop = self.done
            credit = self.credit
            while stop < len(packets) and credit > 0:
                credit -= len(packets[stop])
                stop += 1
            self.credit = credit
            target.send_packets(packets if start == 0 and stop == len(packets)
                                else packets[start:stop])
            if stop == len(packets):
                target.count(au, ts, packets, octets)
                queue.popleft()
                self.octets -= octets
                self.done = 0
            else:
                self.done = stop
        if not queue:
            self.joined(self)
            return
        # Wait for a whole burst's credit, or for what is left when that is less.
        left = self.octets - sum(len(p) - 12 for p in queue[0][2][:self.done])
        want = min(float(self.burst), float(left))
        self.call = self.clock.callLater(max(0.0, want - self.credit) / self.rate, self.pump)

    def cancel(self):
        """Stop: the target left before it caught up."""
        if self.call is not None and self.call.active():
            self.call.cancel()
        self.call = None
        self.queue.clear()
        self.octets = 0


class StreamFanout(RtpSource):
    """One live stream's RTP: packetized once, sent to every playing target.

    With a ``clock`` and a ``catchup_rate`` (bytes/s), targets that ask for it
    (UDP) get the cached GOP through a :class:`CatchUp`, at that rate or at
    twice the stream's measured bitrate if that is more (a catch-up slower
    than the stream would never end); without, at once.
    """

    def __init__(self, name, hub, mtu, clock=None, catchup_rate=0):
        super().__init__(name, mtu)
        self.hub = hub
        self.clock = clock
        self.catchup_rate = catchup_rate
        self.targets = []
        self.catching_up = {}  # target -> CatchUp
        self.gop = []  # [(au, timestamp, packets, octets)] since the last keyframe
        self._sub = None
        self.units = 0

    def _on_unit(self, au):
        ts, packets = self._packetize(au.nals, au.pts)
        octets = payload_octets(packets)  # once, not per target
        unit = (au, ts, packets, octets)
        self.units += 1
        if au.keyframe:
            self.gop = [unit]
        elif self.gop:
            self.gop.append(unit)
        for target in list(self.targets):
            target.deliver(au, ts, packets, octets)
        for catch_up in list(self.catching_up.values()):
            catch_up.queued(unit)

    def start_info(self):
        """(seq, rtptime) of the first packet a new target will get."""
        if self.gop:
            return (struct.unpack("!H", self.gop[0][2][0][2:4])[0], self.gop[0][1])
        latest = self.hub.latest
        return (self.seq, rtp_time(self.ts_base, latest.pts if latest else 0))

    def add(self, target):
        """Start sending to ``target``, from the cached GOP's keyframe."""
        if self._sub is None:
            self._sub = self.hub.subscribe(self._on_unit, replay=True)
        if target.paced and self.clock is not None and self.catchup_rate > 0 and self.gop:
            rate = max(self.catchup_rate, self.hub.bitrate / 4)  # bit/s * 2 / 8
            catch_up = CatchUp(target, self.gop, rate, self.clock, self._caught_up)
            self.catching_up[target] = catch_up
            catch_up.pump()
            return
        target.deliver_all(self.gop)
        self.targets.append(target)

    def _caught_up(self, catch_up):
        if self.catching_up.pop(catch_up.target, None) is catch_up:
            self.targets.append(catch_up.target)

    def remove(self, target):
        """Stop sending to ``target``; unsubscribe from the hub after the last one."""
        if target in self.targets:
            self.targets.remove(target)
        catch_up = self.catching_up.pop(target, None)
        if catch_up is not None:
            catch_up.cancel()
        if not self.targets and not self.catching_up and self._sub is not None:
            self._sub.cancel()
            self._sub = None
            self.gop = []
