"""The ONVIF Events service (ver10 events WSDL) and the in-process event broker behind it.

The :class:`Broker` keeps the current value of every property topic
(recording, PTZ move status, motor failure, motion) and hands each event to
the subscriptions whose filter selects it. Two kinds of subscription:

* pull points (CreatePullPointSubscription): events queue until the client
  asks with PullMessages, a long poll answered by the first event or by a
  ``callLater`` timeout, never by blocking the reactor;
* base notification (wsnt:Subscribe): events are POSTed to the consumer's
  URL as wsnt:Notify, one request in flight per subscription.

Both expire at their termination time unless renewed. Slots: ``[onvif]
max_subscriptions`` in all and ``max_subscriptions_per_user`` per user name, every
anonymous client counting as the one user "anonymous" (per address would let a
client with a few addresses take every slot). Authenticated admins are exempt
from the per-user quota and may go past the total by :data:`ADMIN_HEADROOM`, so
the administrator can always subscribe while others hold every slot; the
hard ceiling stays bounded. A refusal is the same ter:MaxPullPoints fault as the
total limit. A pull point made with a relative (or no)
termination time is also kept alive by its PullMessages requests, each moving
the termination that far ahead again (ONVIF Core, real-time pull point).
Subscription managers live at ``/onvif/events_service/subscription/<id>``, an
absolute address built from the Host the client used.

The broker is made on the first use (``ctx.events``) or when the service from
:func:`make_events_service` starts; it feeds itself from ``ctx.state`` changes
and from a :mod:`rotordream.media.motion` detector on the pipeline's frames.
"""

import secrets
from collections import deque
from io import BytesIO
from urllib.parse import urlsplit

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from rotordream.auth import roles
from rotordream.onvif import soap, topics
from rotordream.onvif.dispatch import PRE_AUTH, Table
from rotordream.onvif.soap import E
from rotordream.onvif.topics import (INITIALIZED, CHANGED, MOTION, MOTION_ALARM,
                                     MOTOR_FAILURE, PTZ_MOVE, RECORDING_JOB, RECORDING_STATE)

log = Logger()

OPS = Table("tev")

DEFAULT_TERMINATION = 60.0   # seconds a subscription lives without InitialTerminationTime
MAX_TERMINATION = 3600.0     # longer requests are shortened (the answer says so)
MAX_PULL_TIMEOUT = 600.0     # PullMessages waits at most this long
MAX_MESSAGE_LIMIT = 1000
QUEUE_LIMIT = 1000           # events kept per subscription; the oldest go first
NOTIFY_BATCH = 100           # events per Notify request
NOTIFY_TIMEOUT = 10.0        # seconds for a consumer to take a Notify
ADMIN_HEADROOM = 4           # subscriptions an admin may add past max_subscriptions
ANONYMOUS_OWNER = "anonymous clients"  # the quota's one user for them all (no user name has
                                       # a space, so no account shares it)
SUB_PATH = "subscription"
NOTIFY_ACTION = "http://docs.oasis-open.org/wsn/bw-2/NotificationConsumer/Notify"

# Tokens the event sources name; they match the media and PTZ services'.
VIDEO_SOURCE = "video_source"
VIDEO_SOURCE_CONFIG = "video_source_config"
ANALYTICS_CONFIG = "analytics_config"
MOTION_RULE = "cell_motion"
RECORDING_JOB_TOKEN = "record_job"
RECORDING_TOKEN = "recording"
PTZ_CONFIG = "ptz_config"
PTZ_NODE = "ptz_node"


class SubscriptionLimit(Exception):
    """Every subscription slot is taken, or the caller's quota is used up."""


class UnknownSubscription(KeyError):
    """No subscription with that id (never made, expired or unsubscribed)."""


# -- the broker ----------------------------------------------------------------------

