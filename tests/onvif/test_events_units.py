"""ONVIF Events on a Clock: topics and filters, pull points (long poll, MessageLimit,
expiry, renew, cap), synchronization points, Notify subscriptions, the state and motion
sources. No sockets, no sleeps."""

import pytest
from lxml import etree
from twisted.internet import defer
from twisted.internet.task import Clock

from rotordream.auth.service import AuthService
from rotordream.config import from_dict
from rotordream.context import Context
from rotordream.onvif import events, topics
from rotordream.onvif.broker import ADMIN_HEADROOM, Broker, SubscriptionLimit, quota_owner
from rotordream.onvif.eventsources import EventsService, make_broker
from rotordream.onvif.subscriptions import PullPoint
from rotordream.onvif.resource import make_onvif_resource
from rotordream.state import CameraState
from rotordream.testing import FakeMotor, ThreadClock
from tests.support.soapkit import NS, created_now, envelope, fault_codes, security

NOW = 1_800_000_000
PASSWORD = "first-password"
TEV = "http://www.onvif.org/ver10/events/wsdl"
WSNT = "http://docs.oasis-open.org/wsn/b-2"
WSA = "http://www.w3.org/2005/08/addressing"
N = dict(NS, tev=TEV, wsnt=WSNT, wsa=WSA)
DECL = 'xmlns:tev="%s" xmlns:wsnt="%s" xmlns:wsa="%s"' % (TEV, WSNT, WSA)


@pytest.fixture
def make_ev(tmp_path, monkeypatch):
    monkeypatch.delenv("ROTORDREAM_ADMIN_PASSWORD", raising=False)

    def make(max_subscriptions=16, motor=False, pipeline=None, max_per_user=4):
        clock = ThreadClock()
        clock.advance(NOW)
        cfg = from_dict({"auth": {"initial_admin_password": PASSWORD, "login_failures": 1000,
                                  "secret_file": str(tmp_path) + ".key"},
                         "server": {"state_dir": str(tmp_path)},
                         "onvif": {"max_subscriptions": max_subscriptions,
                                   "max_subscriptions_per_user": max_per_user}})
        fake_motor = FakeMotor() if motor else None
        ctx = Context(config=cfg, reactor=clock, state=CameraState(None),
                      auth=AuthService(cfg, str(tmp_path), clock), motor=fake_motor,
                      pipeline=pipeline, events=make_broker(cfg, clock, motor))
        for name, role in (("viewer1", "viewer"), ("viewer2", "viewer"),
                           ("operator1", "operator")):
            if name not in ctx.auth.users.names():
                ctx.auth.users.add(name, role + "-password", role)
        root = make_onvif_resource(ctx)
        EventsService(ctx).startService()
        broker = ctx.events
        posts = []
        broker.post = lambda url, body: posts.append((url, body)) or defer.succeed(200)
        return Ev(root.dispatcher, ctx, clock, broker, posts)
    return make


class Ev:
    """The dispatcher and its parts, with helpers sending requests to the events service."""

    def __init__(self, dispatcher, ctx, clock, broker, posts):
        self.d, self.ctx, self.clock, self.broker, self.posts = (dispatcher, ctx, clock,
                                                                 broker, posts)

    def send(self, body, path=(), header=None, user="admin", password=PASSWORD):
        """The Deferred's results list (empty while a long poll waits)."""
        if header is None:
            header = security(user, password, created=created_now(now=self.clock.seconds()))
        results = []
        self.pending = self.d.handle("events", envelope(_decl(body), header),
                                     {"host": "192.0.2.10", "port": 8080, "client": "192.0.2.99",
                                      "path": list(path)})
        self.pending.addCallback(results.append)
        return results

    def call(self, body, path=(), **kw):
        """(status, document) of a request answered at once."""
        results = self.send(body, path, **kw)
        assert results, "no answer yet"
        status, _, out = results[0]
        assert out.startswith(b"<?xml")
        return status, etree.fromstring(out)

    def create(self, inner=""):
        status, doc = self.call("<tev:CreatePullPointSubscription>%s"
                                "</tev:CreatePullPointSubscription>" % inner)
        assert status == 200, etree.tostring(doc)
        address = doc.findtext(".//tev:SubscriptionReference/wsa:Address", namespaces=N)
        return address, ("subscription", address.rsplit("/", 1)[1]), doc

    def pull(self, path, timeout="PT5S", limit=100):
        return self.send("<tev:PullMessages><tev:Timeout>%s</tev:Timeout><tev:MessageLimit>%d"
                         "</tev:MessageLimit></tev:PullMessages>" % (timeout, limit), path)


