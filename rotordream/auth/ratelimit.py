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
