"""ONVIF Profile G against a running daemon with onvif-zeep and its shipped recording.wsdl,
search.wsdl and replay.wsdl: recording control, recordings and events found over the
recordings index, replay over RTSP from an absolute time; every response validated against
those WSDLs' types and onvif.xsd."""

import time

import pytest
import requests

from tests.conftest import require_module
from rotordream.rtsp.message import format_clock
from tests.support.live import StateWatcher, wait_frames
from tests.support.rawrtsp import RawRtsp, basic
from tests.onvif.schemas import zeep_schema
from tests.support.soapkit import ResponseRecorder, validate

SCHEMA_WSDLS = ("devicemgmt", "events", "recording", "search", "replay")
TRC = "http://www.onvif.org/ver10/recording/wsdl"
try:
    from onvif.exceptions import ONVIFError
    from zeep.exceptions import Fault
    FAULTS = (Fault, ONVIFError)   # onvif-zeep wraps zeep's faults
except ImportError:  # the fixtures' require_module says what is missing
    FAULTS = ()
TSE = "http://www.onvif.org/ver10/search/wsdl"
TRP = "http://www.onvif.org/ver10/replay/wsdl"


@pytest.fixture(scope="module")
def schema():
    """One XMLSchema of onvif-zeep's device, recording and search WSDL types."""
    return zeep_schema(SCHEMA_WSDLS)


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
    assert extension[tt + "Replay"] == base + "replay_service"
    assert cam.xaddrs[TRP] == base + "replay_service"
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


# -- replay ------------------------------------------------------------------------------

def _interleaved(raw, until_bye=True, deadline=20):
    """(arrival time, channel, data) of the interleaved frames until an RTCP BYE."""
    out = []
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        while len(raw.buf) < 4 or len(raw.buf) < 4 + int.from_bytes(raw.buf[2:4], "big"):
            raw._read()
        assert raw.buf[:1] == b"$", raw.buf[:40]
        length = int.from_bytes(raw.buf[2:4], "big")
        channel, data = raw.buf[1], raw.buf[4:4 + length]
        raw.buf = raw.buf[4 + length:]
        out.append((time.monotonic(), channel, data))
        # An RTCP compound ending the stream holds a BYE (packet type 203).
        if channel % 2 and until_bye and _has_bye(data):
            return out
    raise AssertionError("no RTCP BYE in %ss" % deadline)


def _has_bye(data):
    while len(data) >= 4:
        if data[1] == 203:
            return True
        data = data[4 + 4 * int.from_bytes(data[2:4], "big"):]
    return False


def _rtp(data):
    """(marker, timestamp, extension words or None, payload) of an RTP packet."""
    assert data[0] >> 6 == 2
    marker, ts = bool(data[1] & 0x80), int.from_bytes(data[4:8], "big")
    offset, ext = 12 + 4 * (data[0] & 0x0F), None
    if data[0] & 0x10:
        profile, words = int.from_bytes(data[offset:offset + 2], "big"), \
            int.from_bytes(data[offset + 2:offset + 4], "big")
        ext = (profile, data[offset + 4:offset + 4 + 4 * words])
        offset += 4 + 4 * words
    return marker, ts, ext, data[offset:]


def _access_units(payloads):
    """Annex B access units from (marker, payload) RTP payloads (single, STAP-A, FU-A)."""
    units, nals, fragment = [], [], b""
    for marker, payload in payloads:
        kind = payload[0] & 0x1F
        if kind == 24:
            rest = payload[1:]
            while len(rest) > 2:
                size = int.from_bytes(rest[:2], "big")
                nals.append(rest[2:2 + size])
                rest = rest[2 + size:]
        elif kind == 28:
            if payload[1] & 0x80:
                fragment = bytes(((payload[0] & 0xE0) | (payload[1] & 0x1F),))
            fragment += payload[2:]
            if payload[1] & 0x40:
                nals.append(fragment)
        else:
            nals.append(payload)
        if marker:
            units.append(b"".join(b"\x00\x00\x00\x01" + n for n in nals))
            nals = []
    return units