def _decl(body):
    # Declare the event prefixes on the operation element.
    head, sep, rest = body.partition(">")
    if head.endswith("/"):
        return head[:-1] + " " + DECL + "/>" + rest
    return head + " " + DECL + sep + rest


def messages(result):
    """[(topic, operation, {data})] of a PullMessagesResponse result tuple."""
    status, _, out = result
    assert status == 200, out
    doc = etree.fromstring(out)
    out = []
    for m in doc.iterfind(".//wsnt:NotificationMessage", namespaces=N):
        msg = m.find("wsnt:Message/tt:Message", namespaces=N)
        out.append((m.findtext("wsnt:Topic", namespaces=N), msg.get("PropertyOperation"),
                    {i.get("Name"): i.get("Value") for i in msg.iterfind(
                        "tt:Data/tt:SimpleItem", namespaces=N)}))
    return out


def drain(ev, path):
    results = ev.pull(path, timeout="PT0S")
    return messages(results[0])


# -- pure parts -----------------------------------------------------------------------

def test_durations_and_termination_times():
    assert topics.parse_duration("PT60S") == 60
    assert topics.parse_duration("PT1M30.5S") == 90.5
    assert topics.parse_duration("P1DT1H") == 90000
    for bad in ("", "P", "PT", "60", "PT-5S", "P1DT"):
        with pytest.raises(ValueError):
            topics.parse_duration(bad)
    assert topics.termination(None, NOW, 60) == NOW + 60
    assert topics.termination("PT10S", NOW, 60) == NOW + 10
    stamp = topics.format_time(NOW + 30)
    assert stamp.endswith("Z") and topics.termination(stamp, NOW, 60) == NOW + 30
    assert topics.parse_datetime("2027-01-15T08:00:30.1234567+00:00") == pytest.approx(
        NOW + 30.1234567 - 0.0000007, abs=1e-5)
    with pytest.raises(ValueError):
        topics.termination("-PT5S", NOW, 60)
    with pytest.raises(ValueError):
        topics.termination("tomorrow", NOW, 60)


def test_topic_expression_filters():
    ns = {"tns1": "http://www.onvif.org/ver10/topics", "x": "urn:other"}
    f = topics.parse_topic_expression("tns1:RuleEngine/CellMotionDetector/Motion", ns)
    assert f.matches(topics.MOTION) and not f.matches(topics.RECORDING_JOB)
    f = topics.parse_topic_expression("tns1:RuleEngine//.|tns1:RecordingConfig/*", ns)
    assert f.matches(topics.MOTION) and f.matches(topics.RECORDING_JOB)
    assert not f.matches(topics.MOTION_ALARM)
    assert not topics.parse_topic_expression("x:RuleEngine//.", ns).matches(topics.MOTION)
    assert topics.TopicFilter().matches(topics.MOTION)
    for bad in ("nope:RuleEngine", "", "tns1:A//B"):
        with pytest.raises(topics.FilterError):
            topics.parse_topic_expression(bad, ns)
    with pytest.raises(topics.FilterError):
        topics.parse_topic_expression("tns1:A", ns, dialect="urn:xpath")


# -- the service ----------------------------------------------------------------------

