"""Transport-cc feedback: the parser against the builder, malformed packets, the estimator
on synthetic links, stamping and SDP."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rotordream.webrtc import twcc
from tests.support.fuzz import fuzz_settings


def test_round_trip_all_chunk_kinds():
    # A long run (run-length chunk), scattered losses (1-bit vector), a large and a
    # negative delta (2-bit vector).
    arrivals = [1_000_000 + 1000 * i for i in range(20)]
    arrivals += [None, 1_030_000, None, 1_031_000, 1_032_000, None, 1_033_000]
    arrivals += [1_100_000, 1_099_750, 1_200_000]
    data = twcc.build_feedback(65530, arrivals, fb_count=7, sender_ssrc=11, media_ssrc=22)
    fb = twcc.parse_feedback(data)
    assert (fb.sender_ssrc, fb.media_ssrc, fb.base_seq, fb.fb_count) == (11, 22, 65530, 7)
    assert fb.packets == [((65530 + i) & 0xFFFF, a) for i, a in enumerate(arrivals)]
    assert len(data) % 4 == 0


def test_vector_chunks_parsed_from_known_bytes():
    # Written by hand from the draft: base 5, 3 packets, reference 1 (64 ms), fb count 2;
    # a 2-bit vector chunk: received small, not received, received large; deltas 4, -8.
    body = struct.pack("!IIHHI", 1, 2, 5, 3, (1 << 8) | 2)
    body += struct.pack("!H", 0xC000 | (1 << 12) | (0 << 10) | (2 << 8))
    body += bytes([4]) + struct.pack("!h", -8)
    body += b"\x00\x00\x00"
    data = struct.pack("!BBH", 0x80 | 15, 205, (len(body) + 4) // 4 - 1) + body
    fb = twcc.parse_feedback(data)
    assert fb.packets == [(5, 64000 + 1000), (6, None), (7, 64000 + 1000 - 2000)]


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d[:12], "shorter"),
    (lambda d: bytes([0x40 | 15]) + d[1:], "version"),
    (lambda d: bytes([0x80 | 1]) + d[1:], "not RTPFB"),
    (lambda d: d[:2] + struct.pack("!H", 200) + d[4:], "beyond"),
    (lambda d: d[:14] + struct.pack("!H", 0) + d[16:], "count is 0"),
    (lambda d: d[:14] + struct.pack("!H", 500) + d[16:], "end"),
    (lambda d: d[:20] + struct.pack("!H", 0xC000 | (3 << 12)) + d[22:], "reserved"),
    (lambda d: d[:20] + struct.pack("!H", 0) + d[22:], "length 0"),
])
def test_malformed_refused(mutate, message):
    data = twcc.build_feedback(1, [64000, 65000, None, 70000])
    with pytest.raises(twcc.FeedbackError, match=message):
        twcc.parse_feedback(mutate(data))


@fuzz_settings(300)
@given(st.lists(st.one_of(st.none(), st.integers(0, 255)), min_size=1, max_size=60),
       st.integers(0, 65535), st.integers(0, 2 ** 20))
def test_fuzz_round_trip(steps, base, start):
    if all(s is None for s in steps):
        steps[0] = 0
    arrivals, t = [], start * 250
    for s in steps:
        if s is None:
            arrivals.append(None)
        else:
            t += (s - 40) * 250   # some negative, some beyond one byte after scaling
            arrivals.append(max(t, 0))
    fb = twcc.parse_feedback(twcc.build_feedback(base, arrivals))
    assert [a for _, a in fb.packets] == arrivals


@fuzz_settings(500)
@given(st.binary(max_size=80))
def test_fuzz_garbage_refused_cleanly(data):
    data = bytes([0x80 | 15, 205]) + struct.pack("!H", len(data) // 4 + 3) + data
    try:
        fb = twcc.parse_feedback(data)
    except twcc.FeedbackError:
        return
    assert fb.packets


def test_compound_split():
    fb = twcc.build_feedback(1, [64000])
    rr = struct.pack("!BBHI", 0x80, 201, 1, 5)
    assert twcc.feedback_packets(rr + fb + rr) == [fb]


def _rtp(extension=None):
    first = 0x80
    ext = b""
    if extension is not None:
        first |= 0x10
        ext = extension
    return bytes([first, 96]) + struct.pack("!HII", 7, 1234, 99) + ext + b"payload"


def test_stamp_without_and_with_extensions():
    plain = twcc.stamp(_rtp(), 5, 0x1234)
    assert plain[0] & 0x10 and plain[12:20] == b"\xbe\xde\x00\x01\x51\x12\x34\x00"
    assert plain.endswith(b"payload")
    # mid (id 1, "0") and abs-send-time (id 3) already there, as aiortc writes them
    ext = b"\xbe\xde\x00\x02" + b"\x10\x30" + b"\x32\x01\x02\x03" + b"\x00\x00"
    stamped = twcc.stamp(_rtp(ext), 5, 70000)
    assert stamped[12:16] == b"\xbe\xde\x00\x03"
    assert stamped[16:28] == b"\x10\x30\x32\x01\x02\x03\x51" + struct.pack("!H", 70000 & 0xFFFF) \
        + b"\x00\x00\x00"
    assert twcc.stamp(stamped, 5, 9)[16:28] == stamped[16:23] + b"\x00\x09\x00\x00\x00"
    two = b"\x10\x00\x00\x01" + b"\x01\x01\x30\x00"
    assert twcc.stamp(_rtp(two), 5, 1)[12:24] == b"\x10\x00\x00\x02\x01\x01\x30\x05\x02\x00\x01\x00"


def test_sdp_gets_extension_and_feedback():
    sdp = ("v=0\r\nm=audio 9 UDP 0\r\na=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"
           "m=video 9 UDP/TLS/RTP/SAVPF 99 100\r\n"
           "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"
           "a=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n"
           "a=rtpmap:99 H264/90000\r\na=rtpmap:100 rtx/90000\r\n")
    out, ext_id = twcc.add_to_sdp(sdp)
    assert ext_id == 2
    assert "a=extmap:2 %s\r\n" % twcc.URI in out
    assert "a=rtcp-fb:99 transport-cc" in out and "a=rtcp-fb:100 transport-cc" not in out
    assert twcc.extension_id(out) == 2 and twcc.extension_id(sdp) is None


class Link:
    """A bottleneck of ``rate`` bit/s with an unbounded queue, sender paced at ``send_rate``."""

    def __init__(self, rate, send_rate, size=1200, delay=0.02):
        self.rate, self.send_rate, self.size, self.delay = rate, send_rate, size, delay
        self.estimator = twcc.Estimator()
        self.seq = 0
        self.free = 0.0      # when the bottleneck is next free
        self.pending = []    # (seq, arrival s)
        self.base = 0
        self.now = 0.0
        self.estimates = []
        self.states = []
        self.jitter = 0.0    # up to this much arrival jitter, seconds, either way

    def run(self, seconds, feedback_every=0.05, lose_every=None):
        interval = self.size * 8 / self.send_rate
        end = self.now + seconds
        next_feedback = self.now + feedback_every
        while self.now < end:
            self.estimator.sent(self.seq, self.size, self.now)
            start = max(self.now, self.free)
            self.free = start + self.size * 8 / self.rate
            lost = lose_every and self.seq % lose_every == 0
            jitter = self.jitter * ((self.seq * 37) % 9 - 4) / 4
            self.pending.append((self.seq, None if lost else self.free + self.delay + jitter))
            self.seq += 1
            self.now += interval
            if self.now >= next_feedback:
                next_feedback += feedback_every
                self._feedback()
        return self.estimator.estimate

    def _feedback(self):
        # Report what has arrived by now (the receiver's clock: the same here, plus 1 s).
        ready = [p for p in self.pending if p[1] is None or p[1] <= self.now]
        if not ready:
            return
        count = len(ready)
        self.pending = self.pending[count:]
        arrivals = [None if a is None else int((a + 1.0) * 4000) * 250 for _, a in ready]
        if all(a is None for a in arrivals):
            return
        fb = twcc.parse_feedback(twcc.build_feedback(ready[0][0], arrivals))
        self.estimates.append((self.now, self.estimator.feedback(fb, self.now)))
        self.states.append(self.estimator.state)


def test_clean_link_tracks_sent_rate():
    link = Link(rate=10_000_000, send_rate=1_000_000)
    estimate = link.run(3.0)
    assert 1_000_000 <= estimate <= 1_500_000
    assert link.estimator.state == "normal" and link.estimator.loss == 0


def test_jitter_of_a_few_ms_is_not_overuse():
    link = Link(rate=10_000_000, send_rate=1_000_000)
    link.jitter = 0.004
    estimate = link.run(5.0)
    assert "overuse" not in link.states and 1_000_000 <= estimate <= 1_500_000


def test_squeezed_link_drops_below_capacity_within_a_second():
    link = Link(rate=10_000_000, send_rate=600_000)
    assert link.run(2.0) >= 600_000
    link.rate = 400_000   # the queue grows from now on
    squeezed_at = link.now
    link.run(1.0)
    below = [t for t, e in link.estimates if t > squeezed_at and e is not None and e < 400_000]
    assert below and below[0] - squeezed_at < 1.0, link.estimates[-10:]
    assert link.estimator.state == "overuse"


def test_loss_above_ten_percent_lowers_estimate():
    clean = Link(rate=10_000_000, send_rate=1_000_000)
    lossy = Link(rate=10_000_000, send_rate=1_000_000)
    clean.run(3.0)
    lossy.run(3.0, lose_every=5)   # 20 % lost
    assert lossy.estimator.loss == pytest.approx(0.2, abs=0.05)
    assert lossy.estimator.estimate < 0.7 * clean.estimator.estimate


def test_estimate_holds_steady_on_a_stream_with_frequent_keyframes():
    # stream2-like: 30 frames/s of 800 bytes, a 4000-byte keyframe every 8th, on a wide
    # link. A switcher reads any 5 % dip from the peak as congestion: there must be none.
    estimator = twcc.Estimator()
    seq, now, pending, seen = 0, 0.0, [], []
    for frame in range(30 * 14):
        size = 4000 if frame % 8 == 0 else 800
        for _ in range(size // 800):
            estimator.sent(seq, 800, now)
            pending.append((seq, int((now + 0.01 + 1.0) * 4000) * 250))
            seq += 1
            now += 0.002
        now = (frame + 1) / 30
        if frame % 7 in (1, 3, 6):   # feedback at uneven times, as a receiver sends it
            fb = twcc.parse_feedback(twcc.build_feedback(pending[0][0], [a for _, a in pending]))
            pending = []
            seen.append((now, estimator.feedback(fb, now)))
    late = [e for t, e in seen if t >= 9.0]   # at the cap by then (8 %/s from 1x)
    assert max(late) <= 1.5 * 1.1 * (30 * 800 + 30 / 8 * 3200) * 8   # the 2 s peak, not mean
    assert min(late) >= 0.95 * max(late), late


def test_a_start_up_burst_does_not_leave_the_estimate_high():
    # The cached GOP goes out at 5 Mbit/s for half a second, then the stream's 1 Mbit/s.
    link = Link(rate=10_000_000, send_rate=5_000_000)
    link.run(0.5)
    link.send_rate = 1_000_000
    estimate = link.run(5.0)
    assert 1_000_000 <= estimate <= 1.5 * 1.2 * 1_000_000, estimate
