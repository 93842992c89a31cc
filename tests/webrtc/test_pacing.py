"""Pacing, bounded retransmission, PLI handling and automatic switching, on a clock.

The pure rules (:mod:`rotordream.webrtc.pacing`, :mod:`rotordream.webrtc.switching`)
are given the time; :class:`SenderControl` is driven with aiortc's own RTP/RTCP
packet classes through a sender that behaves as aiortc's does.
"""

import asyncio
import types

import pytest
import pytest_twisted
from aiortc.rtp import (RTCP_PSFB_APP, RTCP_PSFB_FIR, RTCP_PSFB_PLI, RTCP_RTPFB_NACK,
                        RtcpPsfbPacket, RtcpReceiverInfo, RtcpRrPacket, RtcpRtpfbPacket,
                        RtpPacket, pack_remb_fci)
from twisted.internet import task

from rotordream.config import WebRTC
from rotordream.media.hub import StreamHub
from rotordream.webrtc.control import SenderControl
from rotordream.webrtc.pacing import KeyframeRequests, Pacer, Retransmitter
from rotordream.webrtc.sessions import Session, WebRTCService
from rotordream.webrtc.switching import AutoSwitch
from rotordream.webrtc.track import HubTrack
from tests.media.test_hub import au
from tests.webrtc.test_units import au_of, run

SSRC = 0x1234


def rtp(seq, size=1200):
    """The bytes of an RTP packet of ``size`` bytes, as aiortc serializes it."""
    packet = RtpPacket(payload_type=102, sequence_number=seq, timestamp=seq * 3000)
    packet.ssrc = SSRC
    packet.payload = b"\x00" * (size - 12)
    return packet.serialize()


# -- the pacer ------------------------------------------------------------------

def test_a_frames_packets_leave_spread_at_the_estimates_rate_not_in_one_burst():
    pacer = Pacer(factor=1.5, burst=0.004)
    pacer.set_estimate(4_000_000)
    times = [pacer.send_at(1200, 10.0) for _ in range(14)]   # one 4 Mbit/s frame, at once
    gaps = [b - a for a, b in zip(times, times[1:])]
    per_packet = 1200 * 8 / 6_000_000
    # The burst allowance (4 ms) lets the first few go at once, then one per 1.6 ms.
    assert times[:3] == [10.0] * 3 and times[3] > 10.0
    assert all(abs(g - per_packet) < 1e-9 for g in gaps[3:])
    assert times[-1] - times[0] < 1 / 30                       # within the frame interval
    # After a quiet while the next packet goes at once again.
    assert pacer.send_at(1200, 11.0) == 11.0


def test_the_pacer_never_starves_the_stream_it_is_told_to_send():
    pacer = Pacer(factor=1.5, headroom=1.25)
    pacer.set_estimate(300_000)
    pacer.set_media_rate(4_000_000)
    assert pacer.rate == 5_000_000
    pacer.set_media_rate(100_000)
    assert pacer.rate == 450_000
    assert Pacer().rate == 1_500_000   # no estimate yet: a default


# -- retransmission -------------------------------------------------------------

def test_only_packets_younger_than_rtt_and_two_frames_are_sent_again():
    r = Retransmitter(share=1.0, interval=1 / 30, frames=2)
    r.set_rtt(0.05)
    r.set_estimate(10_000_000)
    for seq in range(10):
        r.sent(seq, 1200, 1.0 + seq * 0.01)
    # At 1.15: packets sent before 1.15 - (0.05 + 0.0667) = 1.033 are useless now.
    assert [seq for seq in range(10) if r.allow(seq, 1.15)] == list(range(4, 10))
    assert r.counters() == {"answered": 6, "too_old": 4, "over_budget": 0, "unknown": 0}
    assert not r.allow(999, 1.15) and r.unknown == 1


def test_retransmission_stays_within_a_share_of_the_estimate_and_refills():
    r = Retransmitter(share=0.25, window=0.5)
    r.set_estimate(400_000)        # budget 0.25 * 400 kbit/s = 12.5 kB/s, 6.25 kB deep
    for seq in range(20):
        r.sent(seq, 1200, 5.0)
    allowed = [seq for seq in range(20) if r.allow(seq, 5.0)]
    assert allowed == [0, 1, 2, 3, 4] and r.over_budget == 15
    # 0.1 s later 1.25 kB came back: one more packet.
    assert [seq for seq in range(5, 20) if r.allow(seq, 5.1)] == [5]


