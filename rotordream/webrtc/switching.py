"""When a ``stream=auto`` viewer should change streams, pure (given the time).

Signals, from the viewer: its bandwidth estimate (REMB), its round-trip time
and its loss (receiver reports and NACKs). The link is *overrun* when the loss
exceeds ``loss_limit`` or the round trip is ``rtt_slack`` above the best seen
in the last ``rtt_window`` seconds (a path whose round trip grew for good, a new
route, is the new normal after that);
it counts as *congested* when overrun, or when the estimate fell below ``drop``
times its peak of the last ``trend`` seconds (a REMB receiver cuts its estimate
on what it takes for overuse: a busy receiver's jitter too).

Down: the estimate cannot carry stream1 with ``margin`` (below ``margin *
stream1``) while the link is overrun for ``down_hold`` seconds, or at once when
the loss exceeds ``severe_loss`` whatever the estimate says (it lags). (A REMB
estimate that is merely low, still ramping up with nothing lost, is no reason:
browsers raise it slowly.) Nothing is decided during ``grace`` seconds after
the start.

Up: a receiver's REMB is capped near 1.5 times what it receives, so on stream2
it cannot show that stream1 would fit. After ``up_hold`` seconds on stream2
without congestion, a *probe* runs: for ``probe_time`` seconds the sender pads
up towards stream1's rate (:attr:`probe_rate`, ramping geometrically from 1.5
times stream2's rate to ``margin`` times stream1's) with the picture still on
stream2. Congestion during the probe (there an estimate below ``probe_drop``
times its peak already counts, and so does any media the viewer NACKed while
padding went out: padding only adds traffic) fails it, cheaply: the next probe waits
``backoff`` seconds, doubled after every failure up to ``max_backoff``. A probe
that passes switches the viewer up; going down again within ``probe_window``
seconds counts as a failure too, and staying up that long resets the backoff.
The caller switches at keyframes only.

Picture loss: a viewer that reported a lost picture (PLI/FIR) waits for a
keyframe anyway, so it may restart at the other stream's keyframe if that comes
first, when :meth:`AutoSwitch.other_after_picture_loss` allows it: stream2 when
the switch down is due anyway (stream1 does not fit an overrun link, or the loss
is severe), stream1 when the estimate carries it with ``margin`` on a link that
is not overrun. :meth:`AutoSwitch.restarted` then records the move as a switch.
"""

from collections import deque

HIGH, LOW = "stream1", "stream2"