class Broker:
    """Current property values, live subscriptions, and :meth:`publish` to fan out events.

    ``clock`` is an IReactorTime (its ``seconds()`` is wall-clock time);
    ``post(url, body)`` returns a Deferred and delivers base-notification
    Notify requests; ``max_per_user`` None: no per-user quota.
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
        self.detector = None
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

    def stop(self):
        """End every subscription and detach from the event sources."""
        for sub_id in list(self.subscriptions):
            self.remove(sub_id)
        for detach in self._detach:
            detach()
        self._detach = []
        if self.detector is not None:
            self.detector.enabled = False


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


def notify_envelope(events, consumer, subscription_address=None):
    """A SOAP 1.2 wsnt:Notify request carrying ``events``."""
    return soap.envelope(soap.SOAP12, [E("wsnt:Notify", [
        topics.notification(e, subscription_address) for e in events])],
        [E("wsa:Action", NOTIFY_ACTION), E("wsa:To", consumer)])


def agent_post(reactor, timeout=NOTIFY_TIMEOUT):
    """``post(url, body)`` with twisted.web's Agent: Deferred of the HTTP status."""
    from twisted.web.client import Agent, FileBodyProducer, readBody
    from twisted.web.http_headers import Headers

    agent = Agent(reactor, connectTimeout=timeout)
    content_type = ('application/soap+xml; charset=utf-8; action="%s"'
                    % NOTIFY_ACTION).encode()

    def post(url, body):
        d = agent.request(b"POST", url.encode("utf-8"),
                          Headers({b"content-type": [content_type]}),
                          FileBodyProducer(BytesIO(body)))
        d.addCallback(lambda response: readBody(response).addCallback(
            lambda _: response.code))
        d.addTimeout(timeout, reactor)
        return d
    return post


# -- the sources: camera state and the motion detector -------------------------------

def _record_events(value):
    active = value is True   # "paused" writes nothing
    return ((RECORDING_JOB, {"RecordingJobToken": RECORDING_JOB_TOKEN},
             {"State": "Active" if active else "Idle"}),
            (RECORDING_STATE, {"RecordingToken": RECORDING_TOKEN}, {"IsRecording": active}))


def _motor_events(value):
    return ((PTZ_MOVE, {"PTZConfigurationToken": PTZ_CONFIG},
             {"PanTilt": "MOVING" if value == "moving" else "IDLE"}),
            (MOTOR_FAILURE, {"Token": PTZ_NODE}, {"Failed": value == "fault"}))


def _motion_events(moving):
    return ((MOTION, {"VideoSourceConfigurationToken": VIDEO_SOURCE_CONFIG,
                      "VideoAnalyticsConfigurationToken": ANALYTICS_CONFIG,
                      "Rule": MOTION_RULE}, {"IsMotion": bool(moving)}),
            (MOTION_ALARM, {"Source": VIDEO_SOURCE}, {"State": bool(moving)}))


def attach_sources(broker, ctx, motion_detector=True):
    """Feed ``broker`` from ``ctx.state`` (record, motor-state, motor faults) and a motion
    detector on ``ctx.pipeline``; publish the current values first."""
    state = ctx.state
    has_motor = getattr(ctx, "motor", None) is not None

    def publish(triples, utc=None):
        for topic, source, data in triples:
            if topic in broker.topics:
                broker.publish(topic, source, data, utc)

    publish(_record_events(state.get("record")))
    if has_motor:
        publish(_motor_events(state.get("motor-state")))
    publish(_motion_events(False))

    def changed(changes, origin):
        if "record" in changes:
            publish(_record_events(changes["record"]))
        if "motor-state" in changes and has_motor:
            publish(_motor_events(changes["motor-state"]))

    def happened(event):
        # The motor service announces a lost controller as an event, too.
        if has_motor and isinstance(event, dict) and event.get("code") == "MOTOR_FAULT":
            publish(((MOTOR_FAILURE, {"Token": PTZ_NODE}, {"Failed": True}),))

    broker._detach.append(state.subscribe(changed))
    if hasattr(state, "subscribe_events"):
        broker._detach.append(state.subscribe_events(happened))
    if motion_detector:
        from rotordream.media import motion
        broker.detector = motion.attach(getattr(ctx, "pipeline", None), ctx.reactor,
                                        lambda moving, t: publish(_motion_events(moving), t))


def broker_for(ctx):
    """The context's broker, made and fed on first use (``ctx.events``)."""
    broker = getattr(ctx, "events", None)
    if isinstance(broker, Broker):
        return broker
    has_motor = getattr(ctx, "motor", None) is not None
    topic_list = [t for t in topics.TOPICS
                  if has_motor or t not in (PTZ_MOVE, MOTOR_FAILURE)]
    cfg = getattr(ctx.config, "onvif", None)
    broker = Broker(ctx.reactor, getattr(cfg, "max_subscriptions", 16),
                    agent_post(ctx.reactor), topic_list,
                    getattr(cfg, "max_subscriptions_per_user", None))
    attach_sources(broker, ctx)
    ctx.events = broker
    return broker