def test_forced_keyframes_are_shared_and_limited():
    limit = KeyframeRequests(per_second=1)
    assert [limit.allow(t) for t in (0.0, 0.3, 0.9, 1.0, 1.5, 2.2)] == \
        [True, False, False, True, False, True]
    never = KeyframeRequests(per_second=0)
    assert not never.allow(0.0) and never.refused == 1


# -- the sender control, with aiortc's packets ------------------------------------

class FakeSender:
    """What SenderControl touches of aiortc's RTCRtpSender, behaving the same way."""

    def __init__(self):
        self._ssrc = SSRC
        self.retransmitted = []
        self.handled = []
        self._RTCRtpSender__rtt = None

    async def _handle_rtcp_packet(self, packet):
        self.handled.append(packet)
        if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            for seq in packet.lost:
                await self._retransmit(seq)
        if isinstance(packet, RtcpRrPacket):
            self._RTCRtpSender__rtt = 0.08

    async def _retransmit(self, seq):
        self.retransmitted.append(seq)


class FakeTransport:
    """The DTLS transport's ``_send_rtp``: records what went out."""

    def __init__(self):
        self.sent = []

    async def _send_rtp(self, data):
        self.sent.append(data)


@pytest_twisted.inlineCallbacks
def test_nacks_plis_estimates_and_rtt_go_through_the_control():
    clock = task.Clock()
    clock.advance(100)
    sender, transport = FakeSender(), FakeTransport()
    estimates, losses = [], []
    control = SenderControl(sender, clock.seconds, on_estimate=estimates.append,
                            on_picture_loss=lambda: losses.append(clock.seconds()))
    control.attach_transport(transport)
    control.set_estimate(50_000_000)   # fast enough that nothing waits on the real loop

    async def go():
        for seq in range(5):
            await transport._send_rtp(rtp(seq))
        clock.advance(0.5)
        for seq in range(5, 8):
            await transport._send_rtp(rtp(seq))
        await sender._handle_rtcp_packet(RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1,
                                                         media_ssrc=SSRC, lost=[1, 6, 7]))
        await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1,
                                                        media_ssrc=SSRC))
        await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=RTCP_PSFB_FIR, ssrc=1,
                                                        media_ssrc=SSRC))
        await sender._handle_rtcp_packet(RtcpPsfbPacket(
            fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0, fci=pack_remb_fci(750_000, [SSRC])))
        await sender._handle_rtcp_packet(RtcpRrPacket(ssrc=1, reports=[RtcpReceiverInfo(
            ssrc=SSRC, fraction_lost=64, packets_lost=3, highest_sequence=7, jitter=0, lsr=0,
            dlsr=0)]))
    yield run(go())
    assert len(transport.sent) == 8
    assert sender.retransmitted == [6, 7]            # 1 was too old to help
    assert losses == [100.5, 100.5]                  # PLI and FIR, not passed to aiortc
    assert not [p for p in sender.handled if isinstance(p, RtcpPsfbPacket)
                and p.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR)]
    assert estimates[-1] == 750_000 and control.pacer.estimate == 750_000
    assert control.rtt == 0.08 and control.fraction_lost == 0.25
    stats = control.stats()
    assert stats["nacked"]["answered"] == 2 and stats["nacked"]["too_old"] == 1
    assert stats["picture_losses"] == 2


@pytest_twisted.inlineCallbacks
def test_rtcp_passes_unpaced_and_rtp_waits_for_its_turn():
    clock = task.Clock()
    sender, transport = FakeSender(), FakeTransport()
    control = SenderControl(sender, clock.seconds, pacer=Pacer(factor=1.0, burst=0.0,
                                                               floor=1))
    control.set_estimate(480_000)   # a 1200-byte packet takes 20 ms
    control.attach_transport(transport)

    async def go():
        loop = asyncio.get_running_loop()
        started = loop.time()
        rr = RtcpRrPacket(ssrc=1).bytes() if hasattr(RtcpRrPacket, "bytes") else \
            bytes(RtcpRrPacket(ssrc=1))
        for seq in range(3):
            await transport._send_rtp(rtp(seq))
        await transport._send_rtp(rr)
        return loop.time() - started
    took = yield run(go())
    # Packets 2 and 3 waited 20 and 40 ms of the pacer's schedule; the RTCP did not.
    assert 0.035 <= took < 0.5 and control.paced == 2
    assert len(transport.sent) == 4


