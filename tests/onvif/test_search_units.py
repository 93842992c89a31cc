"""Profile G on a Clock: search sessions that lapse and are bounded, events found over the
recordings (recording start/stop and the broker's history), filters, and the recording job
as the ``record`` key. No sockets, no sleeps."""

import pytest
from lxml import etree

from rotordream.auth.service import AuthService
from rotordream.config import from_dict
from rotordream.context import Context
from rotordream.onvif import search, topics
from rotordream.onvif.broker import HISTORY
from rotordream.onvif.eventsources import make_broker, motion_events
from rotordream.onvif.resource import make_onvif_resource
from rotordream.recording.store import RecordingStore
from rotordream.state import CameraState
from rotordream.testing import ThreadClock
from tests.support.soapkit import NS, created_now, envelope, fault_codes, security

NOW = 1_800_000_000
PASSWORD = "first-password"
TSE = "http://www.onvif.org/ver10/search/wsdl"
TRC = "http://www.onvif.org/ver10/recording/wsdl"
N = dict(NS, tse=TSE, trc=TRC)


class Recordings:
    """What the search and recording services read of a recorder: its store and the
    segment being written."""

    def __init__(self, store):
        self.store = store
        self.segment = None


class G:
    """A dispatcher over a store of made-up recordings, on a Clock."""

    def __init__(self, tmp_path):
        self.clock = ThreadClock()
        self.clock.advance(NOW)
        cfg = from_dict({"auth": {"initial_admin_password": PASSWORD, "login_failures": 1000,
                                  "secret_file": str(tmp_path) + ".key"},
                         "server": {"state_dir": str(tmp_path)}})
        self.store = RecordingStore(str(tmp_path / "recordings"))
        self.ctx = Context(config=cfg, reactor=self.clock, state=CameraState(None),
                           auth=AuthService(cfg, str(tmp_path), self.clock),
                           recorder=Recordings(self.store),
                           events=make_broker(cfg, self.clock, False))
        if "viewer1" not in self.ctx.auth.users.names():
            self.ctx.auth.users.add("viewer1", "viewer-password", "viewer")
            self.ctx.auth.users.add("operator1", "operator-password", "operator")
        self.d = make_onvif_resource(self.ctx).dispatcher

    def add(self, rid, start, end):
        self.store.entries[rid] = {"id": rid, "name": "", "start_ts": start, "end_ts": end,
                                   "duration": end - start, "size": 1000, "width": 640,
                                   "height": 360, "fps": 30, "recording": False}

    def call(self, service, body, user="admin", password=PASSWORD):
        """(status, document) of one request."""
        results = []
        header = security(user, password, created=created_now(now=self.clock.seconds()))
        decl = 'xmlns:tse="%s" xmlns:trc="%s"' % (TSE, TRC)
        head, sep, rest = body.partition(">")
        body = (head[:-1] + " " + decl + "/>" + rest) if head.endswith("/") \
            else head + " " + decl + sep + rest
        self.d.handle(service, envelope(body, header), {"host": "192.0.2.10", "port": 8080,
                                                        "client": "192.0.2.99"}
                      ).addCallback(results.append)
        assert results, "no answer"
        status, _, out = results[0]
        return status, etree.fromstring(out)

    def find(self, op, inner, keep="PT5S"):
        status, doc = self.call("search", "<tse:%s>%s<tse:KeepAliveTime>%s</tse:KeepAliveTime>"
                                          "</tse:%s>" % (op, inner, keep, op))
        assert status == 200, etree.tostring(doc)
        return doc.findtext(".//tse:SearchToken", namespaces=N)

    def state_of(self, token):
        return self.call("search", "<tse:GetSearchState><tse:SearchToken>%s</tse:SearchToken>"
                                   "</tse:GetSearchState>" % token)

    def events(self, start, end=None, filter_="", start_state=False):
        token = self.find("FindEvents", "<tse:StartPoint>%s</tse:StartPoint>%s<tse:Scope/>"
                                        "<tse:SearchFilter>%s</tse:SearchFilter>"
                                        "<tse:IncludeStartState>%s</tse:IncludeStartState>"
                          % (topics.format_time(start, True),
                             "<tse:EndPoint>%s</tse:EndPoint>" % topics.format_time(end, True)
                             if end is not None else "", filter_,
                             "true" if start_state else "false"))
        status, doc = self.call("search", "<tse:GetEventSearchResults><tse:SearchToken>%s"
                                          "</tse:SearchToken></tse:GetEventSearchResults>"
                                % token)
        assert status == 200
        assert doc.findtext(".//tt:SearchState", namespaces=N) == "Completed"
        out = []
        for r in doc.iterfind(".//tt:Result", namespaces=N):
            data = {i.get("Name"): i.get("Value")
                    for i in r.iterfind(".//tt:Data/tt:SimpleItem", namespaces=N)}
            out.append((r.findtext("tt:RecordingToken", namespaces=N),
                        r.findtext(".//wsnt:Topic", namespaces={
                            "wsnt": "http://docs.oasis-open.org/wsn/b-2"}),
                        data, r.findtext("tt:StartStateEvent", namespaces=N)))
        return out