def test_capabilities_and_event_properties(make_ev):
    ev = make_ev(motor=True)
    status, doc = ev.call("<tev:GetServiceCapabilities/>", header="")
    caps = doc.find(".//tev:Capabilities", namespaces=N)
    assert status == 200 and caps.get("WSPullPointSupport") == "true"
    assert caps.get("MaxPullPoints") == "16"
    status, doc = ev.call("<tev:GetEventProperties/>")
    assert status == 200
    topic_set = doc.find(".//wstop:TopicSet", namespaces={"wstop": "http://docs.oasis-open.org/"
                                                          "wsn/t-1"})
    described = [etree.QName(el).localname for el in topic_set.iter()
                 if el.get("{http://docs.oasis-open.org/wsn/t-1}topic") == "true"]
    assert described == ["Motion", "MotionAlarm", "JobState", "State", "MoveStatus",
                         "MotorFailure"]
    motion = topic_set.find(".//{http://www.onvif.org/ver10/topics}Motion")
    assert motion.find("tt:MessageDescription", namespaces=N).get("IsProperty") == "true"
    # Without a motor there are no PTZ topics.
    assert make_ev().broker.topics == (topics.MOTION, topics.MOTION_ALARM,
                                       topics.RECORDING_JOB, topics.RECORDING_STATE)


def test_device_advertises_the_events_service(make_ev):
    ev = make_ev()
    results = []
    ev.d.handle("device", envelope("<tds:GetCapabilities/>"),
                {"host": "192.0.2.10", "port": 8080}).addCallback(results.append)
    doc = etree.fromstring(results[0][2])
    assert doc.findtext(".//tt:Events/tt:XAddr", namespaces=N) == \
        "http://192.0.2.10:8080/onvif/events_service"


def test_pull_point_address_initial_state_and_recording_events(make_ev):
    ev = make_ev()
    address, path, doc = ev.create()
    assert address.startswith("http://192.0.2.10:8080/onvif/events_service/subscription/")
    assert doc.findtext(".//wsnt:TerminationTime", namespaces=N) == topics.format_time(NOW + 60)
    initial = drain(ev, path)
    assert ("tns1:RecordingConfig/JobState", "Initialized", {"State": "Idle"}) in initial
    assert ("tns1:RuleEngine/CellMotionDetector/Motion", "Initialized",
            {"IsMotion": "false"}) in initial
    waiting = ev.pull(path, timeout="PT30S")
    assert waiting == []
    ev.ctx.state.update({"record": True}, origin="recorder")
    assert waiting == []          # answered on the next turn, with everything published now
    ev.clock.advance(0)
    assert messages(waiting[0]) == [
        ("tns1:RecordingConfig/JobState", "Changed", {"State": "Active"}),
        ("tns1:RecordingHistory/Recording/State", "Changed", {"IsRecording": "true"})]
    ev.ctx.state.update({"record": "pause"}, origin="recorder")
    ev.ctx.state.update({"record": False}, origin="recorder")
    # Paused and stopped both read Idle: only one JobState change.
    assert [m[2] for m in drain(ev, path)] == [{"State": "Idle"}, {"IsRecording": "false"}]


def test_long_poll_times_out_on_the_clock_and_honours_the_limit(make_ev):
    ev = make_ev()
    _, path, _ = ev.create()
    drain(ev, path)
    waiting = ev.pull(path, timeout="PT5S")
    ev.clock.advance(4.9)
    assert waiting == []
    ev.clock.advance(0.2)
    assert messages(waiting[0]) == []
    for value in (True, False, True):
        ev.ctx.state.update({"record": value}, origin="recorder")
    first = messages(ev.pull(path, limit=4)[0])
    assert len(first) == 4
    rest = messages(ev.pull(path, limit=4)[0])
    assert len(rest) == 2 and rest[-1][2] == {"IsRecording": "true"}
    # A huge timeout is shortened, not refused.
    waiting = ev.pull(path, timeout="P1D")
    ev.clock.advance(events.MAX_PULL_TIMEOUT)
    assert messages(waiting[0]) == []


