"""The video source supervisor: the real source while it works, NO SIGNAL while it does not.

A failing source never stops the daemon: the supervisor shows the NO SIGNAL
card instead and tries the source again with backoff. When to try is a pure
state machine, :class:`RetryBackoff`, on a clock (anything with
``seconds()``: ``task.Clock`` in tests, :class:`MonotonicClock` in the capture
thread), so its timing is tested without waiting.
"""

import time

from twisted.logger import Logger

from rotordream.media.sources import NoSignalSource, SourceError

log = Logger()

RETRY_MIN, RETRY_MAX = 1.0, 30.0
LIVE, WAITING = "live", "waiting"


class MonotonicClock:
    """``seconds()`` from the monotonic clock: the capture thread's time line."""

    def seconds(self):
        """Monotonic seconds."""
        return time.monotonic()


class RetryBackoff:
    """When to try a failed source again.

    States: ``LIVE`` (the source works) and ``WAITING`` (the card is shown
    until ``retry_at``). A failed open waits ``delay`` (``minimum`` at first);
    each failed retry doubles it up to ``maximum``; a source lost while
    reading waits ``minimum``; any success returns to ``minimum``.
    """

    def __init__(self, clock, minimum=RETRY_MIN, maximum=RETRY_MAX):
        self.clock = clock
        self.minimum = minimum
        self.maximum = maximum
        self.state = LIVE
        self.delay = minimum
        self.retry_at = None

    def opened(self, ok):
        """The source was (re)opened for new settings; ``ok`` says whether it worked."""
        if ok:
            self._live()
        else:
            self._wait()

    def lost(self):
        """The live source failed while reading."""
        self.delay = self.minimum
        self._wait()

    def due(self):
        """True when the card is shown and it is time to try the source again."""
        return self.state == WAITING and self.clock.seconds() >= self.retry_at

    def retried(self, ok):
        """The outcome of a retry :meth:`due` asked for."""
        if ok:
            self._live()
        else:
            self.delay = min(self.delay * 2, self.maximum)
            self._wait()

    def _live(self):
        self.state, self.delay, self.retry_at = LIVE, self.minimum, None

    def _wait(self):
        self.state, self.retry_at = WAITING, self.clock.seconds() + self.delay


class SourceSupervisor:
    """Opens, reads and retries ``source``, standing in the NO SIGNAL card when it fails.

    Used by the capture thread only. ``on_signal(ok)`` is called there
    whenever the real source starts or stops delivering.
    """

    def __init__(self, source, clock=None, on_signal=lambda ok: None, card=NoSignalSource):
        self.source = source
        self.backoff = RetryBackoff(clock or MonotonicClock())
        self.on_signal = on_signal
        self._card = card
        self.active = None
        self.failures = 0
        self._geometry = None

    @property
    def paced(self):
        """True when the active source paces itself (a camera); else the loop paces it."""
        return self.active.paced

    @property
    def live(self):
        """True while the real source delivers."""
        return self.active is self.source

    def open(self, width, height, fps):
        """(Re)open for a new geometry: the source if it opens, else the card."""
        self._geometry = (width, height, fps)
        if self.active is not None:
            self.active.close()
        try:
            self.source.open(width, height, fps)
            self.active = self.source
        except SourceError as e:
            log.error("video source failed: {error}; showing NO SIGNAL", event="source_failed",
                      source=self.source.name, error=e)
            self.failures += 1
            self.active = self._open_card()
        self.backoff.opened(self.live)
        self.on_signal(self.live)

    def retry_if_due(self):
        """Try the source again when the backoff says so; True if it is back."""
        if self.live or not self.backoff.due():
            return False
        try:
            self.source.open(*self._geometry)
        except SourceError as e:
            self.backoff.retried(False)
            log.debug("video source still failing: {e}", e=e)
            return False
        self.active.close()
        self.active = self.source
        self.backoff.retried(True)
        self.on_signal(True)
        log.info("video source {source} is back", event="source_restored",
                 source=self.source.name)
        return True

    def read(self, number, wall):
        """The next frame, or None when the source just failed (the card takes over)."""
        try:
            return self.active.read(number, wall)
        except SourceError as e:
            log.error("video source failed: {error}; showing NO SIGNAL", event="source_failed",
                      source=self.source.name, error=e)
            self.failures += 1
            self.active.close()
            self.active = self._open_card()
            self.on_signal(False)
            self.backoff.lost()
            return None

    def close(self):
        """Close the source (and the card, if shown)."""
        for src in {id(self.active): self.active, id(self.source): self.source}.values():
            if src is None:
                continue
            try:
                src.close()
            except Exception:
                pass
        self.active = None

    def _open_card(self):
        card = self._card()
        card.open(*self._geometry)
        return card
