"""Which stream an "auto" WebRTC viewer gets, from the bandwidth estimates its browser sends.

The camera encodes once, so a viewer's quality is adapted by choosing between
the two encoded streams, not by re-encoding. Pure: the caller passes each
estimate (REMB, bit/s), what stream1 needs now and the time.

A receiver's estimate cannot grow much beyond what it receives, so once on
stream2 it never shows room for stream1: the policy probes instead, going
back up after a wait that doubles each time a probe fails (congestion comes
back within ``probe_hold`` seconds) and resets when one succeeds.
"""

HIGH, LOW = "stream1", "stream2"


class AutoStream:
    """The stream choice for one viewer; :meth:`estimate` returns a new choice or None."""

    def __init__(self, now, down_ratio=0.85, down_count=2, probe_after=20.0,
                 probe_max=300.0, probe_hold=6.0):
        self.down_ratio = down_ratio    # an estimate under this share of stream1's need is low
        self.down_count = down_count    # low estimates in a row before going down
        self.probe_after = probe_after
        self.probe_max = probe_max
        self.probe_hold = probe_hold    # seconds up without congestion for a probe to count
        self.stream = HIGH
        self.probe_wait = probe_after
        self._low = 0
        self._since = now               # when the current stream was chosen
        self._probing = False

    def estimate(self, bitrate, needed, now):
        """Take one estimate; the stream to switch to, or None to stay."""
        if self.stream == LOW:
            if now - self._since >= self.probe_wait:
                return self._choose(HIGH, now, probing=True)
            return None
        self._low = self._low + 1 if bitrate < self.down_ratio * needed else 0
        if self._low >= self.down_count:
            if self._probing:  # the probe brought congestion back: wait longer next time
                self.probe_wait = min(self.probe_wait * 2, self.probe_max)
            return self._choose(LOW, now)
        if self._probing and now - self._since >= self.probe_hold:
            self._probing = False      # stream1 fits again
            self.probe_wait = self.probe_after
        return None

    def _choose(self, stream, now, probing=False):
        self.stream = stream
        self._since = now
        self._low = 0
        self._probing = probing
        return stream
