"""Per-viewer sending decisions, pure: pacing, bounded retransmission, keyframe requests.

No I/O and no event loop here: every call is given the time (seconds, any
monotonic clock), so the rules are tested on a clock. :mod:`.control` applies
them to aiortc's sender.

- :class:`Pacer`: packets of a frame leave spread out at a rate from the
  viewer's bandwidth estimate (REMB), never in one burst, and never slower than
  the stream itself needs (falling behind is the switcher's business, not the
  pacer's).
- :class:`Retransmitter`: a NACKed packet is sent again only while still useful
  (younger than the viewer's RTT plus a couple of frame intervals) and within a
  byte budget that refills at a share of the estimate.
- :class:`KeyframeRequests`: how often a forced IDR of the shared encoder may be
  asked for, by every viewer together.
"""

from collections import OrderedDict

DEFAULT_BITRATE = 1_000_000    # bit/s assumed before the first estimate


class Pacer:
    """A leaky bucket: :meth:`send_at` says when a packet of ``size`` bytes may leave.

    The rate is ``factor`` times the viewer's estimate, but at least ``headroom``
    times the stream's own bitrate: pacing spreads bursts, it does not starve a
    stream the switcher decided to send. ``burst`` seconds of backlog may go at
    once (a few packets), so a lone packet never waits.
    """

    def __init__(self, factor=1.5, headroom=1.25, burst=0.004, floor=100_000):
        self.factor = factor
        self.headroom = headroom
        self.burst = burst
        self.floor = floor
        self.estimate = None
        self.media_rate = 0
        self._free = None   # when the link is free again, after what was scheduled

    @property
    def rate(self):
        """The pacing rate, bit/s."""
        estimate = self.estimate if self.estimate else DEFAULT_BITRATE
        return max(self.floor, self.factor * estimate, self.headroom * self.media_rate)

    def set_estimate(self, bitrate):
        """The viewer's latest bandwidth estimate, bit/s."""
        self.estimate = bitrate

    def set_media_rate(self, bitrate):
        """The bitrate of the stream being sent, bit/s."""
        self.media_rate = bitrate

    def send_at(self, size, now):
        """The time a packet of ``size`` bytes handed over at ``now`` should leave."""
        start = now - self.burst if self._free is None else max(now - self.burst, self._free)
        self._free = start + size * 8.0 / self.rate
        return max(now, start)

    def backlog(self, now):
        """Seconds of packets scheduled but not yet due."""
        return 0.0 if self._free is None else max(0.0, self._free - now)


class Retransmitter:
    """Which NACKed packets to send again.

    ``sent(seq, size, now)`` records each original packet; ``allow(seq, now)`` says
    whether to retransmit it: only packets younger than ``rtt + frames * interval``
    (older ones would arrive after the picture they belong to is due) and while the
    budget (``share`` of the estimate, ``window`` seconds deep) holds their bytes.
    """

    def __init__(self, share=0.25, window=0.5, frames=2, interval=1 / 30, history=2048):
        self.share = share
        self.window = window
        self.frames = frames
        self.interval = interval
        self.history = history
        self.rtt = 0.1
        self.estimate = None
        self._sent = OrderedDict()    # seq -> (time, size)
        self._tokens = None
        self._last = None
        self.answered = 0
        self.too_old = 0
        self.over_budget = 0
        self.unknown = 0

    @property
    def deadline(self):
        """How old a packet may be and still be worth sending again, seconds."""
        return self.rtt + self.frames * self.interval

    def _capacity(self):
        estimate = self.estimate if self.estimate else DEFAULT_BITRATE
        return self.share * estimate / 8.0 * self.window

    def set_estimate(self, bitrate):
        """The viewer's latest bandwidth estimate, bit/s."""
        self.estimate = bitrate

    def set_rtt(self, rtt):
        """The viewer's round-trip time, seconds (from its receiver reports)."""
        if rtt is not None and rtt >= 0:
            self.rtt = rtt

    def sent(self, seq, size, now):
        """An original packet ``seq`` of ``size`` bytes went out at ``now``."""
        self._sent[seq] = (now, size)
        self._sent.move_to_end(seq)
        while len(self._sent) > self.history:
            self._sent.popitem(last=False)

    def _refill(self, now):
        capacity = self._capacity()
        if self._tokens is None:
            self._tokens = capacity
        else:
            rate = self.share * (self.estimate or DEFAULT_BITRATE) / 8.0
            self._tokens = min(capacity, self._tokens + rate * max(0.0, now - self._last))
        self._last = now

    def allow(self, seq, now):
        """True when packet ``seq`` should be sent again now (its bytes are then spent)."""
        self._refill(now)
        known = self._sent.get(seq)
        if known is None:
            self.unknown += 1
            return False
        when, size = known
        if now - when > self.deadline:
            self.too_old += 1
            return False
        if size > self._tokens:
            self.over_budget += 1
            return False
        self._tokens -= size
        self.answered += 1
        return True

    def counters(self):
        """Dict of what happened to NACKed packets."""
        return {"answered": self.answered, "too_old": self.too_old,
                "over_budget": self.over_budget, "unknown": self.unknown}


class KeyframeRequests:
    """Forced IDRs of the shared encoder, at most ``per_second`` a second for all viewers.

    ``per_second`` 0: never (a viewer that lost its picture waits for the next
    keyframe of the stream's regular GOP).
    """

    def __init__(self, per_second=1):
        self.per_second = per_second
        self._last = None
        self.granted = 0
        self.refused = 0

    def allow(self, now):
        """True when one more forced keyframe may be asked for at ``now``."""
        if self.per_second <= 0 or (self._last is not None
                                    and now - self._last < 1.0 / self.per_second):
            self.refused += 1
            return False
        self._last = now
        self.granted += 1
        return True