def test_bad_pull_arguments_and_unknown_subscriptions(make_ev):
    ev = make_ev()
    _, path, _ = ev.create()
    status, doc = ev.call("<tev:PullMessages><tev:Timeout>soon</tev:Timeout>"
                          "<tev:MessageLimit>1</tev:MessageLimit></tev:PullMessages>", path)
    assert status == 400 and fault_codes(doc)[0] == "env:Sender"
    for p in (("subscription", "nope"), ()):
        status, doc = ev.call("<tev:PullMessages><tev:Timeout>PT1S</tev:Timeout>"
                              "<tev:MessageLimit>1</tev:MessageLimit></tev:PullMessages>", p)
        assert fault_codes(doc) == ("env:Sender", ["ter:InvalidArgVal", "ter:ResourceUnknown"])


def test_subscription_found_by_wsa_to_header(make_ev):
    ev = make_ev()
    address, path, _ = ev.create()
    header = security("admin", PASSWORD, created=created_now(now=NOW)) + \
        '<wsa:To xmlns:wsa="%s">%s</wsa:To>' % (WSA, address)
    results = ev.send("<tev:PullMessages><tev:Timeout>PT0S</tev:Timeout><tev:MessageLimit>9"
                      "</tev:MessageLimit></tev:PullMessages>", (), header=header)
    assert len(messages(results[0])) == 4


def test_expiry_renew_and_unsubscribe(make_ev):
    ev = make_ev()
    _, path, _ = ev.create("<tev:InitialTerminationTime>PT10S</tev:InitialTerminationTime>")
    ev.clock.advance(9)
    status, doc = ev.call("<wsnt:Renew><wsnt:TerminationTime>PT20S</wsnt:TerminationTime>"
                          "</wsnt:Renew>", path)
    assert status == 200
    assert doc.findtext(".//wsnt:TerminationTime", namespaces=N) == \
        topics.format_time(NOW + 29)
    ev.clock.advance(15)
    assert ev.pull(path, timeout="PT0S")[0][0] == 200
    # An absolute time works too; a time in the past is refused.
    absolute = topics.format_time(ev.clock.seconds() + 5)
    assert ev.call("<wsnt:Renew><wsnt:TerminationTime>%s</wsnt:TerminationTime></wsnt:Renew>"
                   % absolute, path)[0] == 200
    status, doc = ev.call("<wsnt:Renew><wsnt:TerminationTime>2001-01-01T00:00:00Z"
                          "</wsnt:TerminationTime></wsnt:Renew>", path)
    assert status == 400
    waiting = ev.pull(path, timeout="PT60S")
    ev.clock.advance(5)
    assert messages(waiting[0]) == []   # expiry answers the waiting pull...
    assert path[1] not in ev.broker.subscriptions   # ...and ends the subscription
    status, _, out = ev.pull(path)[0]
    assert fault_codes(etree.fromstring(out))[1][-1] == "ter:ResourceUnknown"
    _, path, _ = ev.create()
    assert ev.call("<wsnt:Unsubscribe/>", path)[0] == 200
    assert path[1] not in ev.broker.subscriptions
    assert ev.call("<wsnt:Unsubscribe/>", path)[0] == 400
    # Long termination requests are shortened to the maximum.
    _, _, doc = ev.create("<tev:InitialTerminationTime>P7D</tev:InitialTerminationTime>")
    assert doc.findtext(".//wsnt:TerminationTime", namespaces=N) == \
        topics.format_time(ev.clock.seconds() + events.MAX_TERMINATION)


VIEWER1 = dict(user="viewer1", password="viewer-password")
VIEWER2 = dict(user="viewer2", password="viewer-password")
OPERATOR = dict(user="operator1", password="operator-password")
PULL_POINT = "<tev:CreatePullPointSubscription/>"
SUBSCRIBE = ('<wsnt:Subscribe><wsnt:ConsumerReference><wsa:Address>http://127.0.0.1:9/x'
             '</wsa:Address></wsnt:ConsumerReference></wsnt:Subscribe>')
