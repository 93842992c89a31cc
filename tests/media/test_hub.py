"""The stream hub: fan-out, GOP cache for late joiners, counters."""

from rotordream.h264 import split_annexb
from rotordream.media.hub import AccessUnit, StreamHub


def au(seq, keyframe, size=100):
    nals = ((b"\x67sps", b"\x68pps", b"\x65" + b"x" * size) if keyframe
            else (b"\x41" + b"y" * size,))
    return AccessUnit("stream1", seq, nals, keyframe, seq * 3000, 1000.0 + seq / 30, 320, 240,
                      30, b"\x67sps", b"\x68pps")


def test_split_annexb_handles_3_and_4_byte_start_codes():
    data = b"\x00\x00\x00\x01\x67abc\x00\x00\x01\x68de\x00\x00\x00\x01\x65fgh"
    assert split_annexb(data) == [b"\x67abc", b"\x68de", b"\x65fgh"]
    assert split_annexb(au(1, True).annexb) == list(au(1, True).nals)


def test_late_subscriber_starts_at_the_cached_keyframe():
    hub = StreamHub("stream1")
    for i in range(5):
        hub.publish(au(i, i % 3 == 0))
    got = []
    hub.subscribe(got.append)
    assert [u.seq for u in got] == [3, 4] and got[0].keyframe
    hub.publish(au(5, False))
    assert [u.seq for u in got] == [3, 4, 5]
    late = []
    hub.subscribe(late.append, replay=False)
    hub.publish(au(6, True))
    assert [u.seq for u in late] == [6] and hub.gop() == [late[0]]


def test_everyone_gets_the_same_objects_and_a_failing_subscriber_is_dropped():
    hub = StreamHub("stream1")
    a, b = [], []
    hub.subscribe(a.append)

    def broken(unit):
        raise RuntimeError("boom")

    hub.subscribe(broken)
    hub.subscribe(b.append)
    assert hub.subscribers == 3
    unit = au(0, True)
    hub.publish(unit)
    assert a == [unit] and b == [unit] and a[0] is b[0]
    assert hub.subscribers == 2


def test_keyframe_deferred_and_subscriber_counts():
    hub = StreamHub("stream1")
    counts = []
    hub.observe_subscribers(counts.append)
    d = hub.keyframe()
    got = []
    d.addCallback(got.append)
    hub.publish(au(0, False))
    assert got == []
    hub.publish(au(1, True))
    assert got[0].seq == 1
    sub = hub.subscribe(lambda u: None)
    sub.cancel()
    sub.cancel()
    assert counts == [1, 0]
    assert hub.keyframe().result.seq == 1


def test_counters_and_bitrate():
    t = [0.0]
    hub = StreamHub("stream1", monotonic=lambda: t[0])
    for i in range(31):
        t[0] = i / 30
        hub.publish(au(i, i == 0, size=1000))
    stats = hub.stats()
    assert stats["units"] == 31 and stats["keyframes"] == 1
    assert stats["width"] == 320 and stats["fps"] == 30
    # 30 units of ~1001 bytes over one second after the first.
    assert 239000 < stats["bitrate"] < 242000