class EventsService(service.Service):
    """Starts the broker with the daemon (so motion is tracked before anyone asks) and ends
    every subscription at shutdown."""

    name = "onvif-events"

    def __init__(self, ctx):
        self.ctx = ctx

    def startService(self):
        service.Service.startService(self)
        broker_for(self.ctx)

    def stopService(self):
        service.Service.stopService(self)
        broker = getattr(self.ctx, "events", None)
        if isinstance(broker, Broker):
            broker.stop()


def make_events_service(ctx):
    """The IService for ``make_onvif_service`` to add."""
    return EventsService(ctx)


# -- the SOAP operations -------------------------------------------------------------

def service_capabilities(call):
    """tev:Capabilities: pull points and base notification, no pausing, the cap."""
    cfg = getattr(call.ctx.config, "onvif", None)
    cap = getattr(cfg, "max_subscriptions", 16)
    return E("tev:Capabilities", WSSubscriptionPolicySupport=False, WSPullPointSupport=True,
             WSPausableSubscriptionManagerInterfaceSupport=False,
             MaxNotificationProducers=cap, MaxPullPoints=cap,
             PersistentNotificationStorage=False)


def _filter(call):
    try:
        return topics.parse_filter(soap.child(call.request, "Filter"))
    except topics.FilterError as e:
        raise soap.sender(("ter:InvalidArgVal", "ter:InvalidFilterFault"), str(e)) from None


def _termination(call, name, now):
    """(absolute termination, keep-alive seconds or None) from the request's ``name``."""
    raw = (soap.value(call.request, name) or "").strip()
    try:
        when = topics.termination(raw, now, DEFAULT_TERMINATION)
    except ValueError as e:
        raise soap.sender(("ter:InvalidArgVal", "ter:InvalidTerminationTime"),
                          "%s: %s" % (name, e)) from None
    if when <= now:
        raise soap.sender(("ter:InvalidArgVal", "ter:InvalidTerminationTime"),
                          "%s is in the past" % name)
    when = min(when, now + MAX_TERMINATION)
    relative = not raw or raw.startswith("P")
    return when, (when - now if relative else None)


def quota_owner(principal):
    """``(user name the quota counts, admin?)``: every anonymous client is one user, and
    only an authenticated admin is exempt (an anonymous role of admin is not)."""
    if not principal.authenticated:
        return ANONYMOUS_OWNER, False
    return principal.name, principal.role == "admin"


def _create(call, make, filter_):
    broker = broker_for(call.ctx)
    now = broker.clock.seconds()
    termination, keepalive = _termination(call, "InitialTerminationTime", now)
    try:
        sub = broker.add(make, termination, filter_, *quota_owner(call.principal))
    except SubscriptionLimit as e:
        raise soap.receiver(("ter:CapabilityViolated", "ter:MaxPullPoints"), str(e)) from None
    sub.keepalive = keepalive
    sub.address = "%s/%s/%s" % (call.xaddr("events"), SUB_PATH, sub.id)
    return sub, now


def _reference(sub):
    return E("wsa:Address", sub.address)


def _url_path(url):
    """The path of ``url``; empty when it is no URL at all."""
    try:
        return urlsplit(url).path
    except ValueError:
        return ""


def _subscription(call):
    """The subscription the request addresses: by its path, else by its wsa:To header."""
    sub_id = None
    if len(call.path) >= 2 and call.path[0] == SUB_PATH:
        sub_id = call.path[1]
    elif call.envelope.header is not None:
        to = call.envelope.header.findtext(soap.qn("wsa:To"))
        parts = [p for p in _url_path((to or "").strip()).split("/") if p]
        if len(parts) >= 2 and parts[-2] == SUB_PATH:
            sub_id = parts[-1]
    try:
        return broker_for(call.ctx).get(sub_id)
    except UnknownSubscription:
        raise soap.sender(("ter:InvalidArgVal", "ter:ResourceUnknown"),
                          "no such subscription (expired or unsubscribed)") from None


@OPS.op("GetServiceCapabilities", PRE_AUTH)
def get_service_capabilities(call):
    """The events service's capabilities."""
    return E("tev:GetServiceCapabilitiesResponse", service_capabilities(call))


@OPS.op("GetEventProperties", roles.STATE_READ)
def get_event_properties(call):
    """The topics this camera announces, with their source and data items."""
    return topics.event_properties(broker_for(call.ctx).topics)


@OPS.op("CreatePullPointSubscription", roles.STATE_READ)
def create_pull_point_subscription(call):
    """A new pull point at an absolute address; current properties are queued in it."""
    sub, now = _create(call, PullPoint, _filter(call))
    log.info("ONVIF pull point {id} for {user} until {until}", id=sub.id,
             user=call.principal.name, until=topics.format_time(sub.termination))
    return E("tev:CreatePullPointSubscriptionResponse",
             E("tev:SubscriptionReference", _reference(sub)),
             E("wsnt:CurrentTime", topics.format_time(now)),
             E("wsnt:TerminationTime", topics.format_time(sub.termination)))


