"""Password checks off the event loop: a bounded thread pool, joined duplicates, a short cache.

An scrypt check costs ~40 ms of CPU; on the reactor it would stall every stream,
broadcast and health check. :class:`PasswordChecker` runs it in a small thread
pool and never lets work pile up: at most ``threads + queue`` checks are running
or waiting, and the caller is told to come back when that is full. The same
user name and password checked again while a check runs joins it; once verified,
they are remembered for ``cache_seconds``, under an HMAC whose key is made anew
at each start, so the cache never holds a password.
"""

import collections
import hashlib
import hmac
import secrets

from twisted.internet import defer
from twisted.python.failure import Failure

from rotordream.auth.passwords import verify_password

CHANGED = "changed"
"""What a check answers when the user's password changed while it ran."""


class _Check:
    __slots__ = ("name", "waiting", "stale")

    def __init__(self, name):
        self.name = name
        self.waiting = []
        self.stale = False


class PasswordChecker:
    """Verifies (user name, password) against ``users`` in ``pool``; results arrive on ``reactor``.

    ``pool`` has twisted's ``callInThreadWithCallback``; None runs checks at once in the
    caller (unit tests only). ``reactor`` provides ``seconds`` and ``callFromThread``.
    """

    MAX_CACHED = 1024

    def __init__(self, users, reactor, pool=None, threads=2, queue=16, cache_seconds=60):
        self.users = users
        self._reactor = reactor
        self._pool = pool
        self.capacity = max(1, threads) + max(0, queue)
        self.cache_seconds = cache_seconds
        self.running = 0  # checks handed to the pool and not back yet
        self._key = secrets.token_bytes(32)
        self._cache = collections.OrderedDict()  # id -> (name, expires)
        self._checks = {}  # id -> _Check

    def reconfigure(self, threads, queue, cache_seconds):
        """New pool size, queue and cache lifetime (a reload); running checks finish as
        they are and names cached already keep their expiry."""
        self.capacity = max(1, threads) + max(0, queue)
        self.cache_seconds = cache_seconds
        adjust = getattr(self._pool, "adjustPoolsize", None)
        if adjust is not None:
            adjust(minthreads=0, maxthreads=max(1, threads))

    def _id(self, name, password):
        data = b"%d:%s%s" % (len(name), name.encode("utf-8", "surrogatepass"),
                             password.encode("utf-8", "surrogatepass"))
        return hmac.new(self._key, data, hashlib.sha256).digest()

    def cached(self, name, password):
        """True when this user name and password were verified less than cache_seconds ago."""
        key = self._id(name, password)
        entry = self._cache.get(key)
        if entry is None:
            return False
        if entry[1] > self._reactor.seconds():
            return True
        del self._cache[key]
        return False

    def joinable(self, name, password):
        """True when the same check is running now (joining it costs no pool work)."""
        return self._id(name, password) in self._checks

    @property
    def full(self):
        """True when no more checks may be handed to the pool."""
        return self.running >= self.capacity

    def check(self, name, password):
        """Deferred of True, False, or :data:`CHANGED`; joins a running identical check.

        Callers look at :attr:`full` first: this never refuses.
        """
        key = self._id(name, password)
        check = self._checks.get(key)
        d = defer.Deferred()
        if check is not None:
            check.waiting.append(d)
            return d
        check = self._checks[key] = _Check(name)
        check.waiting.append(d)
        stored = self.users.password_hash(name)
        if self._pool is None:
            self._done(key, check, stored, password, *_call(verify_password, password, stored))
            return d
        self.running += 1

        def report(ok, result):  # in the pool's thread
            self._reactor.callFromThread(self._back, key, check, stored, password, ok, result)
        self._pool.callInThreadWithCallback(report, verify_password, password, stored)
        return d

    def _back(self, key, check, stored, password, ok, result):
        self.running -= 1
        self._done(key, check, stored, password, ok, result)

    def _done(self, key, check, stored, password, ok, result):
        if self._checks.get(key) is check:
            del self._checks[key]
        if not ok:
            outcome = result  # a Failure: verify_password never raises, but say so if it did
        elif check.stale or self.users.password_hash(check.name) != stored:
            outcome = CHANGED
        else:
            outcome = bool(result) and self.users.get(check.name) is not None
            if outcome and self.cache_seconds > 0:
                self._remember(key, check.name)
        for d in check.waiting:
            if isinstance(outcome, Failure):
                d.errback(outcome)
            else:
                d.callback(outcome)

    def _remember(self, key, name):
        self._cache[key] = (name, self._reactor.seconds() + self.cache_seconds)
        self._cache.move_to_end(key)
        while len(self._cache) > self.MAX_CACHED:
            self._cache.popitem(last=False)

    def forget(self, name):
        """Drop what is known of ``name`` (its password changed or it was deleted)."""
        for key in [k for k, (n, _) in self._cache.items() if n == name]:
            del self._cache[key]
        for key, check in list(self._checks.items()):
            if check.name == name:
                check.stale = True
                del self._checks[key]


def _call(fn, *args):
    try:
        return True, fn(*args)
    except Exception:
        return False, Failure()