@pytest.fixture
def g(tmp_path, monkeypatch):
    monkeypatch.delenv("ROTORDREAM_ADMIN_PASSWORD", raising=False)
    return G(tmp_path)


def test_a_search_lapses_keep_alive_after_its_last_use(g):
    g.add("a", NOW - 100, NOW - 90)
    token = g.find("FindRecordings", "<tse:Scope/>", keep="PT5S")
    for _ in range(3):
        g.clock.advance(4)   # each use keeps it another 5 s
        assert g.state_of(token)[0] == 200
    g.clock.advance(5)
    status, doc = g.state_of(token)
    assert status == 400 and "ter:InvalidToken" in fault_codes(doc)[1]
    # A long KeepAliveTime is capped.
    token = g.find("FindRecordings", "<tse:Scope/>", keep="PT1H")
    g.clock.advance(search.MAX_KEEP_ALIVE)
    assert g.state_of(token)[0] == 400


def test_searches_are_bounded_and_ending_one_frees_it(g):
    search.SEARCHES.sessions.clear()
    tokens = [g.find("FindRecordings", "<tse:Scope/>", keep="PT60S")
              for _ in range(search.MAX_SEARCHES)]
    status, doc = g.call("search", "<tse:FindRecordings><tse:Scope/><tse:KeepAliveTime>PT5S"
                                   "</tse:KeepAliveTime></tse:FindRecordings>")
    assert status == 500 and "ter:ResourceProblem" in fault_codes(doc)[1]
    status, doc = g.call("search", "<tse:EndSearch><tse:SearchToken>%s</tse:SearchToken>"
                                   "</tse:EndSearch>" % tokens[0])
    assert status == 200 and doc.findtext(".//tse:Endpoint", namespaces=N)
    assert g.find("FindRecordings", "<tse:Scope/>")
    search.SEARCHES.sessions.clear()


def test_recording_results_come_in_pages_newest_first(g):
    for i in range(5):
        g.add("r%d" % i, NOW - 1000 + i * 100, NOW - 950 + i * 100)
    token = g.find("FindRecordings", "<tse:Scope/><tse:MaxMatches>4</tse:MaxMatches>")
    got, state = [], None
    while state != "Completed":
        status, doc = g.call("search", "<tse:GetRecordingSearchResults><tse:SearchToken>%s"
                                       "</tse:SearchToken><tse:MaxResults>3</tse:MaxResults>"
                                       "</tse:GetRecordingSearchResults>" % token)
        state = doc.findtext(".//tt:SearchState", namespaces=N)
        got.append([t.text for t in doc.iterfind(".//tt:RecordingToken", namespaces=N)])
    assert got == [["r4", "r3", "r2"], ["r1"]]
    broken = ('<tse:FindRecordings><tse:Scope><tt:RecordingInformationFilter xmlns:tt="%s">'
              'boolean(//Track[</tt:RecordingInformationFilter></tse:Scope>'
              '<tse:KeepAliveTime>PT5S</tse:KeepAliveTime></tse:FindRecordings>' % NS["tt"])
    status, doc = g.call("search", broken)
    assert status == 400 and "ter:InvalidArgVal" in fault_codes(doc)[1]
    costly = broken.replace("boolean(//Track[", "count(//*[count(//*[count(//*[1])])])")
    status, doc = g.call("search", costly)
    assert status == 400 and "nest" in doc.findtext(".//env:Text", namespaces=N)


