"""Transport-wide congestion control (draft-holmer-rmcat-transport-wide-cc-extensions-01), pure.

- the wire: :func:`parse_feedback` reads an RTCP RTPFB FMT=15 packet (section 3.1),
  :func:`build_feedback` writes one, :func:`stamp` puts the transport-wide sequence
  number header extension into a serialized RTP packet, :func:`add_to_sdp` offers the
  extension and ``a=rtcp-fb:<pt> transport-cc`` in a session description;
- :class:`Estimator`: the send side of a GCC-like estimate from that feedback. The
  acknowledged bitrate over the last ``window`` seconds; a delay trend (the slope of a
  linear regression of the smoothed accumulated delay over the last ``trend_window``
  groups of packets sent within 5 ms, as GCC's trendline filter does; overuse when the
  slope exceeds ``overuse`` and has raised the delay by ``min_rise`` seconds across the
  window, twice running: jitter of a few milliseconds over a 100 ms window is no
  queue); the estimate grows by ``increase`` per second while the trend is flat, falls
  to ``decrease`` times the acknowledged rate while the delay grows, does not grow past
  ``cap`` times what was sent over the last ``cap_window`` seconds, and a loss above
  10 % in the feedback cuts it as GCC's loss controller does (times 1 - loss/2).
  As in GCC's rate control, the cap stops increases; it pulls the estimate down only
  when the estimate is ``cap_slack`` times above it (a start-up burst, a viewer moved to
  a smaller stream): what is sent wobbles with keyframes and the encoder, and
  :mod:`.switching` reads an estimate that falls as congestion (a probe failed on a
  clean link whenever the cap pulled it down a few percent).

Why it is long: the draft's feedback format both ways (the builder is what the tests and
any receive side write feedback with), the two header extension forms of RFC 8285 and
the estimator reading that feedback are one protocol; each part alone is short.
"""

import re
import struct
from collections import deque

URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
RTPFB, FMT = 205, 15
REFERENCE_UNIT = 64000   # µs per reference time step
DELTA_UNIT = 250         # µs per receive delta step
NOT_RECEIVED, SMALL, LARGE = 0, 1, 2


class FeedbackError(ValueError):
    """A transport-cc feedback packet that does not follow the draft."""


class Feedback:
    """One parsed feedback packet: ``packets`` is a list of (seq, arrival µs or None)."""

    def __init__(self, sender_ssrc, media_ssrc, base_seq, reference_time, fb_count, packets):
        self.sender_ssrc = sender_ssrc
        self.media_ssrc = media_ssrc
        self.base_seq = base_seq
        self.reference_time = reference_time   # in 64 ms units, 24 bits
        self.fb_count = fb_count
        self.packets = packets

    def __repr__(self):
        return "Feedback(base=%d, count=%d, ref=%d, fb=%d)" % (
            self.base_seq, len(self.packets), self.reference_time, self.fb_count)


def parse_feedback(data):
    """A :class:`Feedback` from one whole RTCP packet (header included); FeedbackError
    when it is not a well-formed transport-cc feedback."""
    if len(data) < 20:
        raise FeedbackError("transport-cc feedback shorter than 20 bytes")
    first, packet_type, length = struct.unpack_from("!BBH", data)
    if first >> 6 != 2:
        raise FeedbackError("RTCP version %d, not 2" % (first >> 6))
    if packet_type != RTPFB or first & 0x1F != FMT:
        raise FeedbackError("not RTPFB FMT=15 (PT %d FMT %d)" % (packet_type, first & 0x1F))
    end = (length + 1) * 4
    if end > len(data):
        raise FeedbackError("RTCP length %d words beyond the %d bytes" % (length, len(data)))
    if first & 0x20:
        padding = data[end - 1]
        if padding == 0 or padding > end - 20:
            raise FeedbackError("RTCP padding of %d bytes is invalid" % padding)
        end -= padding
    sender, media, base, count, ref_fb = struct.unpack_from("!IIHHI", data, 4)
    if count == 0:
        raise FeedbackError("packet status count is 0")
    symbols = []
    pos = 20
    while len(symbols) < count:
        if pos + 2 > end:
            raise FeedbackError("packet status chunks end after %d of %d packets"
                                % (len(symbols), count))
        chunk = struct.unpack_from("!H", data, pos)[0]
        pos += 2
        if not chunk & 0x8000:
            symbol, run = (chunk >> 13) & 3, chunk & 0x1FFF
            if run == 0:
                raise FeedbackError("run length chunk of length 0")
            new = [symbol] * run
        elif chunk & 0x4000:
            new = [(chunk >> shift) & 3 for shift in range(12, -1, -2)]
        else:
            new = [(chunk >> shift) & 1 for shift in range(13, -1, -1)]
        symbols.extend(new)
    del symbols[count:]
    if 3 in symbols:
        raise FeedbackError("reserved packet status symbol 11")
    arrival = (ref_fb >> 8) * REFERENCE_UNIT
    packets = []
    for i, symbol in enumerate(symbols):
        seq = (base + i) & 0xFFFF
        if symbol == NOT_RECEIVED:
            packets.append((seq, None))
            continue
        size = 1 if symbol == SMALL else 2
        if pos + size > end:
            raise FeedbackError("receive deltas end at packet %d of %d" % (i, count))
        delta = data[pos] if size == 1 else struct.unpack_from("!h", data, pos)[0]
        pos += size
        arrival += delta * DELTA_UNIT
        packets.append((seq, arrival))
    if end - pos > 3:
        raise FeedbackError("%d bytes after the receive deltas" % (end - pos))
    return Feedback(sender, media, base, ref_fb >> 8, ref_fb & 0xFF, packets)


