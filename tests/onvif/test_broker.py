"""The event broker alone: no reactor, no Deferreds, a clock that is a number and
subscriptions that only record what they are offered; and the Notify envelope."""

import pytest
from lxml import etree

from rotordream.onvif import topics
from rotordream.onvif.broker import Broker, SubscriptionLimit, UnknownSubscription
from rotordream.onvif.notify import NOTIFY_ACTION, notify_envelope

NOW = 1_800_000_000.0
N = {"wsnt": "http://docs.oasis-open.org/wsn/b-2", "wsa": "http://www.w3.org/2005/08/addressing",
     "tt": "http://www.onvif.org/ver10/schema"}


class Time:
    """Just ``seconds()``: all the broker itself asks of its clock."""

    def __init__(self, now=NOW):
        self.now = now

    def seconds(self):
        return self.now


class Recorder:
    """A subscription that keeps what the broker offers (built by ``Broker.add``)."""

    def __init__(self, broker, sub_id, termination, topic_filter):
        self.broker, self.id, self.termination, self.filter = (broker, sub_id, termination,
                                                               topic_filter)
        self.offered, self.scheduled, self.closed = [], 0, False

    def schedule(self):
        self.scheduled += 1

    def synchronize(self):
        self.offered.extend(self.broker.snapshot())

    def offer(self, event):
        self.offered.append(event)

    def close(self):
        self.closed = True


def test_property_topics_announce_changes_only_and_new_subscribers_get_the_state():
    broker = Broker(Time())
    first = broker.publish(topics.MOTION, {"Rule": "r"}, {"IsMotion": False})
    assert first.operation == topics.INITIALIZED and first.utc == NOW
    assert broker.publish(topics.MOTION, {"Rule": "r"}, {"IsMotion": False}) is None
    sub = broker.add(Recorder, NOW + 60, topics.TopicFilter())
    assert sub.scheduled == 1 and [e.operation for e in sub.offered] == [topics.INITIALIZED]
    changed = broker.publish(topics.MOTION, {"Rule": "r"}, {"IsMotion": True}, utc=NOW + 1)
    assert changed.operation == topics.CHANGED and sub.offered[-1] is changed
    # Another source of the same topic is another property.
    assert broker.publish(topics.MOTION, {"Rule": "s"}, {"IsMotion": True}).operation == \
        topics.INITIALIZED
    assert sorted(e.data["IsMotion"] for e in broker.snapshot()) == [True, True]


def test_slots_lookup_removal_and_stop():
    broker = Broker(Time(), max_subscriptions=1)
    sub = broker.add(Recorder, NOW + 60, topics.TopicFilter(), owner="viewer")
    assert broker.get(sub.id) is sub and sub.owner == "viewer"
    with pytest.raises(SubscriptionLimit):
        broker.add(Recorder, NOW + 60, topics.TopicFilter())
    detached = []
    broker.on_stop(lambda: detached.append(True))
    broker.stop()
    assert sub.closed and detached == [True] and broker.subscriptions == {}
    for unknown in (sub.id, None, ""):
        with pytest.raises(UnknownSubscription):
            broker.get(unknown)
    broker.remove(sub.id)                 # already gone: nothing happens


def test_notify_envelope_carries_every_event_and_its_addressing():
    events = [topics.Event(topics.RECORDING_JOB, NOW, {"RecordingJobToken": "j"},
                           {"State": "Active"}, topics.CHANGED),
              topics.Event(topics.MOTION, NOW, {"Rule": "r"}, {"IsMotion": True},
                           topics.INITIALIZED)]
    doc = etree.fromstring(notify_envelope(events, "http://192.0.2.50/n",
                                           "http://192.0.2.10/onvif/events_service/s/1"))
    assert doc.findtext(".//wsa:Action", namespaces=N) == NOTIFY_ACTION
    assert doc.findtext(".//wsa:To", namespaces=N) == "http://192.0.2.50/n"
    msgs = doc.findall(".//wsnt:Notify/wsnt:NotificationMessage", namespaces=N)
    assert [m.findtext("wsnt:Topic", namespaces=N) for m in msgs] == [
        "tns1:RecordingConfig/JobState", "tns1:RuleEngine/CellMotionDetector/Motion"]
    assert msgs[1].find("wsnt:Message/tt:Message", namespaces=N).get(
        "PropertyOperation") == "Initialized"
    assert {m.findtext("wsnt:SubscriptionReference/wsa:Address", namespaces=N)
            for m in msgs} == {"http://192.0.2.10/onvif/events_service/s/1"}