MAX_PULL_POINTS = ("env:Receiver", ["ter:CapabilityViolated", "ter:MaxPullPoints"])


def refused(ev, body=PULL_POINT, **who):
    """The fault text of a subscription refused for want of a slot."""
    status, doc = ev.call(body, **who)
    assert status == 500 and fault_codes(doc) == MAX_PULL_POINTS, etree.tostring(doc)
    return doc.findtext(".//env:Reason/env:Text", namespaces=N)


def test_subscriptions_are_capped_and_admins_have_headroom(make_ev):
    ev = make_ev(max_subscriptions=2)
    _, first, _ = ev.create()                       # admin
    assert ev.call(PULL_POINT, **VIEWER1)[0] == 200
    assert "all 2 event subscriptions are taken" in refused(ev, **VIEWER2)
    refused(ev, SUBSCRIBE, **OPERATOR)
    # The administrator still subscribes, up to a hard ceiling past the total.
    for _ in range(ADMIN_HEADROOM):
        ev.create()
    assert len(ev.broker.subscriptions) == 2 + ADMIN_HEADROOM
    assert "administrators" in refused(ev)
    refused(ev, SUBSCRIBE)
    for sub_id in list(ev.broker.subscriptions)[2:]:
        ev.call("<wsnt:Unsubscribe/>", ("subscription", sub_id))
    ev.call("<wsnt:Unsubscribe/>", first)
    assert ev.call(PULL_POINT, **VIEWER2)[0] == 200
    # Expired ones free their slot too.
    ev.clock.advance(61)
    assert ev.broker.subscriptions == {}


def test_one_user_stops_at_its_quota_and_others_still_subscribe(make_ev):
    ev = make_ev(max_subscriptions=16, max_per_user=3)
    for _ in range(3):
        assert ev.call(PULL_POINT, **VIEWER1)[0] == 200
    text = refused(ev, **VIEWER1)
    assert "viewer1 holds 3" in text and "max_subscriptions_per_user" in text
    # Both kinds count against one quota.
    ev.call(PULL_POINT, **OPERATOR)
    ev.call(PULL_POINT, **OPERATOR)
    assert ev.call(SUBSCRIBE, **OPERATOR)[0] == 200
    refused(ev, SUBSCRIBE, **OPERATOR)
    assert ev.call(PULL_POINT, **VIEWER2)[0] == 200
    for _ in range(5):                              # admins: no quota
        ev.create()
    # An unsubscribed or expired subscription gives its user the place back.
    mine = [s for s in ev.broker.subscriptions.values() if s.owner == "viewer1"]
    ev.call("<wsnt:Unsubscribe/>", ("subscription", mine[0].id), **VIEWER1)
    assert ev.call(PULL_POINT, **VIEWER1)[0] == 200


def test_the_quota_counts_anonymous_clients_as_one_user_and_admins_only_when_signed_in():
    from rotordream.auth import roles
    clock = Clock()
    broker = Broker(clock, max_subscriptions=10, max_per_user=2)
    flt = topics.parse_filter(None)

    def add(principal):
        return broker.add(PullPoint, 60.0, flt, *quota_owner(principal))
    add(roles.anonymous())
    add(roles.anonymous("admin"))                   # no credentials: no admin exemption
    with pytest.raises(SubscriptionLimit):
        add(roles.anonymous())
    # A user literally called "anonymous" is another user.
    add(roles.Principal("anonymous", "viewer"))
    for _ in range(3):
        add(roles.Principal("root", "admin"))
    assert len(broker.subscriptions) == 6


def test_cancelled_pull_keeps_the_events_and_a_newer_pull_takes_over(make_ev):
    ev = make_ev()
    _, path, _ = ev.create()
    drain(ev, path)
    first = ev.pull(path, timeout="PT30S")
    ev.pending.cancel()            # the client hung up
    assert first and first[0][0] == 500    # the dispatcher's answer to nobody
    ev.ctx.state.update({"record": True}, origin="recorder")
    ev.clock.advance(0)
    assert len(messages(ev.pull(path)[0])) == 2
    older = ev.pull(path, timeout="PT30S")
    newer = ev.pull(path, timeout="PT30S")
    assert messages(older[0]) == [] and newer == []
    ev.broker.stop()               # shutdown answers the waiting one
    assert messages(newer[0]) == []


