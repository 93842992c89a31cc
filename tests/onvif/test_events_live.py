"""ONVIF Events against a running daemon: onvif-zeep pull points receiving recording and
motion events, a base-notification consumer on 127.0.0.1 receiving Notify, Home
Assistant's pull-point loop with onvif-zeep-async, and every response validated against
the schemas onvif-zeep ships (events WSDL, WS-BaseNotification, the ONVIF types)."""

import http.server
import json
import os
import queue
import subprocess
import tempfile
import threading
import time

import pytest
import requests
from lxml import etree

from tests.conftest import require_module
from tests.support.live import StateWatcher
from tests.support.soapkit import ResponseRecorder, envelope, fault_codes, security, validate

XS = "http://www.w3.org/2001/XMLSchema"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
TEV = "http://www.onvif.org/ver10/events/wsdl"
WSNT = "http://docs.oasis-open.org/wsn/b-2"
WSA = "http://www.w3.org/2005/08/addressing"
TT = "http://www.onvif.org/ver10/schema"
N = {"env": SOAP12, "tev": TEV, "wsnt": WSNT, "wsa": WSA, "tt": TT}
PULLPOINT = "http://www.onvif.org/ver10/events/wsdl/PullPointSubscription"
JOB_STATE = "tns1:RecordingConfig/JobState"
MOTION = "tns1:RuleEngine/CellMotionDetector/Motion"


# -- schema validation of every response ------------------------------------------------

def _wsdl_dir():
    onvif = require_module("onvif")
    return os.path.join(os.path.dirname(os.path.dirname(onvif.__file__)), "wsdl")


@pytest.fixture(scope="module")
def schema():
    """The events, device and PTZ WSDLs' types, WS-BaseNotification and the ONVIF schema."""
    wsdl = _wsdl_dir()
    tmp = tempfile.mkdtemp(prefix="onvif-events-xsd-")
    for name in os.listdir(wsdl):
        os.symlink(os.path.join(wsdl, name), os.path.join(tmp, name))
    imports = [(WSNT, "b-2.xsd"), (TT, "onvif.xsd")]
    for name in ("events", "devicemgmt", "ptz"):
        inline = etree.parse(os.path.join(wsdl, name + ".wsdl")).find(".//{%s}schema" % XS)
        with open(os.path.join(tmp, name + ".xsd"), "wb") as f:
            f.write(etree.tostring(inline))
        imports.append((inline.get("targetNamespace"), name + ".xsd"))
    master = os.path.join(tmp, "all.xsd")
    with open(master, "w") as f:
        f.write('<xs:schema xmlns:xs="%s">%s</xs:schema>' % (XS, "".join(
            '<xs:import namespace="%s" schemaLocation="%s"/>' % (ns, os.path.join(tmp, p))
            for ns, p in imports)))
    return etree.XMLSchema(etree.parse(master))


@pytest.fixture(scope="module")
def recorder():
    return ResponseRecorder()


@pytest.fixture(autouse=True)
def validated(schema, recorder):
    start = len(recorder.responses)
    yield
    for raw in recorder.responses[start:]:
        validate(schema, raw)


@pytest.fixture(scope="module")
def log_start(daemon):
    """Where the shared daemon's output stood when these tests began."""
    return len(daemon.output)


@pytest.fixture(scope="module")
def cam(daemon, recorder, log_start):
    """onvif-zeep's ONVIFCamera as admin, its events service and a pull-point factory."""
    onvif = require_module("onvif")
    c = onvif.ONVIFCamera("127.0.0.1", daemon.http_port, "admin", daemon.admin_password,
                          no_cache=True, transport=recorder.transport())
    c.create_events_service()
    return c


def pull_point(cam, **request):
    """(subscription response, pull-point service, subscription-manager service)."""
    import onvif
    sub = cam.events.CreatePullPointSubscription(request or None)
    address = sub.SubscriptionReference.Address._value_1
    cam.xaddrs[PULLPOINT] = address
    pp = cam.create_pullpoint_service()
    manager = onvif.ONVIFService(
        address, cam.user, cam.passwd, os.path.join(_wsdl_dir(), "events.wsdl"),
        no_cache=True, binding_name="{%s}SubscriptionManagerBinding" % TEV,
        transport=cam.transport)
    return sub, pp, manager


