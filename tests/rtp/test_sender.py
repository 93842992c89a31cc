"""The RTP fan-out on a Clock: a new UDP target's paced catch-up from the cached keyframe,
its join to live delivery, the skip to a newer keyframe, TCP at once, GSO to a port's socket."""

import socket
import struct

import pytest
from twisted.internet.task import Clock

from rotordream.media.hub import AccessUnit, StreamHub
from rotordream.rtp import udp
from rotordream.rtp.sender import StreamFanout, Target, TcpTarget, UdpTarget

SPS, PPS = b"\x67\x42\xc0\x1f\xda", b"\x68\xce\x3c\x80"
MTU = 1000


def au(seq, key, size=None):
    """Unit ``seq``: a keyframe of 20 kB (21 packets) or a P frame of ``size`` (default 2 kB)."""
    nals = (SPS, PPS, b"\x65" + b"k" * 20000) if key else (b"\x41" + b"p" * (size or 2000),)
    return AccessUnit("stream1", seq, nals, key, seq * 3000, 1000.0 + seq / 30, 640, 360, 30,
                      SPS, PPS)


class Recorder(Target):
    """A target that keeps the RTP sequence numbers it was sent, and when."""

    transport_name = "test"

    def __init__(self, clock, paced=True):
        super().__init__()
        self.clock = clock
        self.paced = paced
        self.sent = []  # (time, seq, size)

    def send_packets(self, packets):
        for p in packets:
            self.sent.append((self.clock.seconds(), struct.unpack("!H", p[2:4])[0], len(p)))

    def seqs(self):
        return [s for _, s, _ in self.sent]


def rig(rate=100000, units=10):
    clock = Clock()
    hub = StreamHub("stream1", monotonic=clock.seconds)  # all at one instant: no bitrate yet
    fanout = StreamFanout("stream1", hub, MTU, clock, rate)
    seed = Recorder(clock, paced=False)  # subscribes the fan-out and fills its GOP
    fanout.add(seed)
    for i in range(units):
        hub.publish(au(i, i == 0))
    return clock, hub, fanout, seed


def in_order(seqs):
    return all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:]))


def test_the_cached_gop_goes_out_at_the_rate_from_its_keyframe():
    clock, hub, fanout, seed = rig(rate=100000)
    target = Recorder(clock)
    fanout.add(target)
    gop_bytes = sum(len(p) for _, _, packets, _ in fanout.gop for p in packets)  # ~38 kB
    first = seed.seqs()[0]
    assert target.seqs()[0] == first
    assert sum(size for _, _, size in target.sent) < 34000  # one burst, not the GOP
    assert fanout.catching_up and target not in fanout.targets
    clock.pump([0.01] * 200)
    assert target.seqs() == seed.seqs()
    assert target in fanout.targets and not fanout.catching_up
    # 32 kB at once, the rest at 100 kB/s: done in about 60 ms, not before
    done = target.sent[-1][0]
    assert (gop_bytes - 32768) / 100000 - 0.011 <= done <= (gop_bytes - 32768) / 100000 + 0.02
    assert target.packets == len(seed.sent) and target.last == seed.last


def test_no_second_ever_carries_more_than_the_rate_and_a_burst():
    clock, hub, fanout, seed = rig(rate=50000, units=30)
    target = Recorder(clock)
    fanout.add(target)
    for i in range(30, 60):  # live at 30 fps, 2 kB each: 60 kB/s < the rate
        clock.advance(1 / 30)
        hub.publish(au(i, False))
    clock.pump([0.01] * 300)
    assert target.seqs() == seed.seqs() and in_order(target.seqs())
    times = [t for t, _, _ in target.sent]
    for start in times:
        window = sum(size for t, _, size in target.sent if start <= t < start + 0.1)
        assert window <= 32768 + 0.1 * 50000 + MTU + 12


def test_live_units_arriving_during_the_catch_up_follow_it_without_gap_or_duplicate():
    clock, hub, fanout, seed = rig(rate=40000)
    target = Recorder(clock)
    fanout.add(target)
    for i in range(10, 20):
        clock.advance(0.02)
        hub.publish(au(i, False))
        assert target not in fanout.targets  # still behind: live units wait in its queue
    clock.pump([0.01] * 100)
    assert target in fanout.targets
    hub.publish(au(20, False))
    assert target.seqs() == seed.seqs() and in_order(target.seqs())


def test_a_backlog_past_a_newer_keyframe_skips_to_it():
    # 10 kB/s: the GOP (78 kB) is seconds of sending; a keyframe 0.1 s later ends the backlog
    clock, hub, fanout, seed = rig(rate=10000, units=30)
    target = Recorder(clock)
    fanout.add(target)
    clock.advance(0.1)
    begun = len(target.sent)
    old = list(fanout.gop)
    hub.publish(au(30, True))
    n = len(fanout.gop[0][2])
    clock.pump([0.05] * 200)
    assert target in fanout.targets
    seqs = target.seqs()
    cut = seqs.index(seed.seqs()[-n])
    assert seqs[cut:] == seed.seqs()[-n:] and in_order(seqs[cut:])
    assert seqs[:cut] == seed.seqs()[:cut] and cut >= begun  # the unit begun was finished
    never_sent = [u for u in old if struct.unpack("!H", u[2][0][2:4])[0] not in seqs]
    assert len(never_sent) > 10 and target.dropped_units == len(never_sent)


def test_a_short_backlog_past_a_keyframe_is_sent_not_skipped():
    clock, hub, fanout, seed = rig(rate=100000)
    target = Recorder(clock)
    fanout.add(target)
    hub.publish(au(10, True))
    clock.pump([0.01] * 100)
    assert target.seqs() == seed.seqs() and target.dropped_units == 0