def test_synchronization_point_and_filters(make_ev):
    ev = make_ev()
    _, path, _ = ev.create(
        '<tev:Filter><wsnt:TopicExpression Dialect="%s" '
        'xmlns:tns1="http://www.onvif.org/ver10/topics">tns1:RuleEngine//.'
        '</wsnt:TopicExpression></tev:Filter>' % topics.CONCRETE_SET)
    assert drain(ev, path) == [("tns1:RuleEngine/CellMotionDetector/Motion", "Initialized",
                                {"IsMotion": "false"})]
    ev.ctx.state.update({"record": True}, origin="recorder")
    assert drain(ev, path) == []
    assert ev.call("<tev:SetSynchronizationPoint/>", path)[0] == 200
    assert [m[1] for m in drain(ev, path)] == ["Initialized"]
    status, doc = ev.call('<tev:CreatePullPointSubscription><tev:Filter>'
                          '<wsnt:TopicExpression>bad:Prefix</wsnt:TopicExpression>'
                          '</tev:Filter></tev:CreatePullPointSubscription>')
    assert status == 400 and "ter:InvalidFilterFault" in fault_codes(doc)[1]


def test_viewers_pull_but_may_not_subscribe_a_consumer(make_ev):
    ev = make_ev()
    status, doc = ev.call("<tev:CreatePullPointSubscription/>", user="viewer1",
                          password="viewer-password")
    assert status == 200
    status, doc = ev.call('<wsnt:Subscribe><wsnt:ConsumerReference><wsa:Address>'
                          'http://127.0.0.1:9/x</wsa:Address></wsnt:ConsumerReference>'
                          '</wsnt:Subscribe>', user="viewer1", password="viewer-password")
    assert fault_codes(doc) == ("env:Sender", ["ter:NotAuthorized"])
    status, doc = ev.call("<tev:CreatePullPointSubscription/>", header="")
    assert status == 401


def test_motor_state_drives_ptz_and_failure_topics(make_ev):
    ev = make_ev(motor=True)
    _, path, _ = ev.create()
    initial = drain(ev, path)
    assert ("tns1:PTZController/MoveStatus", "Initialized", {"PanTilt": "IDLE"}) in initial
    assert ("tns1:Device/HardwareFailure/MotorFailure", "Initialized",
            {"Failed": "false"}) in initial
    ev.ctx.state.update({"motor-state": "moving"}, origin="motor")
    ev.ctx.state.update({"pan-position": 12.5}, origin="motor")   # not an event
    ev.ctx.state.update({"motor-state": "fault"}, origin="motor")
    ev.ctx.state.publish_event({"error": "gone", "key": "motor-state", "code": "MOTOR_FAULT"})
    assert drain(ev, path) == [
        ("tns1:PTZController/MoveStatus", "Changed", {"PanTilt": "MOVING"}),
        ("tns1:PTZController/MoveStatus", "Changed", {"PanTilt": "IDLE"}),
        ("tns1:Device/HardwareFailure/MotorFailure", "Changed", {"Failed": "true"})]


def test_the_motion_setting_raises_the_motion_topics(make_ev):
    ev = make_ev()
    _, path, _ = ev.create()
    drain(ev, path)
    ev.ctx.state.update({"motion": True}, origin="camera")
    got = drain(ev, path)
    assert got == [("tns1:RuleEngine/CellMotionDetector/Motion", "Changed", {"IsMotion": "true"}),
                   ("tns1:VideoSource/MotionAlarm", "Changed", {"State": "true"})]
    ev.ctx.state.update({"motion": False}, origin="camera")
    assert [data for _, _, data in drain(ev, path)] == [{"IsMotion": "false"},
                                                         {"State": "false"}]


