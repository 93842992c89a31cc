"""ONVIF event topics and notification messages, without I/O.

What the camera can announce (:data:`TOPICS`), how each event looks on the
wire (``wsnt:NotificationMessage`` around a ``tt:Message``), the topic set
GetEventProperties describes, topic-expression filters, and the
``xs:duration``/``xs:dateTime`` values subscriptions are timed with.
"""

import datetime
import re
from dataclasses import dataclass, field

from lxml import etree

from rotordream.onvif import soap
from rotordream.onvif.soap import E

CONCRETE_SET = "http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"
CONCRETE = "http://docs.oasis-open.org/wsn/t-1/TopicExpression/Concrete"
SIMPLE = "http://docs.oasis-open.org/wsn/t-1/TopicExpression/Simple"
ITEM_FILTER = "http://www.onvif.org/ver10/tev/messageContentFilter/ItemFilter"
XPATH_1 = "http://www.w3.org/TR/1999/REC-xpath-19991116"
MAX_CONTENT_EXPRESSION = 1024  # characters; real ItemFilter expressions are a line
TOPIC_NS_LOCATION = "http://www.onvif.org/onvif/ver10/topics/topicns.xml"
SCHEMA_LOCATION = "http://www.onvif.org/onvif/ver10/schema/onvif.xsd"

INITIALIZED, CHANGED, DELETED = "Initialized", "Changed", "Deleted"


@dataclass(frozen=True)
class Topic:
    """One topic: its path (``tns1:A/B/C``), whether it is a property, and its items.

    ``source`` and ``data`` are ``((Name, xs type QName), ...)``; a property
    topic holds a state (Initialized/Changed), the others are one-off events.
    """

    name: str
    is_property: bool
    source: tuple
    data: tuple

    @property
    def steps(self):
        """Local names of the path, e.g. ``("RuleEngine", "CellMotionDetector", "Motion")``."""
        return tuple(s.partition(":")[2] or s for s in self.name.split("/"))


MOTION = Topic("tns1:RuleEngine/CellMotionDetector/Motion", True,
               (("VideoSourceConfigurationToken", "tt:ReferenceToken"),
                ("VideoAnalyticsConfigurationToken", "tt:ReferenceToken"),
                ("Rule", "xs:string")),
               (("IsMotion", "xs:boolean"),))
MOTION_ALARM = Topic("tns1:VideoSource/MotionAlarm", True,
                     (("Source", "tt:ReferenceToken"),), (("State", "xs:boolean"),))
RECORDING_JOB = Topic("tns1:RecordingConfig/JobState", True,
                      (("RecordingJobToken", "tt:RecordingJobReference"),),
                      (("State", "xs:string"),))
RECORDING_STATE = Topic("tns1:RecordingHistory/Recording/State", True,
                        (("RecordingToken", "tt:RecordingReference"),),
                        (("IsRecording", "xs:boolean"),))
PTZ_MOVE = Topic("tns1:PTZController/MoveStatus", True,
                 (("PTZConfigurationToken", "tt:ReferenceToken"),),
                 (("PanTilt", "tt:MoveStatus"),))
MOTOR_FAILURE = Topic("tns1:Device/HardwareFailure/MotorFailure", True,
                      (("Token", "tt:ReferenceToken"),), (("Failed", "xs:boolean"),))

TOPICS = (MOTION, MOTION_ALARM, RECORDING_JOB, RECORDING_STATE, PTZ_MOVE, MOTOR_FAILURE)


@dataclass
class Event:
    """One occurrence of a topic: when, which source, what data, which property operation."""

    topic: Topic
    utc: float                     # seconds since the epoch
    source: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    operation: str = None          # INITIALIZED/CHANGED/DELETED for property topics

    @property
    def key(self):
        """What identifies one property instance: topic and source values."""
        return (self.topic.name, tuple(sorted(self.source.items())))

    def as_operation(self, operation):
        """A copy with another PropertyOperation (e.g. Initialized for a sync point)."""
        return Event(self.topic, self.utc, dict(self.source), dict(self.data), operation)


# -- times ---------------------------------------------------------------------------

_DURATION = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?"
                       r"(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d*)?)S)?)?$")


