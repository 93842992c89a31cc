"""ONVIF event subscriptions on a Clock: pull points and Notify subscriptions.

Two kinds, both made by :meth:`rotordream.onvif.broker.Broker.add`:

* :class:`PullPoint` (CreatePullPointSubscription): events queue until the
  client asks with PullMessages, a long poll answered by the first event or
  by a ``callLater`` timeout, never by blocking the reactor. A pull point
  made with a relative (or no) termination time is also kept alive by its
  PullMessages requests, each moving the termination that far ahead again
  (ONVIF Core, real-time pull point).
* :class:`PushSubscription` (wsnt:Subscribe): events are POSTed to the
  consumer's URL as wsnt:Notify, one request in flight per subscription.

Both expire at their termination time unless renewed; every timer is a
``callLater`` on the broker's clock, so tests move time with
``Clock.advance``.
"""

from collections import deque

from twisted.internet import defer
from twisted.logger import Logger

from rotordream.onvif.notify import notify_envelope

log = Logger()

QUEUE_LIMIT = 1000           # events kept per subscription; the oldest go first
NOTIFY_BATCH = 100           # events per Notify request


class Subscription:
    """What both kinds share: id, termination time, filter, queue, expiry timer."""

    def __init__(self, broker, sub_id, termination, topic_filter):
        self.broker = broker
        self.id = sub_id
        self.termination = termination
        self.filter = topic_filter
        self.queue = deque(maxlen=QUEUE_LIMIT)
        self.address = None       # set by the handler: where clients reach this subscription
        self.owner = None         # the user name its quota counts against (set by the broker)
        self.keepalive = None     # seconds a PullMessages moves the termination ahead (or None)
        self._expiry = None
        self.closed = False

    @property
    def clock(self):
        """The broker's clock."""
        return self.broker.clock

    def schedule(self):
        """(Re)arm the expiry timer for :attr:`termination`."""
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        delay = max(0.0, self.termination - self.clock.seconds())
        self._expiry = self.clock.callLater(delay, self._expire)

    def renew(self, termination, keepalive=None):
        """Move the termination time (``keepalive``: the relative time asked for, if any)."""
        self.termination = termination
        self.keepalive = keepalive
        self.schedule()

    def _expire(self):
        self._expiry = None
        log.info("ONVIF event subscription {id} expired", id=self.id)
        self.broker.remove(self.id)

    def offer(self, event):
        """Queue ``event`` if the filter selects it."""
        if not self.closed and self.filter.selects(event):
            self.queue.append(event)
            self.queued()

    def synchronize(self):
        """Queue the current state of every selected property topic."""
        for event in self.broker.snapshot():
            if self.filter.selects(event):
                self.queue.append(event)
        self.queued()

    def take(self, limit):
        """Remove and return up to ``limit`` queued events, oldest first."""
        return [self.queue.popleft() for _ in range(min(limit, len(self.queue)))]

    def queued(self):
        """Something was queued (subclasses deliver it)."""

    def close(self):
        """Stop the expiry timer; no more events."""
        self.closed = True
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = None


class PullPoint(Subscription):
    """A pull-point subscription: events wait in the queue for PullMessages."""

    def __init__(self, *args):
        super().__init__(*args)
        self._waiter = None       # (Deferred, timeout call, limit) of a waiting PullMessages
        self._wake = None

    def pull(self, timeout, limit):
        """Deferred of up to ``limit`` events: at once if some are queued, else with the
        first to arrive or an empty list after ``timeout`` seconds."""
        if self._waiter is not None:
            # One pull at a time: the newer request wins, the older one gets what there is.
            self._answer()
        self.touch()
        if self.queue or timeout <= 0 or self.closed:
            return defer.succeed(self.take(limit))
        d = defer.Deferred(self._cancelled)
        self._waiter = (d, self.clock.callLater(timeout, self._answer), limit)
        return d

    def queued(self):
        # Answer on the next turn, so events published together arrive together.
        if self._waiter is not None and self.queue and (self._wake is None
                                                         or not self._wake.active()):
            self._wake = self.clock.callLater(0, self._answer)

    def _answer(self):
        if self._wake is not None and self._wake.active():
            self._wake.cancel()
        self._wake = None
        if self._waiter is None:
            return
        d, timer, limit = self._waiter
        self._waiter = None
        if timer.active():
            timer.cancel()
        self.touch()
        d.callback(self.take(limit))

    def touch(self):
        """A PullMessages is activity: a relative termination starts again from now."""
        if self.keepalive is not None and not self.closed:
            self.termination = max(self.termination, self.clock.seconds() + self.keepalive)
            self.schedule()

    def _expire(self):
        if self._waiter is not None and self.keepalive is not None:
            # A pull held open is activity too: not the moment to end the subscription.
            self.touch()
            return
        super()._expire()

    def _cancelled(self, d):
        # The client hung up: forget its pull; the events stay queued for the next one.
        if self._waiter is not None and self._waiter[0] is d:
            _, timer, _ = self._waiter
            self._waiter = None
            if timer.active():
                timer.cancel()

    def close(self):
        """Expire: a waiting PullMessages gets what is queued."""
        super().close()
        self._answer()

    @property
    def waiting(self):
        """True while a PullMessages is held open."""
        return self._waiter is not None


class PushSubscription(Subscription):
    """A base-notification subscription: events are POSTed to ``consumer`` as wsnt:Notify."""

    def __init__(self, broker, sub_id, termination, topic_filter, consumer=None):
        super().__init__(broker, sub_id, termination, topic_filter)
        self.consumer = consumer
        self.sent = 0
        self.failures = 0
        self._in_flight = None
        self._flush_call = None

    def queued(self):
        if self.queue and self._in_flight is None and (self._flush_call is None
                                                       or not self._flush_call.active()):
            self._flush_call = self.clock.callLater(0, self._flush)

    def _flush(self):
        self._flush_call = None
        if self.closed or self._in_flight is not None or not self.queue:
            return
        batch = self.take(NOTIFY_BATCH)
        body = notify_envelope(batch, self.consumer, self.address)
        self._in_flight = d = defer.maybeDeferred(self.broker.post, self.consumer, body)
        d.addCallbacks(self._delivered, self._failed, callbackArgs=(len(batch),))
        d.addBoth(self._done)

    def _delivered(self, status, count):
        if isinstance(status, int) and status >= 300:
            return self._failed(None, "HTTP %d" % status)
        self.sent += count
        return None

    def _failed(self, failure, why=None):
        # The events are dropped: a consumer that is away gets the state again
        # with SetSynchronizationPoint; retrying would pile up behind it.
        self.failures += 1
        log.info("ONVIF Notify to {url} failed: {why}", url=self.consumer,
                 why=why or (failure.getErrorMessage() if failure else "?"))
        return None

    def _done(self, _):
        self._in_flight = None
        self.queued()

    def close(self):
        """No more deliveries (one in flight finishes on its own)."""
        super().close()
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