class AutoSwitch:
    """The switching decision for one viewer; :meth:`update` returns the stream wanted."""

    def __init__(self, now, margin=1.2, down_hold=0.25, grace=4.0, up_margin=1.2, up_hold=5.0,
                 rtt_slack=0.05, loss_limit=0.05, drop=0.85, trend=3.0, probe_time=3.0,
                 probe_window=10.0, backoff=15.0, max_backoff=20.0, severe_loss=0.2,
                 probe_drop=0.95, rtt_window=60.0):
        self.severe_loss = severe_loss
        self.rtt_window = rtt_window
        self.probe_drop = probe_drop
        self.margin = margin
        self.down_hold = down_hold
        self.grace = grace
        self.up_margin = up_margin
        self.up_hold = up_hold
        self.rtt_slack = rtt_slack
        self.loss_limit = loss_limit
        self.drop = drop
        self.trend = trend
        self.probe_time = probe_time
        self.probe_window = probe_window
        self.first_backoff = backoff
        self.max_backoff = max_backoff
        self.backoff = backoff
        self.started = now
        self.current = HIGH
        self.best_rtt = None
        self._rtts = deque()       # (time, rtt), rising: the window's minimum first
        self.failed_probes = 0
        self.probe_rate = None     # bit/s the sender should pad up to now (probing), or None
        self._recent = deque()     # (time, estimate) over the last `trend` seconds
        self._short_since = None   # since when stream1 does not fit
        self._calm_since = None    # since when stream2's link shows no congestion
        self._probe_start = None   # the padding probe running, or None
        self._up_at = None         # when the last probe switched up
        self._next_probe = now

    def _note_rtt(self, now, rtt):
        """Keep :attr:`best_rtt` the least round trip of the last ``rtt_window`` seconds."""
        rtts = self._rtts
        while rtts and rtts[-1][1] >= rtt:
            rtts.pop()              # never the minimum while ``rtt`` is in the window
        rtts.append((now, rtt))
        while now - rtts[0][0] > self.rtt_window:
            rtts.popleft()
        self.best_rtt = rtts[0][1]

    def overrun(self, rtt, loss):
        """True when the viewer loses packets or its round trip grew (queueing)."""
        if loss is not None and loss > self.loss_limit:
            return True
        return rtt is not None and self.best_rtt is not None and \
            rtt > self.best_rtt + self.rtt_slack

    def congested(self, now, estimate, rtt, loss):
        """True when overrun, or when the estimate is falling (see the module docstring)."""
        if self.overrun(rtt, loss):
            return True
        peak = max((e for _, e in self._recent), default=estimate)
        drop = self.probe_drop if self._probe_start is not None else self.drop
        return estimate < drop * peak

    def update(self, now, estimate, rates, rtt=None, loss=None, hurt=False):
        """The stream this viewer should get now.

        ``estimate``: its bandwidth estimate, bit/s (None: none yet); ``rates``: dict
        stream name -> current bitrate, bit/s; ``rtt``: its round-trip time, seconds;
        ``loss``: the fraction of its packets lost lately; ``hurt``: it lost media while
        padding was sent.
        """
        if rtt is not None:
            self._note_rtt(now, rtt)
        if estimate is None:
            return self.current
        congested = self.congested(now, estimate, rtt, loss)
        self._recent.append((now, estimate))
        while self._recent and now - self._recent[0][0] > self.trend:
            self._recent.popleft()
        if now - self.started < self.grace:
            return self.current
        high, low = rates.get(HIGH) or 0, rates.get(LOW) or 0
        if self.current == HIGH:
            severe = loss is not None and loss > self.severe_loss
            if severe or (estimate < self.margin * high and self.overrun(rtt, loss)):
                if self._short_since is None:
                    self._short_since = now
                # Severe loss: the picture is broken already, every moment waited is frozen.
                if severe or now - self._short_since >= self.down_hold:
                    return self._down(now)
            else:
                self._short_since = None
            if self._up_at is not None and now - self._up_at >= self.probe_window:
                self._up_at = None
                self.backoff = self.first_backoff   # the probe held: start afresh
            return self.current
        if self._probe_start is not None:
            if congested or hurt:
                self._fail(now)
            elif now - self._probe_start >= self.probe_time:
                return self._up(now)
            else:
                self.probe_rate = self._ramp(now - self._probe_start, low, high)
            return self.current
        if not congested and estimate >= self.up_margin * low:
            if self._calm_since is None:
                self._calm_since = now
            if now - self._calm_since >= self.up_hold and now >= self._next_probe:
                self._probe_start = now
                self.probe_rate = self._ramp(0.0, low, high)
        else:
            self._calm_since = None
        return self.current

    def other_after_picture_loss(self, now, estimate, rates, rtt=None, loss=None):
        """The other stream if a viewer that lost its picture may restart at that stream's
        keyframe (whichever comes first), else None (see the module docstring)."""
        if estimate is None or now - self.started < self.grace:
            return None
        high = rates.get(HIGH) or 0
        if self.current == HIGH:
            if self._short_since is not None or (loss is not None and loss > self.severe_loss) \
                    or (estimate < self.margin * high and self.overrun(rtt, loss)):
                return LOW
            return None
        if high and estimate >= self.margin * high and not self.overrun(rtt, loss):
            return HIGH
        return None

    def restarted(self, stream, now):
        """The viewer restarted at ``stream``'s keyframe after a picture loss: a switch
        as if decided here (down: the next probe waits; up: as a passed probe)."""
        if stream == self.current:
            return
        if stream == LOW:
            self._down(now)
        else:
            self._up(now)

    def _ramp(self, elapsed, low, high):
        # Geometric: a link only a little wider than stream2 is overrun gently.
        start = max(1.5 * low, 1.0)
        share = min(1.0, elapsed / self.probe_time)
        return start * max(1.0, self.margin * high / start) ** share

    def _fail(self, now):
        self.failed_probes += 1
        self._next_probe = now + self.backoff
        self.backoff = min(self.max_backoff, self.backoff * 2)
        self._probe_start = self.probe_rate = self._calm_since = None

    def _down(self, now):
        self._short_since = self._calm_since = None
        if self._up_at is not None and now - self._up_at < self.probe_window:
            self._fail(now)
        else:
            self._next_probe = now + self.first_backoff
        self._up_at = None
        self.current = LOW
        return LOW

    def _up(self, now):
        self._probe_start = self.probe_rate = self._calm_since = self._short_since = None
        self._up_at = now
        self.current = HIGH
        return HIGH

    def forced(self, stream, now):
        """The viewer was put on ``stream`` by other means (a manual switch)."""
        self.current = stream
        self._short_since = self._calm_since = self._up_at = None
        self._probe_start = self.probe_rate = None
        self._next_probe = now
