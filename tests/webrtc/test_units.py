"""WebRTC parts without a network: the hub track and the ICE address choice."""

import asyncio

import aioice.ice
import pytest
import pytest_twisted
from aiortc.codecs.h264 import H264Encoder
from aiortc.mediastreams import MediaStreamError
from twisted.internet import defer

from rotordream.media.hub import StreamHub
from rotordream.webrtc.sessions import use_host_addresses
from rotordream.webrtc.track import HubTrack, packet_for
from tests.media.test_hub import au


def run(coro):
    """A Deferred of ``coro`` run on the asyncio loop beneath the test reactor."""
    return defer.Deferred.fromFuture(asyncio.ensure_future(coro))


def test_a_packet_is_the_access_unit_as_annexb_with_its_90khz_time():
    unit = au(7, True)
    packet = packet_for(unit)
    assert bytes(packet) == unit.annexb and packet.pts == 7 * 3000
    assert packet.time_base.denominator == 90000 and packet.is_keyframe
    # aiortc packs it as it is: the NAL units come back out of its RTP payloads.
    payloads, timestamp = H264Encoder().pack(packet)
    assert timestamp == 7 * 3000
    assert b"sps" in payloads[0] and b"pps" in payloads[0]  # STAP-A of SPS and PPS


@pytest_twisted.inlineCallbacks
def test_the_track_starts_at_the_cached_keyframe_and_follows_the_hub():
    async def go():
        hub = StreamHub("stream1")
        for i in range(5):
            hub.publish(au(i, i % 3 == 0))
        track = HubTrack(hub)
        hub.publish(au(5, False))
        got = [await track.recv() for _ in range(3)]
        return [p.pts // 3000 for p in got], got[0].is_keyframe, hub.subscribers
    seqs, keyframe, subscribers = yield run(go())
    assert seqs == [3, 4, 5] and keyframe and subscribers == 1


@pytest_twisted.inlineCallbacks
def test_a_viewer_that_falls_behind_skips_to_the_next_keyframe():
    async def go():
        hub = StreamHub("stream1")
        hub.publish(au(0, True))
        track = HubTrack(hub, max_queue=4)
        for i in range(1, 8):
            hub.publish(au(i, False))  # nobody reads: the queue overflows at 4
        hub.publish(au(8, True))
        hub.publish(au(9, False))
        got = [await track.recv() for _ in range(2)]
        return [p.pts // 3000 for p in got], track.skipped
    seqs, skipped = yield run(go())
    assert seqs == [8, 9]
    assert skipped == 8  # 0-3 drained, 4-7 dropped while waiting for the keyframe


@pytest_twisted.inlineCallbacks
def test_stopping_the_track_leaves_the_hub_and_ends_recv():
    async def go():
        hub = StreamHub("stream1")
        hub.publish(au(0, True))
        track = HubTrack(hub)
        pending = asyncio.ensure_future(track.recv())
        await pending  # the cached keyframe
        waiting = asyncio.ensure_future(track.recv())
        # Stop once recv waits on the empty queue: the loop runs that task's first step
        # before a callback queued after it.
        stopped = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(lambda: (track.stop(), stopped.set_result(
            waiting.done())))
        assert await stopped is False  # recv was waiting when stop came
        with pytest.raises(MediaStreamError):
            await waiting
        with pytest.raises(MediaStreamError):
            await track.recv()
        return hub.subscribers
    assert (yield run(go())) == 0


def test_host_addresses_can_be_pinned_and_restored():
    original = aioice.ice.get_host_addresses
    try:
        use_host_addresses(["127.0.0.1", "::1", "192.0.2.7"])
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == \
            ["127.0.0.1", "192.0.2.7"]
        assert aioice.ice.get_host_addresses(use_ipv4=False, use_ipv6=True) == ["::1"]
        use_host_addresses(())
        assert aioice.ice.get_host_addresses is original
    finally:
        use_host_addresses(())


def au_of(stream, seq, keyframe):
    from dataclasses import replace
    unit = au(seq, keyframe)
    return replace(unit, stream=stream)


@pytest_twisted.inlineCallbacks
def test_switching_goes_on_at_the_new_streams_next_keyframe_with_rising_times():
    async def go():
        one, two = StreamHub("stream1"), StreamHub("stream2")
        one.publish(au_of("stream1", 0, True))
        two.publish(au_of("stream2", 0, True))
        track = HubTrack(one)
        track.switch(two)
        one.publish(au_of("stream1", 1, False))   # still stream1: stream2 has no new keyframe
        two.publish(au_of("stream2", 1, False))   # not a keyframe: not taken
        one.publish(au_of("stream1", 2, False))
        two.publish(au_of("stream2", 2, True))    # the switch happens here
        one.publish(au_of("stream1", 3, False))   # the old hub no longer feeds the track
        two.publish(au_of("stream2", 3, False))
        got = [await asyncio.wait_for(track.recv(), 5) for _ in range(5)]
        return got, one.subscribers, two.subscribers, track.hub is two
    got, subs_one, subs_two, now_two = yield run(go())
    # stream1's 0-2, then stream2 from its keyframe 2, whose time is already taken: one tick on.
    assert [p.pts for p in got] == [0, 3000, 6000, 6001, 9000]
    assert [bytes(p) for p in got] == [au_of(s, i, k).annexb for s, i, k in (
        ("stream1", 0, True), ("stream1", 1, False), ("stream1", 2, False),
        ("stream2", 2, True), ("stream2", 3, False))]
    assert (subs_one, subs_two, now_two) == (0, 1, True)