def test_notify_subscription_posts_to_the_consumer(make_ev):
    ev = make_ev()
    status, doc = ev.call('<wsnt:Subscribe><wsnt:ConsumerReference><wsa:Address>'
                          'http://192.0.2.50:8888/onvif_notify</wsa:Address>'
                          '</wsnt:ConsumerReference><wsnt:InitialTerminationTime>PT120S'
                          '</wsnt:InitialTerminationTime></wsnt:Subscribe>')
    assert status == 200
    address = doc.findtext(".//wsnt:SubscriptionReference/wsa:Address", namespaces=N)
    path = ("subscription", address.rsplit("/", 1)[1])
    assert ev.posts == []
    ev.clock.advance(0)
    url, body = ev.posts[0]
    assert url == "http://192.0.2.50:8888/onvif_notify"
    notify = etree.fromstring(body)
    assert notify.findtext(".//wsa:Action", namespaces=N).endswith("/Notify")
    msgs = notify.findall(".//wsnt:Notify/wsnt:NotificationMessage", namespaces=N)
    assert len(msgs) == 4
    assert msgs[0].findtext("wsnt:SubscriptionReference/wsa:Address", namespaces=N) == address
    ev.ctx.state.update({"record": True}, origin="recorder")
    ev.clock.advance(0)
    assert len(ev.posts) == 2 and b"Active" in ev.posts[1][1]
    # PullMessages is for pull points only.
    assert ev.call("<tev:PullMessages><tev:Timeout>PT1S</tev:Timeout><tev:MessageLimit>1"
                   "</tev:MessageLimit></tev:PullMessages>", path)[0] == 400
    assert ev.call("<tev:SetSynchronizationPoint/>", path)[0] == 200
    ev.clock.advance(0)
    assert len(ev.posts) == 3
    assert ev.call("<wsnt:Renew><wsnt:TerminationTime>PT300S</wsnt:TerminationTime>"
                   "</wsnt:Renew>", path)[0] == 200
    assert ev.call("<wsnt:Unsubscribe/>", path)[0] == 200
    ev.ctx.state.update({"record": False}, origin="recorder")
    ev.clock.advance(0)
    assert len(ev.posts) == 3


def test_notify_keeps_one_request_in_flight_and_survives_failures(make_ev):
    ev = make_ev()
    pending = []
    ev.broker.post = lambda url, body: pending.append(defer.Deferred()) or pending[-1]
    status, _ = ev.call('<wsnt:Subscribe><wsnt:ConsumerReference><wsa:Address>'
                        'http://192.0.2.50/n</wsa:Address></wsnt:ConsumerReference>'
                        '</wsnt:Subscribe>')
    ev.clock.advance(0)
    assert len(pending) == 1
    for value in (True, False, True):
        ev.ctx.state.update({"record": value}, origin="recorder")
    ev.clock.advance(0)
    assert len(pending) == 1               # the rest waits for the first to finish
    pending[0].errback(ConnectionRefusedError("consumer away"))
    ev.clock.advance(0)
    assert len(pending) == 2               # the next batch goes out regardless
    pending[1].callback(500)
    sub = next(iter(ev.broker.subscriptions.values()))
    assert sub.failures == 2 and not sub.queue
    status, doc = ev.call('<wsnt:Subscribe><wsnt:ConsumerReference><wsa:Address>'
                          'file:///etc/passwd</wsa:Address></wsnt:ConsumerReference>'
                          '</wsnt:Subscribe>')
    assert status == 400