def _chunks(symbols):
    out = []
    i = 0
    while i < len(symbols):
        run = 1
        while i + run < len(symbols) and symbols[i + run] == symbols[i] and run < 0x1FFF:
            run += 1
        if run >= 7:
            out.append((symbols[i] << 13) | run)
            i += run
        elif 2 in symbols[i:i + 14]:
            part = (symbols[i:i + 7] + [0] * 7)[:7]
            out.append(0xC000 | sum(s << (12 - 2 * k) for k, s in enumerate(part)))
            i += 7
        else:
            part = (symbols[i:i + 14] + [0] * 14)[:14]
            out.append(0x8000 | sum(s << (13 - k) for k, s in enumerate(part)))
            i += 14
    return out


def build_feedback(base_seq, arrivals, fb_count=0, sender_ssrc=1, media_ssrc=0):
    """The RTCP packet reporting ``arrivals`` (µs, or None: not received) for the packets
    from ``base_seq`` on; run-length, 1-bit and 2-bit chunks as the symbols suit."""
    received = [a for a in arrivals if a is not None]
    if not arrivals or not received:
        raise ValueError("a feedback reports at least one received packet")
    reference = received[0] // REFERENCE_UNIT
    previous = reference * REFERENCE_UNIT
    symbols, deltas = [], b""
    for a in arrivals:
        if a is None:
            symbols.append(NOT_RECEIVED)
            continue
        delta, rest = divmod(a - previous, DELTA_UNIT)
        if rest:
            raise ValueError("arrival %d µs is not on the 250 µs grid" % a)
        if 0 <= delta <= 255:
            symbols.append(SMALL)
            deltas += bytes([delta])
        elif -32768 <= delta <= 32767:
            symbols.append(LARGE)
            deltas += struct.pack("!h", delta)
        else:
            raise ValueError("receive delta %d µs does not fit 16 bits" % (a - previous))
        previous = a
    body = struct.pack("!IIHHI", sender_ssrc, media_ssrc, base_seq & 0xFFFF, len(arrivals),
                       ((reference & 0xFFFFFF) << 8) | (fb_count & 0xFF))
    body += b"".join(struct.pack("!H", c) for c in _chunks(symbols)) + deltas
    padding = -len(body) % 4
    first = 0x80 | FMT
    if padding:
        first |= 0x20
        body += b"\x00" * (padding - 1) + bytes([padding])
    return struct.pack("!BBH", first, RTPFB, (len(body) + 4) // 4 - 1) + body


def feedback_packets(compound):
    """The transport-cc packets (bytes) inside a compound RTCP datagram; the rest ignored."""
    out = []
    pos = 0
    while pos + 4 <= len(compound):
        first, packet_type, length = struct.unpack_from("!BBH", compound, pos)
        end = pos + (length + 1) * 4
        if first >> 6 != 2 or end > len(compound):
            break
        if packet_type == RTPFB and first & 0x1F == FMT:
            out.append(compound[pos:end])
        pos = end
    return out


def stamp(data, ext_id, seq):
    """``data`` (a serialized RTP packet) with the transport-wide sequence number ``seq``
    in header extension ``ext_id`` (one-byte or two-byte form, RFC 8285), replacing one
    already there."""
    first = data[0]
    csrc_end = 12 + 4 * (first & 0x0F)
    value = struct.pack("!H", seq & 0xFFFF)
    if not first & 0x10:
        elements = bytes([(ext_id << 4) | 1]) + value
        profile, rest = 0xBEDE, data[csrc_end:]
    else:
        profile, words = struct.unpack_from("!HH", data, csrc_end)
        block_end = csrc_end + 4 + 4 * words
        block, rest = data[csrc_end + 4:block_end], data[block_end:]
        items = []
        i = 0
        two = profile & 0xFFF0 == 0x1000
        if profile != 0xBEDE and not two:
            return data   # an extension profile of another kind: leave it as it is
        while i < len(block):
            if block[i] == 0:
                i += 1
                continue
            if two:
                if i + 2 > len(block):
                    break
                xid, size, start = block[i], block[i + 1], i + 2
            else:
                xid, size, start = block[i] >> 4, (block[i] & 0x0F) + 1, i + 1
                if xid == 15:
                    break
            if xid != ext_id:
                items.append(block[i:start + size])
            i = start + size
        items.append(bytes([ext_id, 2]) + value if two else bytes([(ext_id << 4) | 1]) + value)
        elements = b"".join(items)
    elements += b"\x00" * (-len(elements) % 4)
    header = bytes([first | 0x10]) + data[1:csrc_end]
    return header + struct.pack("!HH", profile, len(elements) // 4) + elements + rest


_EXTMAP = re.compile(r"^a=extmap:(\d+)(?:/\w+)? (\S+)", re.M)


def extension_id(sdp):
    """The id the description gives the transport-wide sequence number, else None."""
    for ext_id, uri in _EXTMAP.findall(sdp):
        if uri == URI:
            return int(ext_id)
    return None


def add_to_sdp(sdp, ext_id=None):
    """``sdp`` with the extension (``ext_id``, or the lowest id free in the whole
    description: BUNDLE shares them) and ``transport-cc`` feedback (for each codec but RTX)
    added to every video section; returns (sdp, ext_id)."""
    if ext_id is None:
        used = {int(i) for i, _ in _EXTMAP.findall(sdp)}
        ext_id = next(i for i in range(1, 15) if i not in used)
    newline = "\r\n" if "\r\n" in sdp else "\n"
    out, video = [], False
    for line in sdp.split(newline):
        if line.startswith("m="):
            video = line.startswith("m=video")
            if video:
                out.append(line)
                out.append("a=extmap:%d %s" % (ext_id, URI))
                continue
        out.append(line)
        match = re.match(r"a=rtpmap:(\d+) (\S+)/", line)
        if video and match and match.group(2).lower() != "rtx":   # media codecs only
            out.append("a=rtcp-fb:%s transport-cc" % match.group(1))
    return newline.join(out), ext_id


class Estimator:
    """The bandwidth estimate of one peer connection from its transport-cc feedback.

    ``sent(seq, size, now)`` for every packet stamped; ``feedback(fb, now)`` returns the
    new estimate in bit/s (None until there is enough to say).
    """

    def __init__(self, window=0.5, trend_window=20, group=0.005, overuse=0.1,
                 increase=1.08, decrease=0.85, cap=1.5, cap_window=2.0, history=5.0,
                 min_rise=0.005, cap_slack=1.2):
        self.cap_slack = cap_slack
        self.window = window
        self.min_rise = min_rise
        self._overuse_seen = 0
        self.cap_window = cap_window
        self.trend_window = trend_window
        self.group = group
        self.overuse_slope = overuse
        self.increase = increase
        self.decrease = decrease
        self.cap = cap
        self.history = history
        self.estimate = None
        self.trend = 0.0          # the delay slope, seconds of delay per second
        self.state = "normal"     # normal | overuse | underuse
        self.loss = 0.0           # lost share of the packets reported lately
        self.feedbacks = 0
        self.sent_lately = 0.0    # bit/s sent over cap_window, at the last feedback
        self.received = 0
        self.lost = 0
        self._sent = {}           # seq -> (send time, bytes)
        self._order = deque()     # seqs in sending order, for pruning
        self._recent_sent = deque()   # (send time, bytes) over the last cap_window
        self._acked = deque()     # (arrival s, bytes) over the last window
        self._reports = deque()   # (time, received, lost) of the last second
        self._ref_base = None     # unwrapped 24-bit reference time
        self._last_ref = None
        self._group_start = None  # send time of the current group's first packet
        self._group = None        # (send, arrival) of the current group's last packet
        self._previous = None     # the same, of the previous complete group
        self._first_arrival = None
        self._accumulated = 0.0
        self._smoothed = 0.0
        self._points = deque()    # (arrival s, smoothed delay s)
        self._updated = None
        self._loss_cut = None

    def sent(self, seq, size, now):
        """Packet ``seq`` (16 bits) of ``size`` bytes left at ``now``."""
        seq &= 0xFFFF
        self._sent[seq] = (now, size)
        self._order.append((now, seq))
        self._recent_sent.append((now, size))
        while self._order and self._order[0][0] < now - self.history:
            _, old = self._order.popleft()
            if self._sent.get(old, (now,))[0] < now - self.history:
                del self._sent[old]
        while self._recent_sent and self._recent_sent[0][0] < now - self.cap_window:
            self._recent_sent.popleft()

    def sent_rate(self, now):
        """Bit/s sent over the last ``cap_window`` seconds (or since the first packet)."""
        while self._recent_sent and self._recent_sent[0][0] < now - self.cap_window:
            self._recent_sent.popleft()
        if not self._recent_sent:
            return 0.0
        span = min(self.cap_window, max(now - self._recent_sent[0][0], self.window))
        return sum(s for _, s in self._recent_sent) * 8 / span

    def acked_rate(self):
        """Bit/s acknowledged over the last window of arrival times, None before 0.1 s."""
        if len(self._acked) < 2:
            return None
        span = self._acked[-1][0] - self._acked[0][0]
        if span < 0.1:
            return None
        # n packets span n - 1 gaps: the first one's bytes arrived before the span began.
        return (sum(s for _, s in self._acked) - self._acked[0][1]) * 8 / span

    def _unwrap_reference(self, ref):
        if self._last_ref is None:
            self._ref_base = ref
        else:
            step = (ref - self._last_ref) & 0xFFFFFF
            if step >= 0x800000:
                step -= 0x1000000
            self._ref_base += step
        self._last_ref = ref
        return self._ref_base - ref   # add to every arrival µs of this feedback

    def feedback(self, fb, now):
        """Take one :class:`Feedback`; the new estimate (bit/s) or None."""
        self.feedbacks += 1
        shift = self._unwrap_reference(fb.reference_time) * REFERENCE_UNIT
        received = lost = 0
        for seq, arrival in fb.packets:
            record = self._sent.get(seq)
            if record is None:
                continue   # not ours, or too old to matter
            if arrival is None:
                lost += 1
                continue
            received += 1
            del self._sent[seq]   # a report repeated later must not count twice
            self._arrived(record[0], (arrival + shift) / 1e6, record[1])
        self.received += received
        self.lost += lost
        self._reports.append((now, received, lost))
        while self._reports and self._reports[0][0] < now - 1.0:
            self._reports.popleft()
        total = sum(r + lo for _, r, lo in self._reports)
        self.loss = sum(lo for _, _, lo in self._reports) / total if total else 0.0
        return self._update(now)

    def _arrived(self, send, arrival, size):
        self._acked.append((arrival, size))
        while self._acked and self._acked[0][0] < arrival - self.window:
            self._acked.popleft()
        if self._group_start is None or send - self._group_start > self.group:
            if self._group is not None:
                self._close_group()
            self._group_start = send
        self._group = (send, arrival)

    def _close_group(self):
        send, arrival = self._group
        if self._previous is not None:
            psend, parrival = self._previous
            self._accumulated += (arrival - parrival) - (send - psend)
            self._smoothed = 0.9 * self._smoothed + 0.1 * self._accumulated
            if self._first_arrival is None:
                self._first_arrival = arrival
            self._points.append((arrival - self._first_arrival, self._smoothed))
            while len(self._points) > self.trend_window:
                self._points.popleft()
            self.trend = _slope(self._points)
            span = self._points[-1][0] - self._points[0][0]
            rising = self.trend > self.overuse_slope and self.trend * span >= self.min_rise
            self._overuse_seen = self._overuse_seen + 1 if rising else 0
            if len(self._points) < self.trend_window // 2:
                self.state = "normal"
            elif self._overuse_seen >= 2:
                self.state = "overuse"
            elif self.trend < -self.overuse_slope:
                self.state = "underuse"
            else:
                self.state = "normal"
        self._previous = self._group

    def _update(self, now):
        acked = self.acked_rate()
        if acked is None:
            return self.estimate
        elapsed = 0.0 if self._updated is None else max(0.0, now - self._updated)
        self._updated = now
        if self.estimate is None:
            self.estimate = acked
        if self.state == "overuse":
            self.estimate = min(self.estimate, self.decrease * acked)
        elif self.state == "normal":
            grown = max(self.estimate, acked) * self.increase ** elapsed
            limit = self.cap * (self.sent_rate(now) or acked)
            self.estimate = max(self.estimate, min(grown, limit))
        if self.loss > 0.1 and (self._loss_cut is None or now - self._loss_cut >= 0.3):
            self._loss_cut = now
            self.estimate *= 1 - 0.5 * self.loss
        self.sent_lately = self.sent_rate(now)
        limit = self.cap * (self.sent_lately or acked)
        if self.estimate > self.cap_slack * limit:
            self.estimate = limit
        return self.estimate

    def stats(self):
        """Counters and state for the session listing."""
        return {"feedbacks": self.feedbacks, "received": self.received, "lost": self.lost,
                "loss": round(self.loss, 4), "trend": round(self.trend, 4),
                "state": self.state, "estimate": None if self.estimate is None
                else int(self.estimate), "acked_rate": int(self.acked_rate() or 0),
                "sent_rate": int(self.sent_lately)}


def _slope(points):
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((x - mx) ** 2 for x, _ in points)
    if den <= 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in points) / den