def test_a_target_leaving_while_it_catches_up_stops_and_unsubscribes():
    clock, hub, fanout, seed = rig(rate=10000)
    target = Recorder(clock)
    fanout.add(target)
    sent = len(target.sent)
    fanout.remove(target)
    assert not clock.getDelayedCalls() and not fanout.catching_up
    fanout.remove(seed)
    assert hub.subscribers == 0 and fanout._sub is None
    clock.advance(10)
    assert len(target.sent) == sent


def test_the_catch_up_is_never_slower_than_twice_the_streams_bitrate():
    clock = Clock()
    hub = StreamHub("stream1", monotonic=clock.seconds)
    fanout = StreamFanout("stream1", hub, MTU, clock, 1000)  # 1 kB/s: far below the stream
    seed = Recorder(clock, paced=False)
    fanout.add(seed)
    for i in range(60):  # 2 s at 30 fps: a 20 kB keyframe a second and 2 kB P frames
        hub.publish(au(i, i % 30 == 0))
        clock.advance(1 / 30)
    assert 500000 < hub.bitrate < 700000
    target = Recorder(clock)
    fanout.add(target)
    clock.pump([0.01] * 100)
    assert target.seqs() == seed.seqs()[-len(target.seqs()):] and target in fanout.targets
    done = target.sent[-1][0] - target.sent[0][0]
    gop = sum(len(p) for _, _, packets, _ in fanout.gop for p in packets)
    assert done <= (gop - 32768) / (hub.bitrate / 4) + 0.02


def test_tcp_targets_and_a_rate_of_zero_get_the_gop_at_once():
    clock, hub, fanout, seed = rig(rate=1000)
    frames = []
    tcp = TcpTarget(frames.append, lambda: 0, 0, 1, 1 << 20)
    fanout.add(tcp)
    # One write of the ten cached units' interleaved chunks (one system call), in order.
    [chunks] = frames
    assert chunks == [packets.framed(0) for _, _, packets, _ in fanout.gop]
    assert len(chunks) == 10 and tcp in fanout.targets and tcp.packets == len(seed.seqs())
    fanout.catchup_rate = 0
    target = Recorder(clock)
    fanout.add(target)
    assert target.seqs() == seed.seqs() and not clock.getDelayedCalls()


def test_a_tcp_catch_up_stops_where_the_connection_queue_would_pass_its_limit():
    clock, hub, fanout, seed = rig(rate=1000)
    sizes = [len(packets.framed(0)) for _, _, packets, _ in fanout.gop]
    frames = []
    # Room for the keyframe and the next unit, with 100 bytes already queued.
    limit = 100 + sizes[0] + sizes[1] - 1
    tcp = TcpTarget(frames.append, lambda: 100, 0, 1, limit)
    fanout.add(tcp)
    [chunks] = frames
    assert len(chunks) == 2 and tcp.dropped_units == 8 and tcp.waiting_for_keyframe
    assert tcp.packets == sum(len(p) for _, _, p, _ in fanout.gop[:2])
    hub.publish(au(10, False))           # live P-frames wait for the next keyframe
    assert len(frames) == 1 and tcp.dropped_units == 9


class Port:
    """What UdpTarget reads from a DatagramProtocol: its transport (a Twisted UDP port)."""

    def __init__(self, transport):
        self.transport = transport


class Transport:
    def __init__(self, sock=None):
        if sock is not None:
            self.socket = sock
        self.written = []

    def write(self, data, addr):
        self.written.append((data, addr))


def test_udp_target_sends_runs_on_the_port_socket_and_writes_without_one():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        host, port = rx.getsockname()
        packets = udp.Packets([b"a" * 1012] * 5 + [b"b" * 300])
        UdpTarget(Port(Transport(tx)), Port(Transport()), host, port, port + 1) \
            .send_packets(packets)
        assert [rx.recv(2000) for _ in packets] == list(packets)
    finally:
        tx.close()
        rx.close()
    plain = Transport()
    UdpTarget(Port(plain), Port(Transport()), "127.0.0.1", 5000, 5001).send_packets([b"x", b"y"])
    assert plain.written == [(b"x", ("127.0.0.1", 5000)), (b"y", ("127.0.0.1", 5000))]


@pytest.mark.parametrize("rate", [0, 100000])
def test_packetized_units_are_shared_packets_with_their_runs(rate):
    clock, hub, fanout, seed = rig(rate=rate, units=2)
    packets = fanout.gop[0][2]
    assert isinstance(packets, udp.Packets)
    assert [count for _, _, count in packets.runs()] == [1, 21]  # STAP-A (SPS, PPS), then the FU-A fragments


def test_tcp_viewers_share_one_interleaved_chunk_per_unit():
    clock, hub, fanout, seed = rig(rate=1000)
    a, b, c = [], [], []
    for out, channel in ((a, 0), (b, 0), (c, 2)):
        fanout.add(TcpTarget(out.append, lambda: 0, channel, channel + 1, 1 << 20))
    hub.publish(au(10, False))
    # Every chunk parses back into the unit's packets behind "$", the channel, the length.
    packets = fanout.gop[-1][2]
    for out, channel in ((a, 0), (b, 0), (c, 2)):
        chunk, parsed = out[-1], []
        while chunk:
            magic, ch, size = struct.unpack("!cBH", chunk[:4])
            assert (magic, ch) == (b"$", channel)
            parsed.append(chunk[4:4 + size])
            chunk = chunk[4 + size:]
        assert parsed == list(packets)
    # Built once for the two viewers on channel 0: the same bytes object, not a copy each.
    assert a[-1] is b[-1]