def parse_duration(text):
    """Seconds in an xs:duration (``PT60S``, ``PT1M``, ``P1D``); ValueError otherwise.

    Years and months count as 365 and 30 days: subscriptions never last that long.
    """
    text = (text or "").strip()
    m = _DURATION.match(text)
    if not m or text in ("P", "PT") or text.endswith("T"):
        raise ValueError("not an xs:duration: %r" % text[:40])
    y, mo, d, h, mi, s = m.groups()
    return ((int(y or 0) * 365 + int(mo or 0) * 30 + int(d or 0)) * 86400
            + int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0))


def parse_datetime(text):
    """Seconds since the epoch of an xs:dateTime (no zone means UTC); ValueError otherwise."""
    text = (text or "").strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # fromisoformat takes at most 6 fractional digits.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    when = datetime.datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


def termination(text, now, default):
    """An absolute time from a wsnt:AbsoluteOrRelativeTimeType value (None/empty: ``default``
    seconds from ``now``); ValueError on nonsense."""
    text = (text or "").strip()
    if not text:
        return now + default
    if text.startswith(("P", "-P")):
        if text.startswith("-"):
            raise ValueError("a negative duration: %r" % text[:40])
        return now + parse_duration(text)
    return parse_datetime(text)


def format_time(seconds, millis=False):
    """xs:dateTime in UTC, ``2026-11-25T18:00:00Z`` (with milliseconds if asked)."""
    when = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    if millis:
        return when.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (when.microsecond // 1000)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- filters -------------------------------------------------------------------------

class FilterError(ValueError):
    """A topic expression we cannot evaluate."""


@dataclass(frozen=True)
class TopicFilter:
    """Alternatives of (namespace, steps, subtree) from a ConcreteSet/Concrete expression,
    and message content expressions (compiled XPath) that must all hold.

    An empty filter (no TopicExpression, no MessageContent) lets everything through.
    """

    alternatives: tuple = ()
    content: tuple = ()

    def selects(self, event):
        """True when ``event`` is of a selected topic and its message passes every content
        expression (evaluated on its ``tt:Message``, as ONVIF's ItemFilter defines)."""
        if not self.matches(event.topic):
            return False
        if not self.content:
            return True
        msg = message(event)
        try:
            return all(bool(expression(msg)) for expression in self.content)
        except etree.XPathError:
            return False

    def matches(self, topic):
        """True when ``topic`` is selected."""
        if not self.alternatives:
            return True
        namespace = soap.NSMAP["tns1"]
        steps = topic.steps
        for ns, want, subtree in self.alternatives:
            if ns not in (None, namespace):
                continue
            if subtree:
                if len(steps) < len(want):
                    continue
            elif len(steps) != len(want):
                continue
            if all(w in ("*", s) for w, s in zip(want, steps)):
                return True
        return False


def parse_topic_expression(text, nsmap, dialect=None):
    """A :class:`TopicFilter` from a topic expression (prefixes resolved through ``nsmap``)."""
    if dialect and dialect not in (CONCRETE_SET, CONCRETE, SIMPLE):
        raise FilterError("unsupported topic expression dialect %s" % dialect)
    alternatives = []
    for alt in (text or "").split("|"):
        alt = alt.strip()
        if not alt:
            continue
        subtree = False
        if alt.endswith("//."):
            subtree, alt = True, alt[:-3]
        elif alt.endswith("//*"):
            subtree, alt = True, alt[:-3]
        if not alt or "//" in alt:
            raise FilterError("unsupported topic expression %r" % alt[:80])
        steps = alt.split("/")
        prefix, colon, first = steps[0].rpartition(":")
        namespace = None
        if colon:
            namespace = nsmap.get(prefix)
            if namespace is None:
                raise FilterError("unknown prefix %r in topic expression" % prefix)
        steps[0] = first
        steps = tuple(s.rpartition(":")[2] for s in steps)
        if any(not s for s in steps):
            raise FilterError("empty step in topic expression %r" % alt[:80])
        alternatives.append((namespace, steps, subtree))
    if not alternatives:
        raise FilterError("empty topic expression")
    return TopicFilter(tuple(alternatives))


def parse_content_expression(text, nsmap, dialect=None):
    """A compiled XPath from a MessageContent expression (ItemFilter or XPath 1.0 dialect)."""
    if dialect and dialect not in (ITEM_FILTER, XPATH_1):
        raise FilterError("unsupported message content dialect %s" % dialect)
    text = (text or "").strip()
    if not text:
        raise FilterError("empty message content expression")
    if len(text) > MAX_CONTENT_EXPRESSION:
        raise FilterError("message content expression longer than %d characters"
                          % MAX_CONTENT_EXPRESSION)
    namespaces = {prefix: uri for prefix, uri in nsmap.items() if prefix}
    try:
        expression = etree.XPath(text, namespaces=namespaces)
        # A trial run: unknown prefixes and functions only show when evaluated.
        expression(message(Event(MOTION, 0, {}, {"IsMotion": False}, CHANGED)))
    except etree.XPathError as e:
        raise FilterError("bad message content expression %r: %s" % (text[:80], e)) from None
    return expression


def parse_filter(filter_el):
    """The :class:`TopicFilter` of a wsnt:Filter element (None: no filter)."""
    if filter_el is None:
        return TopicFilter()
    alternatives = []
    for expr in soap.children(filter_el, "TopicExpression"):
        alternatives.extend(parse_topic_expression(expr.text, expr.nsmap,
                                                   expr.get("Dialect")).alternatives)
    content = tuple(parse_content_expression(el.text, el.nsmap, el.get("Dialect"))
                    for el in soap.children(filter_el, "MessageContent"))
    return TopicFilter(tuple(alternatives), content)


# -- building ------------------------------------------------------------------------

def _items(tag, values):
    return E(tag, [E("tt:SimpleItem", Name=name, Value=soap.text(value))
                   for name, value in values.items()])


def message(event):
    """The ``tt:Message`` of an event."""
    return E("tt:Message", _items("tt:Source", event.source), _items("tt:Data", event.data),
             UtcTime=format_time(event.utc, millis=True),
             PropertyOperation=event.operation if event.topic.is_property else None)


def notification(event, subscription_address=None, producer_address=None):
    """A ``wsnt:NotificationMessage`` for ``event`` (a new element every call)."""
    return E("wsnt:NotificationMessage",
             E("wsnt:SubscriptionReference", E("wsa:Address", subscription_address))
             if subscription_address else None,
             E("wsnt:Topic", event.topic.name, Dialect=CONCRETE_SET),
             E("wsnt:ProducerReference", E("wsa:Address", producer_address))
             if producer_address else None,
             E("wsnt:Message", message(event)))


def _description(topic):
    return E("tt:MessageDescription",
             E("tt:Source", [E("tt:SimpleItemDescription", Name=n, Type=t)
                             for n, t in topic.source]),
             E("tt:Data", [E("tt:SimpleItemDescription", Name=n, Type=t)
                           for n, t in topic.data]),
             IsProperty=topic.is_property)


def topic_set(topics=TOPICS):
    """The ``wstop:TopicSet`` describing ``topics`` (tree of tns1 elements)."""
    root = E("wstop:TopicSet")
    for topic in topics:
        parent = root
        steps = topic.steps
        for i, step in enumerate(steps):
            tag = soap.qn("tns1:" + step)
            found = next((c for c in parent if c.tag == tag), None)
            if found is None:
                found = E("tns1:" + step)
                parent.append(found)
            parent = found
            if i == len(steps) - 1:
                found.set(soap.qn("wstop:topic"), "true")
                found.append(_description(topic))
    return root


def event_properties(topics=TOPICS):
    """The body of tev:GetEventPropertiesResponse."""
    return E("tev:GetEventPropertiesResponse",
             E("tev:TopicNamespaceLocation", TOPIC_NS_LOCATION),
             E("wsnt:FixedTopicSet", True),
             topic_set(topics),
             E("wsnt:TopicExpressionDialect", CONCRETE_SET),
             E("wsnt:TopicExpressionDialect", CONCRETE),
             E("tev:MessageContentFilterDialect", ITEM_FILTER),
             E("tev:MessageContentSchemaLocation", SCHEMA_LOCATION))
