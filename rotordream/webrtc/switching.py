"""When a ``stream=auto`` viewer should change streams, pure (given the time).

Down: the viewer's estimate cannot carry stream1 with ``margin`` (estimate below
``margin * stream1``) for ``down_hold`` seconds. A browser's first estimates
start low and ramp up, so nothing is decided during ``grace`` seconds after the
start.

Up: a receiver's REMB is capped near 1.5 times what it receives, so on stream2
it can never show stream1's bitrate; what it does show is whether the link is
congested. The viewer goes back up once for ``up_hold`` seconds the estimate has
held above ``up_margin`` times what it receives (stream2) and the round-trip
time stayed near the best seen: that is a probe. A probe that ends with a
switch down within ``probe_window`` seconds failed: the next probe waits
``backoff`` seconds, doubled after every failed probe up to ``max_backoff``; a
probe that lasts resets it. The caller switches at keyframes only.
"""

HIGH, LOW = "stream1", "stream2"


class AutoSwitch:
    """The switching decision for one viewer; :meth:`update` returns the stream wanted."""

    def __init__(self, now, margin=1.2, down_hold=1.0, grace=4.0, up_margin=1.2, up_hold=5.0,
                 rtt_slack=0.03, probe_window=10.0, backoff=10.0, max_backoff=120.0):
        self.margin = margin
        self.down_hold = down_hold
        self.grace = grace
        self.up_margin = up_margin
        self.up_hold = up_hold
        self.rtt_slack = rtt_slack
        self.probe_window = probe_window
        self.first_backoff = backoff
        self.max_backoff = max_backoff
        self.backoff = backoff
        self.started = now
        self.current = HIGH
        self.best_rtt = None
        self._short_since = None   # since when the estimate cannot carry stream1
        self._good_since = None    # since when stream2's link looks uncongested
        self._probe_at = None      # when the last switch up happened
        self._next_probe = now
        self.failed_probes = 0

    def update(self, now, estimate, rates, rtt=None):
        """The stream this viewer should get now.

        ``estimate``: its bandwidth estimate, bit/s (None: none yet); ``rates``: dict
        stream name -> current bitrate, bit/s; ``rtt``: its round-trip time, seconds.
        """
        if rtt is not None and (self.best_rtt is None or rtt < self.best_rtt):
            self.best_rtt = rtt
        if estimate is None or now - self.started < self.grace:
            return self.current
        high = rates.get(HIGH) or 0
        if self.current == HIGH:
            if estimate < self.margin * high:
                if self._short_since is None:
                    self._short_since = now
                if now - self._short_since >= self.down_hold:
                    return self._down(now)
            else:
                self._short_since = None
                if self._probe_at is not None and now - self._probe_at >= self.probe_window:
                    self._probe_at = None
                    self.backoff = self.first_backoff   # the probe held: start afresh
            return self.current
        low = rates.get(LOW) or 0
        calm = rtt is None or self.best_rtt is None or rtt <= self.best_rtt + self.rtt_slack
        if estimate >= self.up_margin * low and calm:
            if self._good_since is None:
                self._good_since = now
            if now - self._good_since >= self.up_hold and now >= self._next_probe:
                return self._up(now)
        else:
            self._good_since = None
        return self.current

    def _down(self, now):
        self._short_since = None
        self._good_since = None
        if self._probe_at is not None and now - self._probe_at < self.probe_window:
            self.failed_probes += 1
            self._next_probe = now + self.backoff
            self.backoff = min(self.max_backoff, self.backoff * 2)
        else:
            self._next_probe = now + self.first_backoff
        self._probe_at = None
        self.current = LOW
        return LOW

    def _up(self, now):
        self._good_since = None
        self._short_since = None
        self._probe_at = now
        self.current = HIGH
        return HIGH

    def forced(self, stream, now):
        """The viewer was put on ``stream`` by other means (a manual switch)."""
        self.current = stream
        self._short_since = self._good_since = self._probe_at = None
        self._next_probe = now