def notifications(raw):
    """[(topic, operation, {name: value})] of a PullMessagesResponse document.

    Read from the XML: onvif-zeep's b-2.xsd declares the Topic's text as mixed
    content, which zeep drops (onvif-zeep-async patches the schema; see the HA test).
    """
    out = []
    for msg in etree.fromstring(raw).iterfind(".//wsnt:NotificationMessage", namespaces=N):
        m = msg.find("wsnt:Message/tt:Message", namespaces=N)
        data = {i.get("Name"): i.get("Value")
                for i in m.iterfind("tt:Data/tt:SimpleItem", namespaces=N)}
        out.append((msg.findtext("wsnt:Topic", namespaces=N), m.get("PropertyOperation"), data))
    return out


def pull(pp, recorder, timeout="PT2S", limit=50):
    """PullMessages with the zeep client; the notifications of its response."""
    response = pp.PullMessages({"Timeout": timeout, "MessageLimit": limit})
    raw = recorder.responses[-1]
    assert len(notifications(raw)) == len(response.NotificationMessage or [])
    return notifications(raw)


def pull_until(pp, recorder, predicate, timeout=20.0, poll="PT2S"):
    """Pull until a notification satisfies ``predicate``; return everything seen."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen += pull(pp, recorder, poll)
        if any(predicate(n) for n in seen):
            return seen
    raise AssertionError("no matching event within %s s; saw %r" % (timeout, seen))


def topic_expression(text):
    """A wsnt:TopicExpression element for a zeep Filter (zeep cannot fill its mixed content)."""
    el = etree.Element("{%s}TopicExpression" % WSNT,
                       nsmap={"wsnt": WSNT, "tns1": "http://www.onvif.org/ver10/topics"})
    el.set("Dialect", "http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet")
    el.text = text
    return el


def message_content(xpath):
    """A wsnt:MessageContent element (ONVIF's ItemFilter dialect) for a zeep Filter."""
    el = etree.Element("{%s}MessageContent" % WSNT, nsmap={"wsnt": WSNT, "tt": TT})
    el.set("Dialect", "http://www.onvif.org/ver10/tev/messageContentFilter/ItemFilter")
    el.text = xpath
    return el


def recording(daemon, verb):
    r = requests.post(daemon.http + "/api/recording/" + verb, json={}, timeout=30,
                      auth=("admin", daemon.admin_password))
    assert r.status_code in (200, 201, 409), r.text
    return r


# -- tests ------------------------------------------------------------------------------------

def test_services_advertise_events_and_describe_the_topics(cam, daemon):
    base = "http://127.0.0.1:%d/onvif/" % daemon.http_port
    caps = cam.devicemgmt.GetCapabilities({"Category": "Events"})
    assert caps.Events.XAddr == base + "events_service" and caps.Events.WSPullPointSupport
    services = {s.Namespace: s for s in cam.devicemgmt.GetServices({"IncludeCapability": True})}
    assert services[TEV].XAddr == base + "events_service"
    service_caps = cam.events.GetServiceCapabilities()
    assert service_caps.WSPullPointSupport and service_caps.MaxPullPoints == 16
    props = cam.events.GetEventProperties()
    assert props.FixedTopicSet is True
    names = set()

    def walk(el, path):
        for child in el:
            if not isinstance(child.tag, str) or child.tag.startswith("{%s}" % TT):
                continue
            step = path + [etree.QName(child).localname]
            if child.get("{http://docs.oasis-open.org/wsn/t-1}topic") == "true":
                names.add("/".join(step))
            walk(child, step)
    for top in props.TopicSet._value_1:
        walk([top], [])
    assert {"RuleEngine/CellMotionDetector/Motion", "RecordingConfig/JobState",
            "PTZController/MoveStatus", "Device/HardwareFailure/MotorFailure"} <= names


def test_pull_point_receives_recording_started_and_stopped(cam, daemon, recorder):
    sub, pp, manager = pull_point(cam, InitialTerminationTime="PT60S")
    address = sub.SubscriptionReference.Address._value_1
    assert address.startswith("http://127.0.0.1:%d/onvif/events_service/subscription/"
                              % daemon.http_port)
    assert (sub.TerminationTime - sub.CurrentTime).total_seconds() == 60
    initial = pull_until(pp, recorder, lambda n: n[0] == JOB_STATE)
    assert (JOB_STATE, "Initialized", {"State": "Idle"}) in initial
    try:
        started = time.monotonic()
        recording(daemon, "start")
        seen = pull_until(pp, recorder, lambda n: n[0] == JOB_STATE and n[2]["State"] == "Active",
                          poll="PT10S")
        assert time.monotonic() - started < 5   # the long poll answers when the event comes
        assert (JOB_STATE, "Changed", {"State": "Active"}) in seen
        assert ("tns1:RecordingHistory/Recording/State", "Changed",
                {"IsRecording": "true"}) in seen
    finally:
        recording(daemon, "stop")
    seen = pull_until(pp, recorder, lambda n: n[0] == JOB_STATE and n[2]["State"] == "Idle")
    assert (JOB_STATE, "Changed", {"State": "Idle"}) in seen
    renewed = manager.Renew({"TerminationTime": "PT120S"})
    assert (renewed.TerminationTime - renewed.CurrentTime).total_seconds() == 120
    manager.Unsubscribe()
    with pytest.raises(Exception):
        pp.PullMessages({"Timeout": "PT1S", "MessageLimit": 1})


def test_long_poll_waits_its_timeout_and_honours_the_message_limit(cam, recorder):
    _, pp, manager = pull_point(cam, InitialTerminationTime="PT60S")
    try:
        first = pull(pp, recorder, "PT1S", 1)
        assert len(first) == 1       # more are queued: the limit holds them back
        pp.PullMessages({"Timeout": "PT1S", "MessageLimit": 100})
        pp.SetSynchronizationPoint()
        resynced = pull(pp, recorder, "PT1S", 100)
        assert resynced and all(n[1] == "Initialized" for n in resynced)
        # Nothing queued and the pattern keeps moving (motion stays on): the poll waits.
        start = time.monotonic()
        left = pull(pp, recorder, "PT1.5S", 100)
        waited = time.monotonic() - start
        assert left or 1.3 < waited < 5, (left, waited)
    finally:
        manager.Unsubscribe()


def test_motion_event_from_the_moving_test_pattern(cam, recorder):
    # The test source's bar sweeps the picture, so the detector on stream2 reports motion.
    _, pp, manager = pull_point(cam, Filter={"_value_1": [topic_expression(
        "tns1:RuleEngine//.")]})
    try:
        seen = pull_until(pp, recorder, lambda n: n[0] == MOTION and n[2]["IsMotion"] == "true",
                          timeout=15)
        assert {n[0] for n in seen} == {MOTION}    # the filter holds the other topics back
    finally:
        manager.Unsubscribe()


def test_a_message_content_filter_passes_only_matching_events(cam, daemon, recorder):
    # Only the recording job going Active: not its Idle state at subscription or at the end.
    _, pp, manager = pull_point(cam, Filter={"_value_1": [
        topic_expression("tns1:RecordingConfig//."),
        message_content('boolean(//tt:SimpleItem[@Name="State" and @Value="Active"])')]})
    try:
        assert pull(pp, recorder, "PT1S") == []   # the synchronised Idle is held back
        recording(daemon, "start")
        seen = pull_until(pp, recorder, lambda n: n[2].get("State") == "Active", poll="PT10S")
        recording(daemon, "stop")
        seen += pull(pp, recorder, "PT2S")
        assert seen == [(JOB_STATE, "Changed", {"State": "Active"})]
    finally:
        recording(daemon, "stop")
        manager.Unsubscribe()


def test_ptz_move_status_events(cam, recorder, daemon):
    ptz = cam.create_ptz_service()
    _, pp, manager = pull_point(cam, Filter={"_value_1": [topic_expression(
        "tns1:PTZController//.")]})
    move = "tns1:PTZController/MoveStatus"
    try:
        assert pull(pp, recorder, "PT1S") == [(move, "Initialized", {"PanTilt": "IDLE"})]
        ptz.ContinuousMove({"ProfileToken": "stream1",
                            "Velocity": {"PanTilt": {"x": 0.5, "y": 0.0}}, "Timeout": "PT1S"})
        seen = pull_until(pp, recorder, lambda n: n[2] == {"PanTilt": "MOVING"}, timeout=10)
        seen += pull_until(pp, recorder, lambda n: n[2] == {"PanTilt": "IDLE"}, timeout=15)
        assert (move, "Changed", {"PanTilt": "MOVING"}) in seen
        assert seen[-1] == (move, "Changed", {"PanTilt": "IDLE"})
    finally:
        manager.Unsubscribe()
        # Home again for the other tests (the motor's broadcasts say when it is there).
        with StateWatcher(daemon) as watch:
            ptz.AbsoluteMove({"ProfileToken": "stream1",
                              "Position": {"PanTilt": {"x": 0.0, "y": 0.0}}})
            watch.wait("pan-position", lambda x: abs(x) < 0.01, timeout=20)
            watch.wait("motor-state", "idle", timeout=20)


class Consumer:
    """A notification consumer on 127.0.0.1: records every POSTed body."""

    def __init__(self):
        self.bodies = queue.Queue()
        consumer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                consumer.bodies.put((self.path, self.headers.get("content-type"),
                                     self.rfile.read(length)))
                self.send_response(202)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/onvif_notify" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def next(self, timeout=15):
        return self.bodies.get(timeout=timeout)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_base_notification_subscribe_posts_notify_to_the_consumer(cam, daemon, schema):
    import onvif
    consumer = Consumer()
    wsdl = os.path.join(_wsdl_dir(), "events.wsdl")
    producer = onvif.ONVIFService(
        "http://127.0.0.1:%d/onvif/events_service" % daemon.http_port, "admin",
        daemon.admin_password, wsdl, no_cache=True, transport=cam.transport,
        binding_name="{%s}NotificationProducerBinding" % TEV)
    try:
        result = producer.Subscribe({
            "ConsumerReference": {"Address": consumer.url},
            "Filter": {"_value_1": [topic_expression("tns1:RecordingConfig//.")]},
            "InitialTerminationTime": "PT60S"})
        address = result.SubscriptionReference.Address._value_1
        manager = onvif.ONVIFService(address, "admin", daemon.admin_password, wsdl,
                                     no_cache=True, transport=cam.transport,
                                     binding_name="{%s}SubscriptionManagerBinding" % TEV)
        path, content_type, body = consumer.next()
        assert path == "/onvif_notify" and content_type.startswith("application/soap+xml")
        assert validate(schema, body) == "{%s}Notify" % WSNT
        doc = etree.fromstring(body)
        assert doc.findtext(".//wsnt:Topic", namespaces=N) == JOB_STATE
        assert doc.findtext(".//wsnt:SubscriptionReference/wsa:Address",
                            namespaces=N) == address
        try:
            recording(daemon, "start")
            _, _, body = consumer.next()
            validate(schema, body)
            states = [i.get("Value") for i in etree.fromstring(body).iterfind(
                ".//tt:Data/tt:SimpleItem[@Name='State']", namespaces=N)]
            assert states == ["Active"]
        finally:
            recording(daemon, "stop")
        consumer.next()   # the stop
        renewed = manager.Renew({"TerminationTime": "PT90S"})
        assert (renewed.TerminationTime - renewed.CurrentTime).total_seconds() == 90
        manager.Unsubscribe()
        recording(daemon, "start")
        recording(daemon, "stop")
        with pytest.raises(queue.Empty):
            consumer.next(timeout=1.5)
    finally:
        consumer.close()


def test_raw_pull_with_wsse_and_faults(daemon, schema):
    url = daemon.http + "/onvif/events_service"
    headers = {"content-type": "application/soap+xml; charset=utf-8"}

    def post(target, body):
        r = requests.post(target, timeout=30, headers=headers, data=envelope(
            body, security("admin", daemon.admin_password)))
        validate(schema, r.content)
        return r, etree.fromstring(r.content)
    r, doc = post(url, '<tev:CreatePullPointSubscription xmlns:tev="%s"/>' % TEV)
    sub = doc.findtext(".//wsa:Address", namespaces=N)
    r, doc = post(sub, '<tev:PullMessages xmlns:tev="%s"><tev:Timeout>PT0S</tev:Timeout>'
                       '<tev:MessageLimit>100</tev:MessageLimit></tev:PullMessages>' % TEV)
    assert r.status_code == 200 and doc.findall(".//wsnt:NotificationMessage", namespaces=N)
    r, doc = post(sub, '<wsnt:Unsubscribe xmlns:wsnt="%s"/>' % WSNT)
    assert r.status_code == 200
    r, doc = post(sub, '<tev:PullMessages xmlns:tev="%s"><tev:Timeout>PT1S</tev:Timeout>'
                       '<tev:MessageLimit>1</tev:MessageLimit></tev:PullMessages>' % TEV)
    assert r.status_code == 400 and "ter:ResourceUnknown" in fault_codes(doc)[1]
    # Without credentials: a 401 fault, not a subscription.
    r = requests.post(url, timeout=30, headers=headers, data=envelope(
        '<tev:CreatePullPointSubscription xmlns:tev="%s"/>' % TEV))
    assert r.status_code == 401


def test_a_client_hanging_up_on_a_long_poll_leaves_the_server_working(daemon):
    url = daemon.http + "/onvif/events_service"
    headers = {"content-type": "application/soap+xml; charset=utf-8"}
    r = requests.post(url, timeout=30, headers=headers, data=envelope(
        '<tev:CreatePullPointSubscription xmlns:tev="%s"/>' % TEV,
        security("admin", daemon.admin_password)))
    sub = etree.fromstring(r.content).findtext(".//wsa:Address", namespaces=N)
    pull = ('<tev:PullMessages xmlns:tev="%s"><tev:Timeout>PT0S</tev:Timeout>'
            '<tev:MessageLimit>100</tev:MessageLimit></tev:PullMessages>' % TEV)
    requests.post(sub, timeout=30, headers=headers,
                  data=envelope(pull, security("admin", daemon.admin_password)))
    # Drained; a 30 s poll that the client abandons after 0.5 s.
    waiting = pull.replace("PT0S", "PT30S").replace(">100<", ">1<")
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(sub, timeout=0.5, headers=headers, data=envelope(
            waiting, security("admin", daemon.admin_password)))
    start = time.monotonic()
    r = requests.post(daemon.http + "/onvif/device_service", timeout=30, headers=headers,
                      data=envelope("<tds:GetSystemDateAndTime/>"))
    assert r.status_code == 200 and time.monotonic() - start < 2
    requests.post(sub, timeout=30, headers=headers, data=envelope(
        '<wsnt:Unsubscribe xmlns:wsnt="%s"/>' % WSNT, security("admin", daemon.admin_password)))


def test_a_viewer_stops_at_its_quota_and_the_total_while_an_admin_still_subscribes(
        fresh_daemon, tmp_path, recorder, schema):
    onvif = require_module("onvif")
    conf = tmp_path / "cap.toml"
    conf.write_text("[onvif]\nmax_subscriptions = 6\nmax_subscriptions_per_user = 4\n")
    d = fresh_daemon(extra=["--config", str(conf)],
                     settings={"resolution": "640x360", "fps": 10})
    admin = ("admin", d.admin_password)
    for name in ("watcher", "watcher2"):
        r = requests.post(d.http + "/api/users", auth=admin, timeout=30, json={
            "username": name, "password": name + "-pass-1", "role": "viewer"})
        assert r.status_code in (200, 201), r.text

    def zeep_events(user, password):
        # onvif-zeep's ONVIFCamera makes a pull point of its own (60 s) as it starts.
        cam = onvif.ONVIFCamera("127.0.0.1", d.http_port, user, password, no_cache=True,
                                transport=recorder.transport())
        return cam, cam.create_events_service()

    def zeep_subscribe(service, seconds=600):
        """None when subscribed, else (the fault's subcodes, its reason)."""
        try:
            service.CreatePullPointSubscription({"InitialTerminationTime": "PT%dS" % seconds})
        except onvif.exceptions.ONVIFError as e:
            fault = e.__context__    # onvif-zeep wraps zeep's Fault
            return [q.localname for q in fault.subcodes or []], fault.message
        return None

    def raw_subscribe(user, password, seconds=2):
        r = requests.post(d.http + "/onvif/events_service", timeout=30, headers={
            "content-type": "application/soap+xml; charset=utf-8"}, data=envelope(
                '<tev:CreatePullPointSubscription xmlns:tev="%s"><tev:InitialTerminationTime>'
                'PT%dS</tev:InitialTerminationTime></tev:CreatePullPointSubscription>'
                % (TEV, seconds), security(user, password)))
        validate(schema, r.content)
        return r.status_code, fault_codes(etree.fromstring(r.content))[1]

    _, watcher = zeep_events("watcher", "watcher-pass-1")              # 1 of 4
    assert [zeep_subscribe(watcher) for _ in range(3)] == [None] * 3   # 4 of 4
    refusal = zeep_subscribe(watcher)
    assert refusal is not None, "a fifth subscription for one viewer"
    assert refusal[0] == ["CapabilityViolated", "MaxPullPoints"]
    assert "watcher holds 4" in refusal[1]
    # Another viewer takes the last two of six slots, then meets the total.
    assert [raw_subscribe("watcher2", "watcher2-pass-1") for _ in range(2)] == [(200, [])] * 2
    assert raw_subscribe("watcher2", "watcher2-pass-1") == (
        500, ["ter:CapabilityViolated", "ter:MaxPullPoints"])
    # The administrator subscribes all the same, past the total (up to its headroom).
    cam, boss = zeep_events("admin", d.admin_password)
    assert zeep_subscribe(boss, 2) is None
    # Real expiry on a real daemon frees the 2 s ones (the Clock tests cover the timing);
    # a 1 s long poll on the admin's own pull point paces the loop, no sleep.
    pp = cam.create_pullpoint_service()
    deadline = time.monotonic() + 15
    while raw_subscribe("watcher2", "watcher2-pass-1")[0] != 200:
        assert time.monotonic() < deadline, d.log()[-2000:]
        pp.PullMessages({"Timeout": "PT1S", "MessageLimit": 100})
    assert "Traceback" not in d.log()


# -- Home Assistant's pull-point loop with onvif-zeep-async ------------------------------------

HA_LOOP = r'''
import asyncio, datetime as dt, json, sys
from onvif import ONVIFCamera

async def main(host, port, user, password):
    out = {"lost": 0}
    cam = ONVIFCamera(host, port, user, password, adjust_time=True)
    try:
        await cam.update_xaddrs()
        caps = await cam.get_capabilities()
        out["events_capable"] = bool(caps and caps.get("Events"))
        def lost():
            out["lost"] += 1
        manager = await cam.create_pullpoint_manager(dt.timedelta(minutes=10), lost)
        await manager.set_synchronization_point()
        service = manager.get_service()
        seen = []
        async def pull():
            response = await service.PullMessages(
                {"MessageLimit": 100, "Timeout": dt.timedelta(seconds=60)})
            for msg in response.NotificationMessage or []:
                # As homeassistant/components/onvif/parsers.py reads them.
                topic = msg.Topic._value_1.rstrip("/.")
                value = msg.Message._value_1.Data.SimpleItem[0].Value
                seen.append([topic, value])
        await pull()
        out["initial"] = list(seen)
        print("READY", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        for _ in range(10):
            await pull()
            if ["tns1:RecordingConfig/JobState", "Active"] in seen:
                break
        out["seen"] = seen
        await manager.shutdown()
    finally:
        await cam.close()
    print(json.dumps(out), flush=True)

asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]))
'''


def test_home_assistant_pull_point_loop(daemon, tmp_path):
    from tests.onvif.test_onvif_live import _async_python
    python = _async_python()
    script = tmp_path / "ha_events.py"
    script.write_text(HA_LOOP)
    proc = subprocess.Popen([python, str(script), "127.0.0.1", str(daemon.http_port), "admin",
                             daemon.admin_password], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "READY", (line, proc.stderr.read()[-3000:] if proc.poll()
                                         is not None else "")
        try:
            recording(daemon, "start")
            proc.stdin.write("go\n")
            proc.stdin.flush()
            out_text, err = proc.communicate(timeout=120)
        finally:
            recording(daemon, "stop")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-3000:]
    out = json.loads(out_text.strip().splitlines()[-1])
    assert out["events_capable"] and out["lost"] == 0
    assert [JOB_STATE, "Idle"] in out["initial"]
    assert any(topic == MOTION for topic, _ in out["initial"])
    assert [JOB_STATE, "Active"] in out["seen"]


def test_the_daemon_logged_no_tracebacks_meanwhile(daemon, log_start):
    text = "".join(daemon.output[log_start:])
    assert "Traceback" not in text and "Unhandled" not in text, text[-5000:]
