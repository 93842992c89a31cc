"""The ONVIF event broker, without I/O: current property values, subscriptions, fan-out.

The :class:`Broker` keeps the current value of every property topic
(recording, PTZ move status, motor failure, motion) and hands each event to
the subscriptions whose filter selects it (the subscription kinds are in
:mod:`rotordream.onvif.subscriptions`). It counts subscription slots:
``[onvif] max_subscriptions`` in all and ``max_subscriptions_per_user`` per
user name, every anonymous client counting as the one user "anonymous" (per
address would let a client with a few addresses take every slot).
Authenticated admins are exempt from the per-user quota and may go past the
total by :data:`ADMIN_HEADROOM`, so the administrator can always subscribe
while others hold every slot; the hard ceiling stays bounded.

It also keeps the last :data:`HISTORY` property changes, oldest first, for the
recording search's FindEvents.

The clock is passed in (anything with ``seconds()``); nothing here touches
the reactor, so it is tested with plain objects.
"""

import collections
import secrets

from rotordream.onvif import topics
from rotordream.onvif.topics import CHANGED, INITIALIZED

HISTORY = 4096               # property changes kept for the recording search (FindEvents)
ADMIN_HEADROOM = 4           # subscriptions an admin may add past max_subscriptions
ANONYMOUS_OWNER = "anonymous clients"  # the quota's one user for them all (no user name has
                                       # a space, so no account shares it)


class SubscriptionLimit(Exception):
    """Every subscription slot is taken, or the caller's quota is used up."""


class UnknownSubscription(KeyError):
    """No subscription with that id (never made, expired or unsubscribed)."""


def quota_owner(principal):
    """``(user name the quota counts, admin?)``: every anonymous client is one user, and
    only an authenticated admin is exempt (an anonymous role of admin is not)."""
    if not principal.authenticated:
        return ANONYMOUS_OWNER, False
    return principal.name, principal.role == "admin"


class Broker:
    """Current property values, live subscriptions, and :meth:`publish` to fan out events.

    ``clock`` is an IReactorTime (its ``seconds()`` is wall-clock time);
    ``post(url, body)`` returns a Deferred and delivers base-notification
    Notify requests (see :mod:`rotordream.onvif.notify`); ``max_per_user``
    None: no per-user quota.
    """

    def __init__(self, clock, max_subscriptions=16, post=None, topic_list=topics.TOPICS,
                 max_per_user=None):
        self.clock = clock
        self.max_subscriptions = max_subscriptions
        self.max_per_user = max_per_user
        self.post = post
        self.topics = tuple(topic_list)
        self.subscriptions = {}
        self.properties = {}      # Event.key -> latest Event of a property topic
        self.history = collections.deque(maxlen=HISTORY)  # the changes, oldest first
        self._detach = []

    def publish(self, topic, source, data, utc=None):
        """Announce an event; for a property topic only a change is announced. Returns the
        Event (None when a property kept its value)."""
        event = topics.Event(topic, self.clock.seconds() if utc is None else utc,
                             dict(source), dict(data))
        if topic.is_property:
            old = self.properties.get(event.key)
            if old is not None and old.data == event.data:
                return None
            event.operation = CHANGED if old is not None else INITIALIZED
            self.properties[event.key] = event
            self.history.append(event)
        for sub in list(self.subscriptions.values()):
            sub.offer(event)
        return event

    def snapshot(self):
        """Every property's current value as an Initialized event (a synchronization point)."""
        return [e.as_operation(INITIALIZED) for e in self.properties.values()]

    def add(self, make, termination, topic_filter, owner=None, admin=False):
        """Register ``make(broker, id, termination, filter)``'s subscription; it starts with
        the current properties queued (ONVIF Core: a new subscription gets their state).

        ``owner`` is the quota's user name (None: not counted per user); ``admin``
        lifts the per-user quota and the total up to the headroom.
        """
        self._admit(owner, admin)
        sub_id = secrets.token_hex(8)
        sub = make(self, sub_id, termination, topic_filter)
        sub.owner = owner
        self.subscriptions[sub_id] = sub
        sub.schedule()
        sub.synchronize()
        return sub

    def _admit(self, owner, admin):
        held = len(self.subscriptions)
        if admin:
            if held >= self.max_subscriptions + ADMIN_HEADROOM:
                raise SubscriptionLimit("all %d event subscriptions are taken, %d more for "
                                        "administrators too" % (self.max_subscriptions,
                                                                ADMIN_HEADROOM))
            return
        if held >= self.max_subscriptions:
            raise SubscriptionLimit("all %d event subscriptions are taken"
                                    % self.max_subscriptions)
        if owner is not None and self.max_per_user is not None:
            mine = sum(1 for s in self.subscriptions.values() if s.owner == owner)
            if mine >= self.max_per_user:
                raise SubscriptionLimit("%s holds %d event subscriptions, the most one user "
                                        "may (max_subscriptions_per_user)" % (owner, mine))

    def get(self, sub_id):
        """The live subscription ``sub_id``; UnknownSubscription otherwise."""
        sub = self.subscriptions.get(sub_id) if sub_id else None
        if sub is None:
            raise UnknownSubscription(sub_id)
        return sub

    def remove(self, sub_id):
        """End a subscription (Unsubscribe or expiry); a waiting pull is answered."""
        sub = self.subscriptions.pop(sub_id, None)
        if sub is not None:
            sub.close()

    def on_stop(self, detach):
        """Call ``detach()`` when the broker stops (unhooking an event source)."""
        self._detach.append(detach)

    def stop(self):
        """End every subscription and detach from the event sources."""
        for sub_id in list(self.subscriptions):
            self.remove(sub_id)
        for detach in self._detach:
            detach()
        self._detach = []
