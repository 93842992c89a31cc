"""Batched UDP sends: the grouping rule, and GSO on real loopback sockets with its fallback."""

import errno
import socket
import sys

import pytest

from rotordream.rtp import udp


def test_fragments_of_one_size_and_their_short_tail_make_one_run():
    assert udp.gso_runs([1412] * 5 + [700]) == [(0, 6, 1412)]


def test_a_longer_packet_starts_a_new_run_and_singles_stay_alone():
    # SPS, PPS, then a NAL in FU-A fragments and a small one: sizes as the packetizer makes them
    sizes = [30, 20, 1412, 1412, 1412, 300, 900]
    assert udp.gso_runs(sizes) == [(0, 2, 30), (2, 6, 1412), (6, 7, 900)]
    assert udp.gso_runs([]) == []
    assert udp.gso_runs([500]) == [(0, 1, 500)]


def test_equal_packets_of_several_nals_share_a_run():
    assert udp.gso_runs([1000, 1000, 1000, 1000]) == [(0, 4, 1000)]


def test_runs_respect_the_segment_and_byte_limits():
    assert udp.gso_runs([100] * 150) == [(0, 64, 100), (64, 128, 100), (128, 150, 100)]
    # 46 segments of 1412 bytes are 64,952 bytes; one more would pass 65,507
    runs = udp.gso_runs([1412] * 100 + [10])
    assert runs == [(0, 46, 1412), (46, 92, 1412), (92, 101, 1412)]
    # a short tail that would pass a limit starts its own run
    assert udp.gso_runs([100] * 64 + [50]) == [(0, 64, 100), (64, 65, 50)]
    assert udp.gso_runs([1412] * 46 + [600]) == [(0, 46, 1412), (46, 47, 600)]
    assert udp.gso_runs([4, 4, 4], max_segments=2) == [(0, 2, 4), (2, 3, 4)]


def test_every_index_is_covered_once_in_order():
    import random
    rng = random.Random(7)
    for _ in range(200):
        sizes = [rng.choice([1412, 1412, 1412, 800, 40, 1500]) for _ in range(rng.randrange(0, 120))]
        runs = udp.gso_runs(sizes)
        assert [i for a, b, _ in runs for i in range(a, b)] == list(range(len(sizes)))
        for a, b, seg in runs:
            assert b - a <= udp.MAX_SEGMENTS and sum(sizes[a:b]) <= udp.MAX_BYTES
            assert all(s == seg for s in sizes[a:b - 1]) and sizes[b - 1] <= seg


def test_packets_join_their_runs_once():
    packets = udp.Packets([b"a" * 10, b"b" * 10, b"c" * 4, b"d" * 20])
    runs = packets.runs()
    assert runs == [(b"a" * 10 + b"b" * 10 + b"c" * 4, 10, 3), (b"d" * 20, 20, 1)]
    assert packets.runs() is runs
    assert list(packets[1:3]) == [b"b" * 10, b"c" * 4]


@pytest.fixture
def pair():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    yield tx, rx
    tx.close()
    rx.close()


def received(rx, count):
    return [rx.recv(65536) for _ in range(count)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="UDP GSO is Linux's")
def test_gso_sends_each_packet_as_its_own_datagram(pair):
    tx, rx = pair
    packets = udp.Packets([bytes([i]) * 1412 for i in range(10)] + [b"t" * 99, b"x" * 20])
    calls = udp.send(tx, packets, rx.getsockname())
    assert calls == 2 and udp.gso_supported(tx)
    assert received(rx, 12) == list(packets)


class RefusingSocket:
    """A socket whose kernel refuses UDP_SEGMENT; records what reached ``sendto``."""

    def __init__(self, code):
        self.code = code
        self.sent = []
        self.sendmsg_calls = 0

    def sendmsg(self, buffers, ancdata, flags, addr):
        self.sendmsg_calls += 1
        raise OSError(self.code, "refused")

    def sendto(self, data, addr):
        self.sent.append(bytes(data))
        return len(data)


@pytest.mark.parametrize("code", [errno.EIO, errno.EINVAL, errno.ENOPROTOOPT])
def test_a_refused_gso_falls_back_to_sendto_and_is_remembered(code, monkeypatch):
    monkeypatch.setattr(udp.sys, "platform", "linux")
    sock = RefusingSocket(code)
    first = [b"k" * 8, b"a" * 100, b"b" * 100, b"c" * 50, b"d" * 100, b"e" * 100]
    udp.send(sock, udp.Packets(first), ("127.0.0.1", 9))
    assert sock.sent == first and sock.sendmsg_calls == 1
    assert not udp.gso_supported(sock)
    udp.send(sock, [b"f" * 100, b"g" * 100], ("127.0.0.1", 9))
    assert sock.sent[-2:] == [b"f" * 100, b"g" * 100] and sock.sendmsg_calls == 1


class RefusingEverything(RefusingSocket):
    """A destination the kernel refuses whatever the call (EINVAL for port 0, say)."""

    def sendto(self, data, addr):
        raise OSError(self.code, "refused")


def test_a_destination_refused_by_sendto_too_keeps_gso(monkeypatch):
    monkeypatch.setattr(udp.sys, "platform", "linux")
    sock = RefusingEverything(errno.EINVAL)
    udp.send(sock, [b"a" * 100, b"b" * 100, b"c" * 100], ("127.0.0.1", 9))
    assert udp.gso_supported(sock) and sock.sendmsg_calls == 1


def test_other_errors_drop_the_run_and_keep_gso(monkeypatch):
    monkeypatch.setattr(udp.sys, "platform", "linux")
    sock = RefusingSocket(errno.EAGAIN)
    udp.send(sock, [b"a" * 100, b"b" * 100, b"c" * 200], ("127.0.0.1", 9))
    assert sock.sent == [b"c" * 200] and udp.gso_supported(sock)


def test_no_gso_off_linux(monkeypatch, pair):
    monkeypatch.setattr(udp.sys, "platform", "darwin")
    tx, rx = pair
    packets = [b"a" * 100, b"b" * 100]
    assert udp.send(tx, packets, rx.getsockname()) == 2
    assert received(rx, 2) == packets