def test_replay_from_an_absolute_time_carries_the_onvif_extension_and_decodes(cam, daemon, two):
    av = require_module("av")
    replay = cam.create_replay_service()
    caps = replay.GetServiceCapabilities()
    assert caps.ReversePlayback is False and caps.RTP_RTSP_TCP is True
    assert replay.GetReplayConfiguration().SessionTimeout
    e = two[0]
    uri = replay.GetReplayUri({"StreamSetup": {"Stream": "RTP-Unicast",
                                               "Transport": {"Protocol": "RTSP"}},
                               "RecordingToken": e["id"]})
    assert uri == "rtsp://127.0.0.1:%d/recording/%s" % (daemon.rtsp_port, e["id"])
    path = uri.split("/", 3)[3]
    start, end = parse_time(e["start"]), parse_time(e["end"])
    at = start + (end - start) / 2
    raw = RawRtsp(daemon.rtsp_port)
    try:
        auth = basic("admin", daemon.admin_password)
        status, headers, _ = raw.ask("DESCRIBE", path, Require="onvif-replay",
                                     Authorization=auth, Accept="application/sdp")
        assert status == 200, headers
        status, sid, headers, _ = raw.setup(path + "/trackID=0",
                                            "RTP/AVP/TCP;unicast;interleaved=0-1",
                                            Require="onvif-replay", Authorization=auth)
        assert status == 200, headers
        cseq = raw.send("PLAY", path, Session=sid, Require="onvif-replay",
                        Range="clock=%s-" % format_clock(at), Rate_Control="no")
        status, headers, _ = raw.answer()
        assert status == 200, headers
        assert headers["Range"].startswith("clock=") and headers["Rate-Control"] == "no"
        frames = _interleaved(raw)
    finally:
        raw.close()
    rtp = [(t, _rtp(data)) for t, channel, data in frames if channel == 0]
    assert rtp
    flags = []
    for _, (marker, ts, ext, payload) in rtp:
        assert ext is not None and ext[0] == 0xABAC and len(ext[1]) == 12
        ntp, flag, seq = int.from_bytes(ext[1][:8], "big"), ext[1][8], ext[1][9]
        assert seq == cseq & 0xFF
        flags.append((ntp / 2 ** 32 - 2208988800, bool(flag & 0x80), bool(flag & 0x40), ts))
    first_time, clean, _, first_ts = flags[0]
    # From the keyframe at or before the asked time, inside the recording.
    assert clean and start - 0.002 <= first_time <= at + 0.002
    times = [f[0] for f in flags]
    assert times == sorted(times) and times[-1] <= end + 0.002
    # The extension's times are the RTP timestamps' times.
    assert all(abs((t - first_time) - (ts - first_ts) / 90000.0) < 0.002
               for t, _, _, ts in flags)
    # E: the packets of the last access unit, the end of the footage.
    assert {ts for _, _, last, ts in flags if last} == {flags[-1][3]}
    # Rate-Control: no sends the rest of the footage much faster than real time.
    assert rtp[-1][0] - rtp[0][0] < (end - at) / 2
    codec = av.CodecContext.create("h264", "r")
    decoded = []
    for unit in _access_units([(m, p) for _, (m, _, _, p) in rtp]):
        decoded.extend(codec.decode(av.Packet(unit)))
    decoded.extend(codec.decode(None))
    assert len(decoded) >= 5
    assert "%dx%d" % (decoded[0].width, decoded[0].height) == e["resolution"]


def test_replay_uri_plays_in_pyav_and_refuses_what_it_cannot_do(cam, daemon, two):
    av = require_module("av")
    replay = cam.create_replay_service()
    e = two[1]
    uri = replay.GetReplayUri({"StreamSetup": {"Stream": "RTP-Unicast",
                                               "Transport": {"Protocol": "TCP"}},
                               "RecordingToken": e["id"]})
    with av.open(uri, options={"rtsp_transport": "tcp"}, timeout=15) as c:
        frames = [f for f in c.decode(video=0)]
    assert len(frames) >= 10
    path = uri.split("/", 3)[3]
    auth = basic("admin", daemon.admin_password)
    raw = RawRtsp(daemon.rtsp_port)
    try:
        status, headers, _ = raw.ask("DESCRIBE", path, Require="onvif-replay, x-bogus",
                                     Authorization=auth)
        assert status == 551 and headers["Unsupported"] == "x-bogus"
        status, headers, _ = raw.ask("DESCRIBE", "stream1", Require="onvif-replay",
                                     Authorization=auth)
        assert status == 551 and headers["Unsupported"] == "onvif-replay"
        status, sid, _, _ = raw.setup(path + "/trackID=0", "RTP/AVP/TCP;unicast;interleaved=0-1",
                                      Require="onvif-replay", Authorization=auth)
        assert status == 200
        later = format_clock(parse_time(e["end"]) + 60)
        status, _, _ = raw.ask("PLAY", path, Session=sid, Require="onvif-replay",
                               Range="clock=%s-" % later)
        assert status == 457
        status, headers, _ = raw.ask("PLAY", path, Session=sid, Require="onvif-replay",
                                     Range="clock=%s-" % format_clock(parse_time(e["end"])),
                                     Scale="-1.0")
        assert status == 551 and headers["Unsupported"] == "Scale"
    finally:
        raw.close()
    with pytest.raises(FAULTS):
        replay.GetReplayUri({"StreamSetup": {"Stream": "RTP-Unicast",
                                             "Transport": {"Protocol": "RTSP"}},
                             "RecordingToken": "no-such-recording"})
