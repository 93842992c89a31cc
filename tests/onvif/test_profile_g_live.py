"""ONVIF Profile G against a running daemon with onvif-zeep and its shipped recording.wsdl and
search.wsdl: recording control, recordings and events found over the recordings index;
every response validated against those WSDLs' types and onvif.xsd."""

import os
import tempfile
import time

import pytest
import requests
from lxml import etree

from tests.conftest import require_module
from tests.support.live import StateWatcher, wait_frames
from tests.support.soapkit import ResponseRecorder, validate

XS = "http://www.w3.org/2001/XMLSchema"
SCHEMA_WSDLS = ("devicemgmt", "events", "recording", "search")
TRC = "http://www.onvif.org/ver10/recording/wsdl"
try:
    from onvif.exceptions import ONVIFError
    from zeep.exceptions import Fault
    FAULTS = (Fault, ONVIFError)   # onvif-zeep wraps zeep's faults
except ImportError:  # the fixtures' require_module says what is missing
    FAULTS = ()
TSE = "http://www.onvif.org/ver10/search/wsdl"


@pytest.fixture(scope="module")
def schema():
    """One XMLSchema of onvif-zeep's device, recording and search WSDL types."""
    onvif = require_module("onvif")
    wsdl = os.path.join(os.path.dirname(os.path.dirname(onvif.__file__)), "wsdl")
    tmp = tempfile.mkdtemp(prefix="onvif-xsd-")
    for name in os.listdir(wsdl):
        os.symlink(os.path.join(wsdl, name), os.path.join(tmp, name))
    imports = []
    for name in SCHEMA_WSDLS:
        inline = etree.parse(os.path.join(wsdl, name + ".wsdl")).find(".//{%s}schema" % XS)
        path = os.path.join(tmp, name + ".xsd")
        with open(path, "wb") as f:
            f.write(etree.tostring(inline))
        imports.append((inline.get("targetNamespace"), path))
    master = os.path.join(tmp, "all.xsd")
    with open(master, "w") as f:
        f.write('<xs:schema xmlns:xs="%s">%s</xs:schema>' % (XS, "".join(
            '<xs:import namespace="%s" schemaLocation="%s"/>' % i for i in imports)))
    return etree.XMLSchema(etree.parse(master))


@pytest.fixture(scope="module")
def recorder():
    return ResponseRecorder()


@pytest.fixture(scope="module")
def cam(daemon, recorder):
    """onvif-zeep's ONVIFCamera (PasswordDigest) with the XAddrs GetServices gives."""
    onvif = require_module("onvif")
    cam = onvif.ONVIFCamera("127.0.0.1", daemon.http_port, "admin", daemon.admin_password,
                            no_cache=True, transport=recorder.transport())
    for service in cam.devicemgmt.GetServices({"IncludeCapability": False}):
        cam.xaddrs[service.Namespace] = service.XAddr
    return cam


@pytest.fixture(autouse=True)
def validated(request, schema, recorder):
    """After each test, validate the responses it received."""
    start = len(recorder.responses)
    yield
    assert len(recorder.responses) > start
    for raw in recorder.responses[start:]:
        validate(schema, raw)


def settings_record(daemon):
    r = requests.get(daemon.http + "/api/settings", auth=("admin", daemon.admin_password),
                     timeout=30)
    return r.json()["data"]["record"]


def rest_recordings(daemon):
    r = requests.get(daemon.http + "/api/recordings", auth=("admin", daemon.admin_password),
                     params={"limit": "1000"}, timeout=30)
    assert r.status_code == 200, r.text
    return {e["id"]: e for e in r.json()["data"]["recordings"]}


def finished_after(daemon, before, deadline=30):
    """The recordings new since ``before`` once none of them is being written (a poll of
    the daemon, an external process, with a deadline)."""
    end = time.monotonic() + deadline
    while True:
        new = {k: v for k, v in rest_recordings(daemon).items() if k not in before}
        if new and not any(e["recording"] for e in new.values()):
            return new
        assert time.monotonic() < end, "the recording was not finished in %ss" % deadline
        time.sleep(0.2)


def parse_time(text):
    from rotordream.onvif.topics import parse_datetime
    return parse_datetime(text)


@pytest.fixture(scope="module")
def two(cam, daemon):
    """Two recordings made through ONVIF (SetRecordingJobMode, then CreateRecordingJob),
    about one second of stream1 each, as the REST API lists them (oldest first)."""
    rec = cam.create_recording_service()
    made = []
    for start in ("mode", "create"):
        before = rest_recordings(daemon)
        with StateWatcher(daemon) as watch:
            if start == "mode":
                rec.SetRecordingJobMode({"JobToken": "record_job", "Mode": "Active"})
            else:
                created = rec.CreateRecordingJob({"JobConfiguration": {
                    "RecordingToken": "record_job", "Mode": "Active", "Priority": 1}})
                assert created.JobToken == "record_job"
            watch.wait("record", True, timeout=10)
            try:
                wait_frames(daemon, 30)   # a second of the camera's own clock
            finally:
                rec.SetRecordingJobMode({"JobToken": "record_job", "Mode": "Idle"})
            watch.wait("record", False, timeout=10)
        new = finished_after(daemon, before)
        assert len(new) == 1
        made.extend(new.values())
    return made


