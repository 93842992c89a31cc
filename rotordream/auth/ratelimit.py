"""Sliding-window rate limits keyed by client, user name or connection."""

import collections


class RateLimiter:
    """At most ``limit`` events per ``period`` seconds per key; ``clock`` is an IReactorTime."""

    MAX_KEYS = 10000

    def __init__(self, limit, period, clock):
        self.limit = limit
        self.period = period
        self._clock = clock
        self._events = collections.OrderedDict()
        self.refused = 0  # events refused since the start (read by metrics)

    @property
    def enabled(self):
        """False when the limit is 0 (limits switched off)."""
        return self.limit > 0

    def _window(self, key):
        now = self._clock.seconds()
        q = self._events.get(key)
        if q is None:
            return now, None
        while q and now - q[0] >= self.period:
            q.popleft()
        return now, q

    def configure(self, limit, period):
        """New limits (a reload): events already counted stay, judged by the new window."""
        self.limit = limit
        self.period = period

    def retry_after(self, key):
        """Seconds until ``key`` may act again (0 when it may now)."""
        if not self.enabled:
            return 0
        now, q = self._window(key)
        if q is None or len(q) < self.limit:
            return 0
        return max(1, int(q[0] + self.period - now + 0.999))

    def hit(self, key):
        """Count one event for ``key``; return 0 if allowed, else the seconds to wait."""
        if not self.enabled:
            return 0
        wait = self.retry_after(key)
        if wait:
            self.refused += 1
            return wait
        q = self._events.get(key)
        if q is None:
            q = self._events[key] = collections.deque()
            if len(self._events) > self.MAX_KEYS:
                self._events.popitem(last=False)
        else:
            self._events.move_to_end(key)
        q.append(self._clock.seconds())
        return 0

    def reset(self, key):
        """Forget ``key``'s events."""
        self._events.pop(key, None)


class Lockout:
    """Failed logins per key (a user name at one address): too many lock the key, with backoff.

    ``limit`` failures within ``window`` seconds lock the key for ``window`` seconds;
    each lockout that follows while the last one is remembered lasts twice as long, up
    to ``longest``. A key is forgiven (back to the short lockout) after ``longest``
    seconds without one, or at once by :meth:`reset` (a correct password).
    """

    MAX_KEYS = 10000

    def __init__(self, limit, window, longest, clock):
        self.limit = limit
        self.window = window
        self.longest = max(longest, window)
        self._clock = clock
        self._keys = collections.OrderedDict()  # key -> _Record

    def configure(self, limit, window, longest):
        """New limits (a reload); lockouts already running keep their end time."""
        self.limit = limit
        self.window = window
        self.longest = max(longest, window)

    @property
    def enabled(self):
        """False when the limit is 0 (lockout switched off)."""
        return self.limit > 0

    def retry_after(self, key):
        """Seconds ``key`` stays locked (0 when it is not)."""
        rec = self._keys.get(key)
        if rec is None:
            return 0
        left = rec.until - self._clock.seconds()
        return max(1, int(left + 0.999)) if left > 0 else 0

    def failed(self, key):
        """Count one failure for ``key``; return the lockout it started in seconds, or 0."""
        if not self.enabled:
            return 0
        now = self._clock.seconds()
        rec = self._keys.get(key)
        if rec is None:
            self._make_room(now)
            rec = self._keys[key] = _Record()
        else:
            self._keys.move_to_end(key)
        while rec.failures and now - rec.failures[0] >= self.window:
            rec.failures.popleft()
        rec.failures.append(now)
        if len(rec.failures) < self.limit:
            return 0
        if rec.until and now - rec.until > self.longest:
            rec.strikes = 0
        duration = min(self.window * 2 ** min(rec.strikes, 32), self.longest)
        rec.until = now + duration
        rec.strikes += 1
        rec.failures.clear()
        return duration

    def reset(self, key):
        """Forget ``key``'s failures and lockouts."""
        self._keys.pop(key, None)

    def _make_room(self, now):
        if len(self._keys) < self.MAX_KEYS:
            return
        # Forget what no longer matters first; a flood of new keys must not evict a
        # lockout that is still running (that would unlock a guesser).
        for key in [k for k, r in self._keys.items() if not r.matters(now, self)]:
            del self._keys[key]
        if len(self._keys) >= self.MAX_KEYS:
            idle = next((k for k, r in self._keys.items() if r.until <= now), None)
            self._keys.pop(idle if idle is not None else next(iter(self._keys)))


class _Record:
    __slots__ = ("failures", "until", "strikes")

    def __init__(self):
        self.failures = collections.deque()
        self.until = 0.0
        self.strikes = 0

    def matters(self, now, lockout):
        """Still locked, recently failed, or remembered for the next lockout's backoff."""
        return (self.until > now or (self.failures and now - self.failures[-1] < lockout.window)
                or (self.strikes and now - self.until <= lockout.longest))