def _pull_arguments(call):
    raw = soap.value(call.request, "Timeout")
    try:
        timeout = topics.parse_duration(raw) if raw else 0.0
    except ValueError as e:
        raise soap.sender(("ter:InvalidArgVal",), "Timeout: %s" % e) from None
    limit = soap.number(call.request, "MessageLimit", 1, kind=int)
    return min(timeout, MAX_PULL_TIMEOUT), max(1, min(limit, MAX_MESSAGE_LIMIT))


@OPS.op("PullMessages", roles.STATE_READ)
def pull_messages(call):
    """Queued events at once, else a long poll until one arrives or Timeout passes."""
    sub = _subscription(call)
    if not isinstance(sub, PullPoint):
        raise soap.sender(("ter:InvalidArgVal", "ter:ResourceUnknown"),
                          "this subscription delivers by Notify, not PullMessages")
    timeout, limit = _pull_arguments(call)

    def answer(events):
        return E("tev:PullMessagesResponse",
                 E("tev:CurrentTime", topics.format_time(sub.clock.seconds())),
                 E("tev:TerminationTime", topics.format_time(sub.termination)),
                 [topics.notification(e) for e in events])
    return sub.pull(timeout, limit).addCallback(answer)


@OPS.op("SetSynchronizationPoint", roles.STATE_READ)
def set_synchronization_point(call):
    """Queue (or Notify) the current value of every property topic."""
    _subscription(call).synchronize()
    return E("tev:SetSynchronizationPointResponse")


@OPS.op("Seek", roles.STATE_READ)
def seek(call):
    """Events are not stored, so there is nothing to seek to."""
    raise soap.receiver(("ter:ActionNotSupported",), "events are not stored; Seek is "
                        "not supported")


def _renew(call):
    sub = _subscription(call)
    now = sub.clock.seconds()
    sub.renew(*_termination(call, "TerminationTime", now))
    return sub, now


def _renew_response(call):
    sub, now = _renew(call)
    return E("wsnt:RenewResponse",
             E("wsnt:TerminationTime", topics.format_time(sub.termination)),
             E("wsnt:CurrentTime", topics.format_time(now)))


# Base notification (WS-BaseNotification) operations are in the wsnt namespace.
WSNT_OPS = Table("wsnt")


@WSNT_OPS.op("Subscribe", roles.CAMERA_CONTROL)
def subscribe(call):
    """wsnt:Subscribe: Notify requests will be POSTed to the ConsumerReference address.

    Operators and admins only: it makes the camera send requests to a URL of
    the caller's choosing.
    """
    consumer = soap.value(call.request, "ConsumerReference/Address")
    try:
        parts = urlsplit(consumer or "")
        usable = parts.scheme in ("http", "https") and parts.hostname and \
            (parts.port or True)
    except ValueError:  # an unclosed IPv6 bracket, a port that is no number
        usable = False
    if not usable:
        raise soap.sender(("ter:InvalidArgVal", "ter:InvalidConsumerReference"),
                          "ConsumerReference must be an http(s) URL, not %r"
                          % (consumer or "")[:80])

    def make(broker, sub_id, termination, topic_filter):
        return PushSubscription(broker, sub_id, termination, topic_filter, consumer)
    sub, now = _create(call, make, _filter(call))
    log.info("ONVIF Notify subscription {id} to {url} for {user}", id=sub.id, url=consumer,
             user=call.principal.name)
    return E("wsnt:SubscribeResponse", E("wsnt:SubscriptionReference", _reference(sub)),
             E("wsnt:CurrentTime", topics.format_time(now)),
             E("wsnt:TerminationTime", topics.format_time(sub.termination)))


@WSNT_OPS.op("Renew", roles.STATE_READ)
def renew(call):
    """wsnt:Renew, for either kind of subscription (sent to the subscription's address)."""
    return _renew_response(call)


@WSNT_OPS.op("Unsubscribe", roles.STATE_READ)
def unsubscribe(call):
    """wsnt:Unsubscribe: the subscription ends now."""
    sub = _subscription(call)
    broker_for(call.ctx).remove(sub.id)
    return E("wsnt:UnsubscribeResponse")


# The events endpoint serves the wsnt operations too (the events WSDL binds them there).
OPS.update(WSNT_OPS)