def test_profile_g_services_are_advertised(cam, daemon):
    base = "http://127.0.0.1:%d/onvif/" % daemon.http_port
    assert cam.xaddrs[TRC] == base + "recording_service"
    assert cam.xaddrs[TSE] == base + "search_service"
    caps = cam.devicemgmt.GetCapabilities({"Category": "All"})
    # zeep hands the extension's elements over unparsed (its leading xs:any takes them).
    tt = "{http://www.onvif.org/ver10/schema}"
    extension = {el.tag: el.findtext(tt + "XAddr") for el in caps.Extension._value_1}
    assert extension[tt + "Recording"] == base + "recording_service"
    assert extension[tt + "Search"] == base + "search_service"
    with_caps = cam.devicemgmt.GetServices({"IncludeCapability": True})
    assert {s.Namespace for s in with_caps} >= {TRC, TSE}
    rec = cam.create_recording_service()
    assert rec.GetServiceCapabilities().MaxRecordingJobs == 1
    assert cam.create_search_service().GetServiceCapabilities().GeneralStartEvents is True


def test_recordings_tracks_and_the_job(cam, daemon, two):
    rec = cam.create_recording_service()
    items = {i.RecordingToken: i for i in rec.GetRecordings()}
    for e in two:
        item = items[e["id"]]
        assert item.Tracks.Track[0].TrackToken == "video"
        assert item.Tracks.Track[0].Configuration.TrackType == "Video"
        conf = rec.GetRecordingConfiguration({"RecordingToken": e["id"]})
        assert conf.Source.Address.startswith("rtsp://127.0.0.1:")
        track = rec.GetTrackConfiguration({"RecordingToken": e["id"], "TrackToken": "video"})
        assert track.TrackType == "Video"
    jobs = rec.GetRecordingJobs()
    assert [j.JobToken for j in jobs] == ["record_job"]
    assert jobs[0].JobConfiguration.Mode == "Idle"
    assert jobs[0].JobConfiguration.RecordingToken == two[-1]["id"]
    state = rec.GetRecordingJobState({"JobToken": "record_job"})
    assert state.State == "Idle"
    options = rec.GetRecordingOptions({"RecordingToken": two[0]["id"]})
    assert options.Job.Spare == 0
    with pytest.raises(FAULTS):
        rec.GetRecordingConfiguration({"RecordingToken": "no-such-recording"})
    with pytest.raises(FAULTS):
        rec.SetRecordingJobMode({"JobToken": "other_job", "Mode": "Active"})
    with pytest.raises(FAULTS):
        rec.CreateRecording({"RecordingConfiguration": {
            "Source": {"SourceId": "x", "Name": "x", "Location": "x", "Description": "x",
                       "Address": "x"}, "Content": "x", "MaximumRetentionTime": "PT0S"}})


def test_a_viewer_may_search_but_not_record(daemon, recorder, two):
    onvif = require_module("onvif")
    r = requests.post(daemon.http + "/api/users", auth=("admin", daemon.admin_password),
                      json={"username": "gviewer", "password": "viewer-pass-1", "role": "viewer"},
                      timeout=30)
    assert r.status_code in (200, 201, 409), r.text
    cam = onvif.ONVIFCamera("127.0.0.1", daemon.http_port, "gviewer", "viewer-pass-1",
                            no_cache=True, transport=recorder.transport())
    for service in cam.devicemgmt.GetServices({"IncludeCapability": False}):
        cam.xaddrs[service.Namespace] = service.XAddr
    rec = cam.create_recording_service()
    assert two[0]["id"] in {i.RecordingToken for i in rec.GetRecordings()}
    with pytest.raises(FAULTS) as e:
        rec.SetRecordingJobMode({"JobToken": "record_job", "Mode": "Active"})
    assert "may not" in str(e.value)
    assert settings_record(daemon) is False


def _search_all(search, find, results, token_field="SearchToken", **args):
    token = getattr(search, find)(args)
    out = []
    while True:
        page = getattr(search, results)({token_field: token, "MaxResults": 1,
                                         "WaitTime": "PT1S"})
        items = page.RecordingInformation if find == "FindRecordings" else page.Result
        out.extend(items or [])
        if page.SearchState == "Completed":
            break
    return token, out