def test_events_over_the_recordings_in_either_direction_with_filters_and_start_state(g):
    g.add("first", NOW - 300, NOW - 200)
    g.add("second", NOW - 100, NOW - 50)
    broker = g.ctx.events
    for t, moving in ((NOW - 400, True), (NOW - 390, False), (NOW - 250, True), (NOW - 240, False),
                      (NOW - 60, True), (NOW - 10, False)):
        broker.publish(*motion_events(moving)[0], utc=t)
    broker.publish(topics.MOTOR_FAILURE, {"Token": "ptz_node"}, {"Failed": True}, utc=NOW - 70)
    found = g.events(NOW - 1000, NOW)
    state = "tns1:RecordingHistory/Recording/State"
    motion = "tns1:RuleEngine/CellMotionDetector/Motion"
    assert [(rid, topic, data) for rid, topic, data, _ in found] == [
        ("first", state, {"IsRecording": "true"}), ("first", motion, {"IsMotion": "true"}),
        ("first", motion, {"IsMotion": "false"}), ("first", state, {"IsRecording": "false"}),
        ("second", state, {"IsRecording": "true"}),
        ("second", "tns1:Device/HardwareFailure/MotorFailure", {"Failed": "true"}),
        ("second", motion, {"IsMotion": "true"}), ("second", state, {"IsRecording": "false"})]
    # Backwards, and only the recording state through a topic filter.
    only_state = ('<wsnt:TopicExpression xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" '
                  'xmlns:tns1="http://www.onvif.org/ver10/topics" Dialect="http://www.onvif.'
                  'org/ver10/tev/topicExpression/ConcreteSet">tns1:RecordingHistory//.'
                  '</wsnt:TopicExpression>')
    back = g.events(NOW, NOW - 1000, filter_=only_state)
    assert [(rid, d["IsRecording"]) for rid, _, d, _ in back] == [
        ("second", "false"), ("second", "true"), ("first", "false"), ("first", "true")]
    # From inside the first recording: its state at the start point comes first.
    inside = g.events(NOW - 260, NOW - 150, filter_=only_state, start_state=True)
    assert [(rid, d["IsRecording"], s) for rid, _, d, s in inside] == [
        ("first", "true", "true"), ("first", "false", "false")]


def test_the_broker_keeps_a_bounded_history_of_changes_only(g):
    broker = g.ctx.events
    for i in range(HISTORY + 10):
        broker.publish(*motion_events(i % 2 == 0)[0], utc=NOW + i)
    broker.publish(*motion_events(False)[0], utc=NOW + HISTORY + 20)  # unchanged: not kept
    assert len(broker.history) == HISTORY
    assert broker.history[-1].utc == NOW + HISTORY + 9


def test_the_recording_job_is_the_record_key_for_operators_only(g):
    g.add("a", NOW - 100, NOW - 90)
    body = ("<trc:SetRecordingJobMode><trc:JobToken>record_job</trc:JobToken>"
            "<trc:Mode>Active</trc:Mode></trc:SetRecordingJobMode>")
    status, doc = g.call("recording", body, "viewer1", "viewer-password")
    assert status == 400 and "ter:NotAuthorized" in fault_codes(doc)[1]
    assert g.ctx.state.get("record") is False
    assert g.call("recording", body, "operator1", "operator-password")[0] == 200
    assert g.ctx.state.get("record") is True
    status, doc = g.call("recording", "<trc:GetRecordingJobState><trc:JobToken>record_job"
                                      "</trc:JobToken></trc:GetRecordingJobState>")
    assert doc.findtext(".//trc:State/tt:State", namespaces=N) == "Active"
    status, doc = g.call("recording", body.replace("Active", "Sideways"), "operator1",
                         "operator-password")
    assert status == 400 and "ter:BadConfiguration" in fault_codes(doc)[1]


def test_without_a_recorder_profile_g_is_neither_advertised_nor_served(g):
    g.ctx = type(g.ctx)(**dict(g.ctx.__dict__, recorder=None))
    g.d = make_onvif_resource(g.ctx).dispatcher
    status, doc = g.call("device", '<tds:GetServices xmlns:tds="%s"><tds:IncludeCapability>'
                                   'false</tds:IncludeCapability></tds:GetServices>' % NS["tds"])
    assert status == 200
    namespaces = {n.text for n in doc.iterfind(".//tds:Namespace", namespaces=N)}
    assert NS["trt"] in namespaces and not namespaces & {TSE, TRC,
                                                         "http://www.onvif.org/ver10/replay/wsdl"}
    status, doc = g.call("device", '<tds:GetCapabilities xmlns:tds="%s"/>' % NS["tds"])
    assert b"search_service" not in etree.tostring(doc)
    status, doc = g.call("search", "<tse:GetRecordingSummary/>")
    assert status == 500 and "ter:ActionNotSupported" in fault_codes(doc)[1]