# -- the track on a viewer's request and when far behind ---------------------------

@pytest_twisted.inlineCallbacks
def test_a_picture_loss_restarts_the_viewer_at_the_next_keyframe():
    async def go():
        hub = StreamHub("stream1")
        hub.publish(au(0, True))
        track = HubTrack(hub)
        for i in range(1, 4):
            hub.publish(au(i, False))
        track.resync()
        hub.publish(au(4, False))
        hub.publish(au(5, True))
        hub.publish(au(6, False))
        got = [await track.recv() for _ in range(2)]
        return [p.pts // 3000 for p in got], track.resyncs
    seqs, resyncs = yield run(go())
    assert seqs == [5, 6] and resyncs == 1


@pytest_twisted.inlineCallbacks
def test_a_viewer_more_than_max_lag_behind_skips_ahead_but_a_replayed_gop_does_not():
    async def go():
        now = [0.0]
        hub = StreamHub("stream1", monotonic=lambda: now[0])
        for i in range(30):                       # a cached GOP a second long
            now[0] = i / 30
            hub.publish(au(i, i == 0))
        track = HubTrack(hub, max_lag=0.5)
        now[0] = 1.0
        hub.publish(au(30, False))                # taken: the replay is not a backlog
        for i in range(31, 60):                   # nobody reads for another second
            now[0] = i / 30 + 0.0
            hub.publish(au(i, i == 45))
        got = []
        while not track._queue.empty():
            got.append((await track.recv()).pts // 3000)
        return got, track.skipped
    got, skipped = yield run(go())
    assert got[0] == 45 and got == list(range(45, 60)), got
    assert skipped == 45


# -- automatic switching -------------------------------------------------------------

RATES = {"stream1": 2_000_000, "stream2": 200_000}


def drive(switch, until, link, step=0.5):
    """Run ``switch`` until ``until`` on ``link(now, switch) -> (estimate, rtt, loss)``;
    the switches made, as (time, stream). Goes on from where the last drive stopped."""
    seen, now = [], getattr(switch, "_driven", switch.started)
    while now < until:
        now += step
        before = switch.current
        estimate, rtt, loss = link(now, switch)
        got = switch.update(now, estimate, RATES, rtt, loss)
        if got != before:
            seen.append((round(now, 1), got))
    switch._driven = now
    return seen


def phases(*spans):
    """A link from spans (until, estimate, rtt, loss): each holds until its time."""
    def link(now, switch):
        for until, estimate, rtt, loss in spans:
            if now <= until:
                return estimate, rtt, loss
        return spans[-1][1:]
    return link


def test_auto_goes_down_on_a_squeeze_and_up_after_a_calm_while_and_a_probe():
    switch = AutoSwitch(0.0, grace=4, down_hold=0.5, up_hold=5, probe_time=2, backoff=5)
    probes = []
    link = phases((4, 300_000, 0.01, 0.0),           # low first estimates: the grace period
                  (20, 3_000_000, 0.01, 0.0),
                  (40, 350_000, 0.11, 0.3),          # squeezed: queueing and loss
                  (80, 3_000_000, 0.01, 0.0))

    def watched(now, s):
        if s.probe_rate:
            probes.append((now, s.probe_rate))
        return link(now, s)
    assert drive(switch, 80, watched) == [(20.5, "stream2"), (47.5, "stream1")]
    # Down at the squeeze's first reading (its loss is severe); no probe while it lasts;
    # after 5 calm seconds a 2 s probe pads up towards 1.2 * stream1 with the picture
    # still on stream2, then up.
    assert [t for t, _ in probes] == [46.0, 46.5, 47.0, 47.5]   # as seen on the next step
    rates = [r for _, r in probes]
    assert rates == sorted(rates) and rates[-1] <= 1.2 * RATES["stream1"]


def test_a_low_but_clean_estimate_is_no_reason_to_go_down():
    # A browser ramps its REMB up slowly after a switch up: below stream1, nothing lost.
    switch = AutoSwitch(0.0, grace=0)
    ramp = lambda now, s: (300_000 * 1.08 ** now, 0.01, 0.0)   # noqa: E731
    assert drive(switch, 20, ramp) == [] and switch.current == "stream1"


def test_a_round_trip_that_grew_for_good_becomes_the_new_normal():
    # A new route: 20 ms, then 200 ms for good, with nothing lost. The link counts as
    # overrun while the 20 ms is in the window, and no longer after it.
    switch = AutoSwitch(0.0, grace=0, rtt_window=30)
    for t in range(10):
        switch.update(float(t), 2_000_000, RATES, rtt=0.02, loss=0.0)
    assert switch.best_rtt == 0.02
    switch.update(10.0, 2_000_000, RATES, rtt=0.2, loss=0.0)
    assert switch.overrun(0.2, 0.0)
    for t in range(11, 41):
        switch.update(float(t), 2_000_000, RATES, rtt=0.2, loss=0.0)
    assert switch.best_rtt == 0.2 and not switch.overrun(0.2, 0.0)
    # A shorter round trip is the best at once.
    switch.update(41.0, 2_000_000, RATES, rtt=0.1, loss=0.0)
    assert switch.best_rtt == 0.1 and switch.overrun(0.2, 0.0)


def test_failed_probes_back_off_doubling_up_to_the_limit_and_cost_no_picture():
    switch = AutoSwitch(0.0, grace=0, down_hold=0.5, up_hold=2, probe_time=2, backoff=5,
                        max_backoff=20)
    starts = []

    def narrow(now, s):   # 400 kbit/s: stream2 fits, anything much more is lost
        if s.probe_rate and not starts or s.probe_rate and now - starts[-1] > 3:
            starts.append(now)
        sending = s.probe_rate or RATES[s.current]
        return 300_000, 0.01, 0.2 if sending > 400_000 else 0.0
    switch.forced("stream2", 0.0)
    assert drive(switch, 150, narrow) == []        # the picture never left stream2
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert len(starts) >= 5 and switch.failed_probes == len(starts)
    assert gaps == sorted(gaps) and max(gaps) <= 20 + 2 + 1.5, gaps
    assert switch.backoff == 20
    # The link opens: the next probe passes, the viewer goes up and stays; the backoff
    # starts afresh once it has held.
    seen = drive(switch, 200, phases((200, 3_000_000, 0.01, 0.0)))
    assert [s for _, s in seen] == ["stream1"] and seen[0][0] <= 150 + 20 + 2 + 2 + 1
    assert switch.backoff == 5


def test_going_down_right_after_a_probe_counts_as_a_failed_probe():
    switch = AutoSwitch(0.0, grace=0, down_hold=0.5, up_hold=1, probe_time=1, backoff=5,
                        probe_window=10)
    switch.forced("stream2", 0.0)
    drive(switch, 10, phases((10, 3_000_000, 0.01, 0.0)))
    assert switch.current == "stream1" and switch.failed_probes == 0
    drive(switch, 13, phases((13, 300_000, 0.2, 0.3)))
    assert switch.current == "stream2" and switch.failed_probes == 1 and switch.backoff == 10


def test_no_probe_while_the_round_trip_is_inflated():
    switch = AutoSwitch(0.0, grace=0, up_hold=2)
    switch.forced("stream2", 0.0)
    drive(switch, 3, phases((3, 300_000, 0.01, 0.0)))   # the best round trip: 10 ms
    assert drive(switch, 60, phases((60, 300_000, 0.15, 0.0))) == []
    assert switch.probe_rate is None and switch.current == "stream2"


# -- the service's tick: estimate -> switch, history and counters ----------------------

@pytest_twisted.inlineCallbacks
def test_the_service_moves_an_auto_viewer_and_records_the_switch():
    async def go():
        clock = task.Clock()
        hubs = {"stream1": StreamHub("stream1"), "stream2": StreamHub("stream2")}
        service = WebRTCService(hubs, clock, WebRTC(), wall=lambda: 1_800_000_000.0)
        for name in hubs:
            hubs[name].publish(au_of(name, 0, True))
        track = HubTrack(hubs["stream1"])
        caller = types.SimpleNamespace(principal=types.SimpleNamespace(name="anonymous"),
                                       authenticated=False, client="127.0.0.1")
        pc = types.SimpleNamespace(connectionState="connected")
        session = Session("s1", pc, track, "stream1", caller, "k", 0,
                          auto=AutoSwitch(clock.seconds(), grace=0, down_hold=1))
        service.sessions["s1"] = session
        rates = {"stream1": 2_000_000, "stream2": 200_000}
        for name, hub in hubs.items():
            hub.__dict__["bitrate"] = rates[name]
        session.estimate = 500_000
        session.control = types.SimpleNamespace(
            rtt=0.01, loss=lambda: 0.3, hurt=lambda: False, pacer=Pacer(), pad=lambda *a: None,
            retransmitter=Retransmitter())
        for _ in range(4):
            clock.advance(0.5)
            service._tick()
        forced = [name for name, hub in hubs.items() if hub.take_keyframe_request()]
        return session, service, forced
    hubs_patch = StreamHub.bitrate
    StreamHub.bitrate = property(lambda self: self.__dict__.get("bitrate", 0))
    try:
        session, service, forced = yield run(go())
    finally:
        StreamHub.bitrate = hubs_patch
    assert session.stream == "stream2"
    # Cut from stream1 for congestion: stream2's IDR is asked for at once.
    assert forced == ["stream2"]
    assert session.control.retransmitter.interval == 1 / 30   # the sent stream's frames
    [switch] = session.switches
    assert (switch["from"], switch["to"], switch["reason"], switch["estimate"]) == \
        ("stream1", "stream2", "estimate", 500_000)
    assert service.switch_counters() == {("stream1", "stream2", "estimate"): 1}
    session.control = None
    listed = session.public()
    assert listed["mode"] == "auto" and listed["switches"] == [switch]
    session.track.stop()


def test_switches_are_counted_for_prometheus(tmp_path):
    from tests.metrics.test_collector import parts as make_parts, value
    parts = make_parts.__wrapped__(tmp_path)   # the collector test's fixture, called directly
    parts.webrtc.switch_counts[("stream1", "stream2", "estimate")] += 2
    parts.webrtc.switch_counts[("stream2", "stream1", "probe")] += 1
    assert value(parts, "rotordream_webrtc_stream_switches_total", **{
        "from": "stream1", "to": "stream2", "reason": "estimate"}) == 2
    assert value(parts, "rotordream_webrtc_stream_switches_total", **{
        "from": "stream2", "to": "stream1", "reason": "probe"}) == 1


@pytest_twisted.inlineCallbacks
def test_plis_of_all_viewers_share_the_forced_keyframe_limit_and_reload_changes_it():
    async def go():
        clock = task.Clock()
        hub = StreamHub("stream1")
        hub.publish(au(0, True))
        forced = []
        service = WebRTCService({"stream1": hub}, clock, WebRTC())
        viewers = [types.SimpleNamespace(track=HubTrack(hub), auto=None, control=None)
                   for _ in range(3)]
        for t in (0.0, 0.2, 0.5, 1.1):    # every viewer reports a picture loss each time
            clock.advance(t - clock.seconds())
            for viewer in viewers:
                service._picture_lost(viewer)
            if hub.take_keyframe_request():   # what the encoder reads before a picture
                forced.append(clock.seconds())
        service.reconfigure(WebRTC(max_keyframe_requests_per_s=0))
        clock.advance(5)
        service._picture_lost(viewers[0])
        assert not hub.take_keyframe_request()
        resyncs = [v.track.resyncs for v in viewers]
        for v in viewers:
            v.track.stop()
        return forced, resyncs
    forced, resyncs = yield run(go())
    assert forced == [0.0, 1.1]          # 12 PLIs, one forced IDR a second for all
    assert resyncs == [5, 4, 4]          # each viewer restarts at the next keyframe


def test_heavy_loss_goes_down_even_while_the_estimate_still_looks_fine():
    switch = AutoSwitch(0.0, grace=0, down_hold=0.25)
    # At the first reading: the picture is broken already, no hold.
    assert drive(switch, 3, phases((3, 5_000_000, 0.01, 0.3))) == [(0.5, "stream2")]
    # Loss above the limit but not severe, with the estimate short: held first.
    switch = AutoSwitch(0.0, grace=0, down_hold=0.25)
    assert drive(switch, 3, phases((3, 1_000_000, 0.01, 0.1))) == [(1.0, "stream2")]


def test_a_probe_fails_on_a_small_estimate_drop():
    switch = AutoSwitch(0.0, grace=0, up_hold=1, probe_time=3)
    switch.forced("stream2", 0.0)
    drive(switch, 1.5, phases((2, 300_000, 0.01, 0.0)))
    assert switch.probe_rate == 300_000                  # the ramp starts at 1.5 * stream2
    drive(switch, 2, phases((2, 300_000, 0.01, 0.0)))
    assert switch.probe_rate == pytest.approx(300_000 * 8 ** (0.5 / 3))   # geometric
    drive(switch, 3, phases((3, 280_000, 0.01, 0.0)))   # -7 %: the padding hurts
    assert switch.probe_rate is None and switch.failed_probes == 1
    assert switch.current == "stream2"


@pytest_twisted.inlineCallbacks
def test_a_cut_switch_stops_the_old_stream_at_once():
    async def go():
        one, two = StreamHub("stream1"), StreamHub("stream2")
        one.publish(au_of("stream1", 0, True))
        track = HubTrack(one)
        one.publish(au_of("stream1", 1, False))
        track.switch(two, cut=True)
        one.publish(au_of("stream1", 2, False))   # no longer sent
        two.publish(au_of("stream2", 2, False))   # not a keyframe: skipped
        two.publish(au_of("stream2", 3, True))
        got = await asyncio.wait_for(track.recv(), 5)
        return bytes(got), one.subscribers, track._queue.empty()
    got, subs_one, empty = yield run(go())
    assert got == au_of("stream2", 3, True).annexb and subs_one == 0 and empty


def test_a_falling_estimate_alone_does_not_move_a_viewer_down():
    # A busy receiver's jitter can make a browser cut its REMB on a clean link.
    switch = AutoSwitch(0.0, grace=0)
    link = phases((5, 3_000_000, 0.01, 0.0), (20, 700_000, 0.01, 0.0))
    assert drive(switch, 20, link) == [] and switch.current == "stream1"


def test_a_probe_fails_as_soon_as_padding_hurt_the_viewer():
    switch = AutoSwitch(0.0, grace=0, up_hold=1, probe_time=3)
    switch.forced("stream2", 0.0)
    drive(switch, 1.5, phases((2, 300_000, 0.01, 0.0)))
    assert switch.probe_rate
    switch.update(2.0, 300_000, RATES, 0.01, 0.0, hurt=True)
    assert switch.probe_rate is None and switch.failed_probes == 1


@pytest_twisted.inlineCallbacks
def test_a_nack_while_padding_stops_the_padding_and_is_reported_once():
    clock = task.Clock()
    sender, transport = FakeSender(), FakeTransport()
    control = SenderControl(sender, clock.seconds)
    control.attach_transport(transport)

    async def go():
        control._padding = asyncio.ensure_future(asyncio.sleep(10))   # padding under way
        await sender._handle_rtcp_packet(RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1,
                                                         media_ssrc=SSRC, lost=[3]))
        await asyncio.sleep(0)
        return control._padding.cancelled()
    assert (yield run(go()))
    assert control.hurt() is True and control.hurt() is False


# -- picture loss: the other stream's keyframe, whichever comes first ----------------------

def test_after_a_picture_loss_the_other_stream_is_allowed_only_when_a_switch_is_due():
    switch = AutoSwitch(0.0, grace=2)
    # In the grace period, or without an estimate: the current stream only.
    assert switch.other_after_picture_loss(1.0, 500_000, RATES, 0.3, 0.3) is None
    assert switch.other_after_picture_loss(3.0, None, RATES, 0.3, 0.3) is None
    switch.update(3.0, 3_000_000, RATES, 0.01, 0.0)            # learns the best RTT
    # stream1 on a clean link: a lost picture is no reason to go down.
    assert switch.other_after_picture_loss(3.0, 3_000_000, RATES, 0.01, 0.0) is None
    # A squeeze: stream1 does not fit and the round trip grew (or the loss is severe).
    assert switch.other_after_picture_loss(3.0, 500_000, RATES, 0.2, 0.0) == "stream2"
    assert switch.other_after_picture_loss(3.0, 3_000_000, RATES, 0.01, 0.3) == "stream2"
    # A low estimate alone (still ramping, nothing lost) is not enough either.
    assert switch.other_after_picture_loss(3.0, 500_000, RATES, 0.01, 0.0) is None
    switch.restarted("stream2", 4.0)
    assert switch.current == "stream2" and switch._next_probe == 4.0 + switch.first_backoff
    # On stream2: stream1 when the estimate carries it with margin on a calm link.
    assert switch.other_after_picture_loss(5.0, 500_000, RATES, 0.01, 0.0) is None
    assert switch.other_after_picture_loss(5.0, 2_500_000, RATES, 0.2, 0.0) is None
    assert switch.other_after_picture_loss(5.0, 2_500_000, RATES, 0.01, 0.0) == "stream1"
    switch.restarted("stream1", 6.0)
    assert switch.current == "stream1" and switch._up_at == 6.0


@pytest_twisted.inlineCallbacks
def test_a_resync_takes_whichever_keyframe_comes_first():
    async def go():
        one, two = StreamHub("stream1"), StreamHub("stream2")
        one.publish(au_of("stream1", 0, True))
        two.publish(au_of("stream2", 0, True))
        moved = []
        # The other stream's keyframe first: the viewer moves over and stays there.
        track = HubTrack(one)
        await track.recv()
        track.resync(two, moved.append)
        one.publish(au_of("stream1", 1, False))
        two.publish(au_of("stream2", 1, False))
        two.publish(au_of("stream2", 2, True))
        one.publish(au_of("stream1", 3, True))
        two.publish(au_of("stream2", 3, False))
        got = [(await track.recv()).pts // 3000 for _ in range(2)]
        first = (moved, got, track.hub.name, one.subscribers, two.subscribers)
        track.stop()
        # Its own keyframe first: the other stream's subscription goes away.
        moved = []
        track = HubTrack(one)
        await track.recv()
        track.resync(two, moved.append)
        one.publish(au_of("stream1", 4, True))
        two.publish(au_of("stream2", 5, True))
        one.publish(au_of("stream1", 6, False))
        got = [(await track.recv()).pts // 3000 for _ in range(2)]
        second = (moved, got, track.hub.name, one.subscribers, two.subscribers)
        track.stop()
        return first, second
    first, second = yield run(go())
    assert first == (["stream2"], [2, 3], "stream2", 0, 1)
    assert second == ([], [4, 6], "stream1", 1, 0)


@pytest_twisted.inlineCallbacks
def test_an_auto_viewer_losing_its_picture_in_a_squeeze_restarts_on_stream2():
    async def go():
        clock = task.Clock()
        hubs = {"stream1": StreamHub("stream1"), "stream2": StreamHub("stream2")}
        service = WebRTCService(hubs, clock, WebRTC(), wall=lambda: 1_800_000_000.0)
        for name in hubs:
            hubs[name].publish(au_of(name, 0, True))
            hubs[name].__dict__["bitrate"] = RATES[name]
        caller = types.SimpleNamespace(principal=types.SimpleNamespace(name="anonymous"),
                                       authenticated=False, client="127.0.0.1")
        pc = types.SimpleNamespace(connectionState="connected")
        session = Session("s1", pc, HubTrack(hubs["stream1"]), "stream1", caller, "k", 0,
                          auto=AutoSwitch(clock.seconds(), grace=0))
        session.auto.best_rtt = 0.01
        session.estimate = 400_000
        session.control = types.SimpleNamespace(rtt=0.2, fraction_lost=0.0)
        clock.advance(1)
        service._picture_lost(session)
        # The forced IDR is asked of stream2 (the cheap one), and it comes first.
        forced = [name for name, hub in hubs.items() if hub.take_keyframe_request()]
        hubs["stream1"].publish(au_of("stream1", 1, False))
        hubs["stream2"].publish(au_of("stream2", 1, True))
        got = (await session.track.recv()).pts // 3000
        session.track.stop()
        return forced, got, session, service
    hubs_patch = StreamHub.bitrate
    StreamHub.bitrate = property(lambda self: self.__dict__.get("bitrate", 0))
    try:
        forced, got, session, service = yield run(go())
    finally:
        StreamHub.bitrate = hubs_patch
    assert forced == ["stream2"] and got == 1
    assert session.stream == "stream2" and session.auto.current == "stream2"
    assert [(s["from"], s["to"], s["reason"]) for s in session.switches] == \
        [("stream1", "stream2", "picture_loss")]
    assert service.switch_counters() == {("stream1", "stream2", "picture_loss"): 1}