def test_find_recordings_finds_both_with_their_times(cam, daemon, two):
    search = cam.create_search_service()
    ids = [e["id"] for e in two]
    token, found = _search_all(search, "FindRecordings", "GetRecordingSearchResults",
                               Scope={"IncludedRecordings": ids}, MaxMatches=10,
                               KeepAliveTime="PT10S")
    assert sorted(i.RecordingToken for i in found) == sorted(ids)
    by_id = {i.RecordingToken: i for i in found}
    for e in two:
        info = by_id[e["id"]]
        assert info.RecordingStatus == "Stopped"
        assert abs(info.EarliestRecording.timestamp() - parse_time(e["start"])) < 0.002
        assert abs(info.LatestRecording.timestamp() - parse_time(e["end"])) < 0.002
        assert info.Track[0].TrackType == "Video"
        assert 0.5 < info.LatestRecording.timestamp() - info.EarliestRecording.timestamp() < 30
    assert search.GetSearchState({"SearchToken": token}) == "Completed"
    search.EndSearch({"SearchToken": token})
    with pytest.raises(FAULTS):
        search.GetRecordingSearchResults({"SearchToken": token})
    # The ONVIF XPath filter over each recording's information.
    video = 'boolean(//Track[TrackType = "Video"])'
    _, found = _search_all(search, "FindRecordings", "GetRecordingSearchResults",
                           Scope={"IncludedRecordings": ids, "RecordingInformationFilter": video},
                           KeepAliveTime="PT10S")
    assert len(found) == 2
    _, found = _search_all(search, "FindRecordings", "GetRecordingSearchResults",
                           Scope={"IncludedRecordings": ids, "RecordingInformationFilter":
                                  'boolean(//Track[TrackType = "Audio"])'},
                           KeepAliveTime="PT10S")
    assert found == []


def test_summary_information_and_media_attributes(cam, daemon, two):
    search = cam.create_search_service()
    summary = search.GetRecordingSummary()
    assert summary.NumberRecordings >= 2
    assert summary.DataFrom.timestamp() <= parse_time(two[0]["start"]) + 0.002
    info = search.GetRecordingInformation({"RecordingToken": two[1]["id"]})
    assert info.RecordingToken == two[1]["id"] and info.Source.Name
    middle = (parse_time(two[0]["start"]) + parse_time(two[0]["end"])) / 2
    attrs = search.GetMediaAttributes({"RecordingTokens": [e["id"] for e in two],
                                       "Time": time.strftime("%Y-%m-%dT%H:%M:%S",
                                                             time.gmtime(middle))
                                       + ".%03dZ" % (int(middle * 1000) % 1000)})
    assert [a.RecordingToken for a in attrs] == [two[0]["id"]]
    video = attrs[0].TrackAttributes[0].VideoAttributes
    assert "%dx%d" % (video.Width, video.Height) == two[0]["resolution"]
    assert video.Encoding == "H264"


def test_find_events_lists_the_recording_events_in_order(cam, daemon, two):
    search = cam.create_search_service()
    first, last = parse_time(two[0]["start"]), parse_time(two[1]["end"])

    def xs(t):
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + \
            ".%03dZ" % (int(t * 1000) % 1000)
    filter_ = {"_value_1": []}
    token, results = _search_all(
        search, "FindEvents", "GetEventSearchResults",
        StartPoint=xs(first - 0.5), EndPoint=xs(last + 0.5),
        Scope={"IncludedRecordings": [e["id"] for e in two]}, SearchFilter=filter_,
        IncludeStartState=False, KeepAliveTime="PT10S")
    # zeep leaves the Topic's text out (mixed content); the Data item names the topic.
    recording_events = [r for r in results if _item(r, "IsRecording") is not None]
    got = [(r.RecordingToken, _item(r, "IsRecording")) for r in recording_events]
    # A recording starts at the keyframe before its command, so the second may begin
    # before the first ended: the order is the times' order.
    expected = sorted([(parse_time(e["start"]), e["id"], "true") for e in two] +
                      [(parse_time(e["end"]), e["id"], "false") for e in two])
    assert got == [(rid, value) for _, rid, value in expected]
    times = [r.Time.timestamp() for r in results]
    assert times == sorted(times)
    assert abs(recording_events[0].Time.timestamp() - first) < 0.002
    assert abs(recording_events[-1].Time.timestamp() - last) < 0.002
    assert all(r.StartStateEvent is False for r in results)
    # Backwards when EndPoint is before StartPoint; the start state when asked for.
    _, back = _search_all(
        search, "FindEvents", "GetEventSearchResults",
        StartPoint=xs(last + 0.5), EndPoint=xs(first - 0.5),
        Scope={"IncludedRecordings": [e["id"] for e in two]}, SearchFilter=filter_,
        IncludeStartState=False, KeepAliveTime="PT10S")
    assert [r.Time for r in back] == [r.Time for r in results][::-1]
    inside = (parse_time(two[0]["start"]) + parse_time(two[0]["end"])) / 2
    _, states = _search_all(
        search, "FindEvents", "GetEventSearchResults",
        StartPoint=xs(inside), Scope={"IncludedRecordings": [two[0]["id"]]},
        SearchFilter=filter_, IncludeStartState=True, KeepAliveTime="PT10S")
    assert states[0].StartStateEvent is True and _item(states[0], "IsRecording") == "true"
    assert [_item(r, "IsRecording") for r in states[1:]] == ["false"]


def _item(result, name):
    """The value of the Data item ``name`` of a result's event (None: no such item)."""
    data = result.Event.Message._value_1.Data
    return next((i.Value for i in data.SimpleItem if i.Name == name), None)