def test_events_service_starts_the_broker_and_stops_subscriptions(tmp_path):
    clock = ThreadClock()
    cfg = from_dict({"server": {"state_dir": str(tmp_path)}})
    broker = make_broker(cfg, clock, has_motor=False)
    ctx = Context(config=cfg, reactor=clock, state=CameraState(None), events=broker)
    svc = EventsService(ctx)
    svc.startService()
    assert isinstance(broker, Broker)
    assert broker.properties[(topics.RECORDING_JOB.name, (("RecordingJobToken",
                                                            "record_job"),))].data == \
        {"State": "Idle"}    # the current value, published when the service starts
    ctx.state.update({"record": True})
    assert broker.properties[(topics.RECORDING_JOB.name, (("RecordingJobToken",
                                                            "record_job"),))].data == \
        {"State": "Active"}
    sub = broker.add(PullPoint, clock.seconds() + 60, topics.TopicFilter())
    d = sub.pull(30, 10)
    sub.take(100)
    svc.stopService()
    assert broker.subscriptions == {} and d.called
    ctx.state.update({"record": False})
    assert broker.properties[(topics.RECORDING_JOB.name, (("RecordingJobToken",
                                                            "record_job"),))].data == \
        {"State": "Active"}    # detached from the state: still the last value it saw


def test_pulls_keep_a_relative_subscription_alive(make_ev):
    ev = make_ev()
    _, path, _ = ev.create("<tev:InitialTerminationTime>PT10S</tev:InitialTerminationTime>")
    for _ in range(5):
        ev.clock.advance(8)
        results = ev.pull(path, timeout="PT0S")
        assert results[0][0] == 200
        doc = etree.fromstring(results[0][2])
        assert doc.findtext(".//tev:TerminationTime", namespaces=N) == \
            topics.format_time(ev.clock.seconds() + 10)
    # A pull held open longer than the keep-alive keeps it alive too.
    waiting = ev.pull(path, timeout="PT30S")
    ev.clock.advance(30)
    assert messages(waiting[0]) == [] and path[1] in ev.broker.subscriptions
    ev.clock.advance(10)
    assert path[1] not in ev.broker.subscriptions     # 10 s after the last activity
    # An absolute termination is not moved by pulls.
    _, path, _ = ev.create("<tev:InitialTerminationTime>%s</tev:InitialTerminationTime>"
                           % topics.format_time(ev.clock.seconds() + 10))
    ev.clock.advance(8)
    ev.pull(path, timeout="PT0S")
    ev.clock.advance(2)
    assert path[1] not in ev.broker.subscriptions


def test_message_content_filters_select_on_item_values():
    from lxml import etree
    ns = {"tt": "http://www.onvif.org/ver10/schema", "tns1": "http://www.onvif.org/ver10/topics"}
    wsnt = "http://docs.oasis-open.org/wsn/b-2"
    f_el = etree.Element("{%s}Filter" % wsnt, nsmap={"wsnt": wsnt, **ns})
    te = etree.SubElement(f_el, "{%s}TopicExpression" % wsnt)
    te.text = "tns1:RuleEngine//."
    mc = etree.SubElement(f_el, "{%s}MessageContent" % wsnt, Dialect=topics.ITEM_FILTER)
    mc.text = 'boolean(//tt:SimpleItem[@Name="IsMotion" and @Value="true"])'
    f = topics.parse_filter(f_el)
    moving = topics.Event(topics.MOTION, NOW, {}, {"IsMotion": True}, topics.CHANGED)
    still = topics.Event(topics.MOTION, NOW, {}, {"IsMotion": False}, topics.CHANGED)
    job = topics.Event(topics.RECORDING_JOB, NOW, {}, {"State": "Active"}, topics.CHANGED)
    assert f.selects(moving) and not f.selects(still) and not f.selects(job)
    # Bad expressions are refused when subscribing, not when an event comes.
    for bad, dialect in (("boolean(//tt:SimpleItem[", topics.ITEM_FILTER),
                         ("boolean(//nope:SimpleItem)", topics.ITEM_FILTER),
                         ("unknown-function(1)", topics.XPATH_1),
                         ("", None), ("x" * 2000, None),
                         ("true()", "urn:some-other-dialect")):
        with pytest.raises(topics.FilterError):
            topics.parse_content_expression(bad, ns, dialect)
