"""The ONVIF Events service (ver10 events WSDL): its SOAP operations table.

Requests become calls on the broker (:mod:`rotordream.onvif.broker`) and its
subscriptions (:mod:`rotordream.onvif.subscriptions`): CreatePullPointSubscription
and PullMessages for pull points, wsnt:Subscribe for Notify delivery
(:mod:`rotordream.onvif.notify`), Renew, Unsubscribe and SetSynchronizationPoint
for both. Subscription managers live at
``/onvif/events_service/subscription/<id>``, an absolute address built from
the Host the client used; a request finds its subscription by that path or by
its wsa:To header. A refused slot is a ter:MaxPullPoints fault.
"""

from urllib.parse import urlsplit

from twisted.logger import Logger

from rotordream.auth import roles
from rotordream.onvif import soap, topics
from rotordream.onvif.broker import SubscriptionLimit, UnknownSubscription, quota_owner
from rotordream.onvif.dispatch import PRE_AUTH, Table
from rotordream.onvif.soap import E
from rotordream.onvif.subscriptions import PullPoint, PushSubscription

log = Logger()

OPS = Table("tev")

DEFAULT_TERMINATION = 60.0   # seconds a subscription lives without InitialTerminationTime
MAX_TERMINATION = 3600.0     # longer requests are shortened (the answer says so)
MAX_PULL_TIMEOUT = 600.0     # PullMessages waits at most this long
MAX_MESSAGE_LIMIT = 1000
SUB_PATH = "subscription"


def service_capabilities(call):
    """tev:Capabilities: pull points and base notification, no pausing, the cap."""
    cap = call.ctx.config.onvif.max_subscriptions
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


def _create(call, make, filter_):
    broker = call.ctx.events
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
        return call.ctx.events.get(sub_id)
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
    return topics.event_properties(call.ctx.events.topics)


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
    call.ctx.events.remove(sub.id)
    return E("wsnt:UnsubscribeResponse")


# The events endpoint serves the wsnt operations too (the events WSDL binds them there).
OPS.update(WSNT_OPS)
