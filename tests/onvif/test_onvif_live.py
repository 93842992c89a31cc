"""ONVIF against a running daemon: the real onvif-zeep client, raw SOAP attacks, and every
successful response validated against the ONVIF schemas onvif-zeep ships."""

import asyncio
import concurrent.futures
import datetime
import json
import os
import subprocess
import time

import pytest
import requests
from lxml import etree

from tests.conftest import require_module, require_tool
from tests.support.live import StateWatcher
from tests.onvif.schemas import zeep_schema
from tests.support.soapkit import (NS, ResponseRecorder, created_now, envelope,
                                   fault_codes, security, validate)

SCHEMA_WSDLS = ("devicemgmt", "media", "ptz", "imaging", "deviceio")


# -- recording every response, validating it against the XSDs ------------------------

@pytest.fixture(scope="module")
def schema():
    """One XMLSchema covering the device, media, PTZ and imaging WSDL types."""
    return zeep_schema(SCHEMA_WSDLS)


@pytest.fixture(scope="module")
def recorder():
    return ResponseRecorder()


@pytest.fixture(scope="module")
def cam(daemon, recorder):
    """onvif-zeep's ONVIFCamera logged in as admin (PasswordDigest)."""
    onvif = require_module("onvif")
    return onvif.ONVIFCamera("127.0.0.1", daemon.http_port, "admin", daemon.admin_password,
                             no_cache=True, transport=recorder.transport())


@pytest.fixture(autouse=True)
def validated(request, schema, recorder):
    """After each test, validate the responses it received."""
    start = len(recorder.responses)
    yield
    for raw in recorder.responses[start:]:
        validate(schema, raw)


def settings(daemon, *keys):
    r = requests.get(daemon.http + "/api/settings", auth=("admin", daemon.admin_password))
    data = r.json()["data"]
    return tuple(data[k] for k in keys)


# -- the device ----------------------------------------------------------------------

def test_device_information_capabilities_and_services(cam, daemon, recorder):
    dev = cam.devicemgmt
    info = dev.GetDeviceInformation()
    assert info.Manufacturer == "RotorDream" and info.FirmwareVersion and info.SerialNumber
    caps = dev.GetCapabilities({"Category": "All"})
    base = "http://127.0.0.1:%d/onvif/" % daemon.http_port
    assert caps.Media.XAddr == base + "media_service"
    assert caps.PTZ.XAddr == base + "ptz_service"
    assert caps.Imaging.XAddr == base + "imaging_service"
    assert caps.Device.XAddr == base + "device_service"
    assert dev.GetCapabilities({"Category": "PTZ"}).PTZ.XAddr == base + "ptz_service"
    services = dev.GetServices({"IncludeCapability": True})
    by_ns = {s.Namespace: s.XAddr for s in services}
    assert by_ns[NS["trt"]] == base + "media_service"
    assert by_ns[NS["tds"]] == base + "device_service"
    when = dev.GetSystemDateAndTime()
    utc = when.UTCDateTime
    stamp = time.mktime((utc.Date.Year, utc.Date.Month, utc.Date.Day, utc.Time.Hour,
                         utc.Time.Minute, utc.Time.Second, 0, 0, 0)) - time.timezone
    assert abs(stamp - time.time()) < 5
    assert when.DateTimeType in ("NTP", "Manual")
    assert dev.GetHostname().Name == os.uname().nodename
    ifaces = dev.GetNetworkInterfaces()
    assert all(i.Info.HwAddress for i in ifaces)
    scopes = [s.ScopeItem for s in dev.GetScopes()]
    assert "onvif://www.onvif.org/Profile/Streaming" in scopes
    assert any(s.startswith("onvif://www.onvif.org/name/") for s in scopes)
    assert {u.Username: u.UserLevel for u in dev.GetUsers()}["admin"] == "Administrator"
    protocols = {p.Name: p.Port[0] for p in dev.GetNetworkProtocols()}
    assert protocols["HTTP"] == daemon.http_port and protocols["RTSP"] == daemon.rtsp_port
    dev.GetNTP(), dev.GetDNS(), dev.GetNetworkDefaultGateway(), dev.GetWsdlUrl()
    assert dev.GetDiscoveryMode() == "Discoverable"
    assert dev.GetEndpointReference().GUID.startswith("urn:uuid:")
    assert dev.GetServiceCapabilities().Security.UsernameToken is True
    # Every response above is schema-checked by the `validated` fixture.
    assert len(recorder.responses) >= 18


def test_set_system_date_and_time_is_a_clear_fault(cam):
    from zeep.exceptions import Fault
    onvif = require_module("onvif")
    with pytest.raises((onvif.exceptions.ONVIFError, Fault)) as e:
        cam.devicemgmt.SetSystemDateAndTime({
            "DateTimeType": "Manual", "DaylightSavings": False,
            "UTCDateTime": {"Date": {"Year": 2020, "Month": 1, "Day": 1},
                            "Time": {"Hour": 0, "Minute": 0, "Second": 0}}})
    assert "host" in str(e.value)


# -- media --------------------------------------------------------------------------------

def test_profiles_are_h264_at_the_true_resolutions(cam, daemon):
    media = cam.create_media_service()
    profiles = media.GetProfiles()
    assert [p.token for p in profiles] == ["stream1", "stream2"]
    res1, fps1, res2 = settings(daemon, "resolution", "fps", "stream2-resolution")
    for p, res in zip(profiles, (res1, res2)):
        vec = p.VideoEncoderConfiguration
        assert vec.Encoding == "H264"
        assert "%dx%d" % (vec.Resolution.Width, vec.Resolution.Height) == res
        assert p.PTZConfiguration.NodeToken == "ptz_node"
    assert profiles[0].VideoEncoderConfiguration.RateControl.FrameRateLimit == fps1
    options = media.GetVideoEncoderConfigurationOptions({"ConfigurationToken": "encoder1"})
    sizes = {"%dx%d" % (r.Width, r.Height) for r in options.H264.ResolutionsAvailable}
    assert res1 in sizes
    assert media.GetVideoSources()[0].Resolution.Width == int(res1.split("x")[0])
    media.GetVideoSourceConfigurations(), media.GetVideoEncoderConfigurations()
    media.GetCompatibleVideoEncoderConfigurations({"ProfileToken": "stream2"})
    assert media.GetGuaranteedNumberOfVideoEncoderInstances(
        {"ConfigurationToken": "video_source_config"}).TotalNumber == 2
    assert media.GetProfile({"ProfileToken": "stream2"}).Name == "stream2"


def test_create_and_delete_profile_answer_proper_faults(cam):
    from zeep.exceptions import Fault
    onvif = require_module("onvif")
    media = cam.create_media_service()
    with pytest.raises((onvif.exceptions.ONVIFError, Fault)) as e:
        media.CreateProfile({"Name": "third"})
    assert "maximum number of profiles" in str(e.value)
    with pytest.raises((onvif.exceptions.ONVIFError, Fault)):
        media.DeleteProfile({"ProfileToken": "stream1"})


def test_set_video_encoder_configuration_changes_the_stream(cam, daemon):
    media = cam.create_media_service()
    conf = media.GetVideoEncoderConfiguration({"ConfigurationToken": "encoder2"})
    old = settings(daemon, "stream2-bitrate", "stream2-gop")
    try:
        conf.RateControl.BitrateLimit = 750
        conf.H264.GovLength = 25
        media.SetVideoEncoderConfiguration({"Configuration": conf, "ForcePersistence": True})
        assert settings(daemon, "stream2-bitrate", "stream2-gop") == (750, 25)
        again = media.GetVideoEncoderConfiguration({"ConfigurationToken": "encoder2"})
        assert (again.RateControl.BitrateLimit, again.H264.GovLength) == (750, 25)
    finally:
        r = requests.post(daemon.http + "/api/settings", auth=("admin", daemon.admin_password),
                          json={"stream2-bitrate": old[0], "stream2-gop": old[1]})
        assert r.status_code == 200


def test_stream_uri_plays_in_ffprobe(cam, daemon):
    ffprobe = require_tool("ffprobe", "apt-get install ffmpeg")
    media = cam.create_media_service()
    uri = media.GetStreamUri({"StreamSetup": {"Stream": "RTP-Unicast",
                                              "Transport": {"Protocol": "RTSP"}},
                              "ProfileToken": "stream1"}).Uri
    assert uri == "rtsp://127.0.0.1:%d/stream1" % daemon.rtsp_port
    out = subprocess.run([ffprobe, "-v", "error", "-rtsp_transport", "tcp", "-show_streams",
                          "-of", "json", uri], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    stream = json.loads(out.stdout)["streams"][0]
    res = settings(daemon, "resolution")[0]
    assert stream["codec_name"] == "h264"
    assert "%dx%d" % (stream["width"], stream["height"]) == res
    udp = media.GetStreamUri({"StreamSetup": {"Stream": "RTP-Unicast",
                                              "Transport": {"Protocol": "UDP"}},
                              "ProfileToken": "stream2"}).Uri
    assert udp.endswith("/stream2") and "0.0.0.0" not in udp


def _digest_header(challenge, method, url, user, password):
    from requests.auth import HTTPDigestAuth
    from requests.utils import parse_dict_header
    auth = HTTPDigestAuth(user, password)
    auth.init_per_thread_state()
    auth._thread_local.chal = parse_dict_header(challenge[len("Digest "):])
    return auth.build_digest_header(method, url)


def test_snapshot_uri_gives_a_jpeg_with_digest(cam, daemon):
    media = cam.create_media_service()
    uri = media.GetSnapshotUri({"ProfileToken": "stream1"}).Uri
    assert uri == daemon.http + "/api/snapshot"
    # A challenge from the ONVIF service itself, answered on the snapshot URI.
    r = requests.post(daemon.http + "/onvif/device_service",
                      data=envelope("<tds:GetDeviceInformation/>"),
                      headers={"content-type": "application/soap+xml"})
    assert r.status_code == 401
    challenge = next(c for c in r.raw.headers.getlist("www-authenticate") if "MD5" in c)
    snap = requests.get(uri, headers={"authorization": _digest_header(
        challenge, "GET", uri, "admin", daemon.admin_password)}, timeout=30)
    assert snap.status_code == 200, snap.text
    assert snap.headers["content-type"] == "image/jpeg"
    assert snap.content[:2] == b"\xff\xd8"
    wrong = requests.get(uri, headers={"authorization": _digest_header(
        challenge, "GET", uri, "admin", "not-the-password")}, timeout=30)
    assert wrong.status_code == 401


def test_http_digest_instead_of_ws_security(daemon):
    from requests.auth import HTTPDigestAuth
    r = requests.post(daemon.http + "/onvif/device_service",
                      data=envelope("<tds:GetDeviceInformation/>"),
                      headers={"content-type": "application/soap+xml; charset=utf-8; "
                                               'action="http://www.onvif.org/ver10/device/wsdl/'
                                               'GetDeviceInformation"'},
                      auth=HTTPDigestAuth("admin", daemon.admin_password))
    assert r.status_code == 200
    doc = etree.fromstring(r.content)
    assert doc.findtext(".//tds:Manufacturer", namespaces=NS) == "RotorDream"


# -- imaging -------------------------------------------------------------------------------

def test_set_imaging_brightness_reaches_rest_and_websocket(cam, daemon):
    websockets = require_module("websockets")
    imaging = cam.create_imaging_service()
    options = imaging.GetOptions({"VideoSourceToken": "video_source"})
    assert (options.Brightness.Min, options.Brightness.Max) == (0, 100)
    old = imaging.GetImagingSettings({"VideoSourceToken": "video_source"})
    target = 23 if old.Brightness != 23 else 24

    async def go():
        async with websockets.connect(daemon.ws) as ws:
            await ws.send(json.dumps({"get": ["brightness"]}))
            json.loads(await asyncio.wait_for(ws.recv(), 5))
            settings_ = imaging.create_type("SetImagingSettings")
            settings_.VideoSourceToken = "video_source"
            settings_.ImagingSettings = {"Brightness": target}
            await asyncio.get_running_loop().run_in_executor(
                None, imaging.SetImagingSettings, settings_)
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if "brightness" in msg:
                    return msg["brightness"]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        seen = pool.submit(asyncio.run, go()).result(timeout=60)
    try:
        assert seen == target
        assert settings(daemon, "brightness") == (target,)
        now = imaging.GetImagingSettings({"VideoSourceToken": "video_source"})
        assert now.Brightness == target
    finally:
        requests.post(daemon.http + "/api/settings", auth=("admin", daemon.admin_password),
                      json={"brightness": int(old.Brightness)})


# -- PTZ -------------------------------------------------------------------------------------

def test_ptz_continuous_move_status_stop(cam, daemon):
    ptz = cam.create_ptz_service()
    node = ptz.GetNodes()[0]
    assert "tt:Wiper|On" in node.AuxiliaryCommands
    ptz.GetConfigurations(), ptz.GetConfigurationOptions({"ConfigurationToken": "ptz_config"})
    start = ptz.GetStatus({"ProfileToken": "stream1"}).Position.PanTilt.x

    def status():
        return ptz.GetStatus({"ProfileToken": "stream1"})
    # The motor's own broadcasts say when it moves and stops; GetStatus must agree.
    with StateWatcher(daemon) as watch:
        ptz.ContinuousMove({"ProfileToken": "stream1",
                            "Velocity": {"PanTilt": {"x": 0.5, "y": 0.0}}, "Timeout": "PT10S"})
        try:
            watch.wait("motor-state", "moving", timeout=10)
            assert status().MoveStatus.PanTilt == "MOVING"
            watch.wait("pan-position", lambda x: x is not None and abs(x - start) > 0.5,
                       timeout=10)
            assert status().Position.PanTilt.x != start
        finally:
            ptz.Stop({"ProfileToken": "stream1", "PanTilt": True})
        watch.wait("motor-state", "idle", timeout=10)
        assert status().MoveStatus.PanTilt == "IDLE"
        # A ContinuousMove with a Timeout stops by itself.
        ptz.ContinuousMove({"ProfileToken": "stream1",
                            "Velocity": {"PanTilt": {"x": -0.5, "y": 0.2}}, "Timeout": "PT0.5S"})
        watch.wait("motor-state", "moving", timeout=5)
        watch.wait("motor-state", "idle", timeout=10)
        assert status().MoveStatus.PanTilt == "IDLE"
        # Home again for the other tests.
        ptz.AbsoluteMove({"ProfileToken": "stream1",
                          "Position": {"PanTilt": {"x": 0.0, "y": 0.0}}})
        watch.wait("motor-state", "moving", timeout=5)
        watch.wait("motor-state", "idle", timeout=20)
    assert abs(status().Position.PanTilt.x) < 0.01


def test_ptz_absolute_move_sets_the_targets_so_a_tilt_write_keeps_the_pan(cam, daemon):
    """AbsoluteMove is a move like a REST write: ``pan``/``tilt`` follow it, and a later
    write of ``tilt`` alone does not send the camera back to the old ``pan``."""
    ptz = cam.create_ptz_service()
    admin = ("admin", daemon.admin_password)
    with StateWatcher(daemon) as watch:
        try:
            ptz.AbsoluteMove({"ProfileToken": "stream1",
                              "Position": {"PanTilt": {"x": 0.25, "y": 0.0}}})
            watch.wait("pan-position", lambda x: x is not None and abs(x - 42.5) < 0.2,
                       timeout=20)
            watch.wait("motor-state", "idle", timeout=10)
            assert settings(daemon, "pan", "tilt") == (42.5, 0.0)
            r = requests.post(daemon.http + "/api/settings", auth=admin, json={"tilt": 10.0})
            assert r.status_code == 200, r.text
            watch.wait("tilt-position", lambda x: x is not None and abs(x - 10.0) < 0.2,
                       timeout=20)
            watch.wait("motor-state", "idle", timeout=10)
            pan, = settings(daemon, "pan-position")
            assert abs(pan - 42.5) < 0.2
            assert settings(daemon, "pan", "tilt") == (42.5, 10.0)
        finally:
            requests.post(daemon.http + "/api/settings", auth=admin,
                          json={"pan": 0.0, "tilt": 0.0})
            watch.wait("pan-position", lambda x: x is not None and abs(x) < 0.2, timeout=20)
            watch.wait("tilt-position", lambda x: x is not None and abs(x) < 0.2, timeout=20)


REL_FOV = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/TranslationSpaceFov"
POLL = 0.05  # Frigate's autotracker polls GetStatus about this often
TICK = 0.05  # the simulated controller's control cycle


def travel_time(dpan, dtilt):
    """Seconds the simulated controller takes for a relative move (its own physics)."""
    from rotordream.motor.simulator import ControllerModel
    model = ControllerModel()
    model.pan.target, model.tilt.target = dpan, dtilt
    elapsed = 0.0
    while model.pan.moving or model.tilt.moving:
        model.step(TICK)
        elapsed += TICK
    return elapsed


def poll_until_idle(ptz, since, limit=10.0):
    """GetStatus every POLL seconds until IDLE: (seconds from ``since`` to the request that
    saw IDLE, that status, the statuses before)."""
    before = []
    while True:
        asked = time.monotonic()
        status = ptz.GetStatus({"ProfileToken": "stream1"})
        if status.MoveStatus.PanTilt == "IDLE":
            return asked - since, status, before
        before.append(status)
        assert asked - since < limit, "still MOVING after %ss" % limit
        # Polling an external process at a fixed rate, as the autotracker does.
        time.sleep(max(0.0, asked + POLL - time.monotonic()))


def test_frigate_style_autotracking_sees_each_move_end_within_100_ms(cam, daemon):
    """RelativeMove in the FOV translation space, GetStatus every 50 ms until IDLE, again:
    never IDLE before the axes are done, always IDLE within 100 ms of their end."""
    ptz = cam.create_ptz_service()
    poll_until_idle(ptz, time.monotonic(), limit=30)
    for x, y in ((0.2, 0.1), (-0.2, -0.1), (0.4, 0.0), (-0.4, 0.0), (0.0, 0.3), (0.0, -0.3)):
        ends = travel_time(x * 30.0, y * 17.0)  # FOV space: x, y move by half of 60 x 34 deg
        ptz.RelativeMove({"ProfileToken": "stream1",
                          "Translation": {"PanTilt": {"x": x, "y": y, "space": REL_FOV}}})
        accepted = time.monotonic()
        took, status, before = poll_until_idle(ptz, accepted)
        assert before and before[0].MoveStatus.PanTilt == "MOVING"
        # The axes end at most one control cycle after `ends` (the move may have started
        # any time before the answer); IDLE is seen by the first poll after that.
        assert ends - TICK <= took <= ends + TICK + 0.1, (x, y, ends, took)
        utc = status.UtcTime
        utc = utc if utc.tzinfo else utc.replace(tzinfo=datetime.timezone.utc)
        assert abs(utc.timestamp() - time.time()) < 5
        # A move from ONVIF keeps the pan/tilt targets like every other move.
        pan, tilt, pan_at, tilt_at = settings(daemon, "pan", "tilt", "pan-position",
                                              "tilt-position")
        assert abs(pan - pan_at) <= 0.1 and abs(tilt - tilt_at) <= 0.1


def test_get_status_is_idle_right_after_a_continuous_move_stops(cam, daemon):
    """The issue's sequence: ContinuousMove, Stop; the axes brake in 0.25 s and GetStatus
    must not keep saying MOVING until the controller's next 1 Hz report."""
    ptz = cam.create_ptz_service()
    for direction in (1, -1):
        ptz.ContinuousMove({"ProfileToken": "stream1",
                            "Velocity": {"PanTilt": {"x": 0.5 * direction, "y": 0.0}},
                            "Timeout": "PT10S"})
        moving = time.monotonic()
        assert ptz.GetStatus({"ProfileToken": "stream1"}).MoveStatus.PanTilt == "MOVING"
        try:
            while time.monotonic() - moving < 0.6:  # up to speed (0.25 s), then cruising
                assert ptz.GetStatus({"ProfileToken": "stream1"}).MoveStatus.PanTilt \
                    == "MOVING"
        finally:
            ptz.Stop({"ProfileToken": "stream1", "PanTilt": True})
        stopped = time.monotonic()
        took, status, before = poll_until_idle(ptz, stopped)
        brake = 30.0 / 120.0  # 0.5 of 60 deg/s, braking at 120 deg/s2
        assert took <= brake + TICK + 0.1, took
        pan, pan_at = settings(daemon, "pan", "pan-position")
        assert abs(pan - pan_at) <= 0.1


def test_ptz_presets(cam):
    ptz = cam.create_ptz_service()
    token = ptz.SetPreset({"ProfileToken": "stream1", "PresetName": "porch-view"})
    try:
        assert "porch-view" in [p.Name for p in ptz.GetPresets({"ProfileToken": "stream1"})]
        ptz.GotoPreset({"ProfileToken": "stream1", "PresetToken": token})
    finally:
        ptz.RemovePreset({"ProfileToken": "stream1", "PresetToken": token})
    assert token not in [p.token for p in ptz.GetPresets({"ProfileToken": "stream1"})]


def test_ptz_wiper_aux_command_drives_the_rotor(cam, daemon):
    ptz = cam.create_ptz_service()
    try:
        with StateWatcher(daemon) as watch:
            assert ptz.SendAuxiliaryCommand({"ProfileToken": "stream1",
                                             "AuxiliaryData": "tt:Wiper|On"}) == "tt:Wiper|On"
            assert settings(daemon, "rotor-enabled") == (True,)
            assert watch.wait("rotor-rpm", lambda rpm: rpm > 0, timeout=10) > 0
    finally:
        ptz.SendAuxiliaryCommand({"ProfileToken": "stream1", "AuxiliaryData": "tt:Wiper|Off"})
    assert settings(daemon, "rotor-enabled") == (False,)


# -- bad input on the wire -------------------------------------------------------------------

def _post(daemon, body, service="device_service"):
    r = requests.post(daemon.http + "/onvif/" + service, data=body, timeout=30,
                      headers={"content-type": "application/soap+xml; charset=utf-8"})
    assert r.content.startswith(b"<?xml") and b"<html" not in r.content.lower()
    return r.status_code, etree.fromstring(r.content)


def test_hostile_and_broken_requests_get_faults_and_the_server_keeps_working(daemon):
    from tests.onvif.test_soap_units import LAUGHS, XXE
    pw = daemon.admin_password
    info = "<tds:GetDeviceInformation/>"
    cases = [
        (XXE, 400, ("env:Sender", ["ter:WellFormed"])),
        (LAUGHS, 400, ("env:Sender", ["ter:WellFormed"])),
        (b"<env:Envelope xmlns:env='http://www.w3.org/2003/05/soap-envelope'><env:Body>",
         400, ("env:Sender", ["ter:WellFormed"])),
        (b'<Envelope xmlns="urn:not-soap"><Body><GetHostname/></Body></Envelope>',
         400, ("env:VersionMismatch", [])),
        (envelope("<tds:NoSuchThing/>", security("admin", pw)), 500,
         ("env:Receiver", ["ter:ActionNotSupported"])),
        (envelope(info, security("admin", pw, created=created_now(-3600))), 400,
         ("env:Sender", ["ter:NotAuthorized"])),
        (envelope(info, security("admin", "wrong-password")), 400,
         ("env:Sender", ["ter:NotAuthorized"])),
        (envelope(info), 401, ("env:Sender", ["ter:NotAuthorized"])),
    ]
    for body, status, codes in cases:
        got, doc = _post(daemon, body)
        assert (got, fault_codes(doc)) == (status, codes), body[:80]
    replay = envelope(info, security("admin", pw))
    assert _post(daemon, replay)[0] == 200
    got, doc = _post(daemon, replay)
    assert (got, fault_codes(doc)) == (400, ("env:Sender", ["ter:NotAuthorized"]))
    for method, path in (("GET", "device_service"), ("PUT", "media_service"),
                         ("POST", "nonexistent_service"), ("GET", "")):
        r = requests.request(method, daemon.http + "/onvif/" + path, data=b"x", timeout=30)
        assert r.status_code in (404, 405) and r.content.startswith(b"<?xml"), (method, path)
        assert etree.fromstring(r.content).find(".//env:Fault", namespaces=NS) is not None
    # Still serving.
    got, doc = _post(daemon, envelope(info, security("admin", pw)))
    assert got == 200 and doc.findtext(".//tds:Model", namespaces=NS)


# -- every read operation, raw, against the schemas ------------------------------------------

P = "<tds:ProfileToken>stream1</tds:ProfileToken>"
READS = {
    "device_service": [
        "<tds:GetSystemDateAndTime/>", "<tds:GetCapabilities/>",
        "<tds:GetCapabilities><tds:Category>Media</tds:Category>"
        "<tds:Category>Device</tds:Category></tds:GetCapabilities>",
        "<tds:GetCapabilities><tds:Category>Imaging</tds:Category></tds:GetCapabilities>",
        "<tds:GetServices><tds:IncludeCapability>true</tds:IncludeCapability></tds:GetServices>",
        "<tds:GetServiceCapabilities/>", "<tds:GetWsdlUrl/>", "<tds:GetHostname/>",
        "<tds:GetEndpointReference/>", "<tds:GetDeviceInformation/>",
        "<tds:GetNetworkInterfaces/>", "<tds:GetDNS/>", "<tds:GetNTP/>",
        "<tds:GetNetworkDefaultGateway/>", "<tds:GetNetworkProtocols/>", "<tds:GetScopes/>",
        "<tds:GetDiscoveryMode/>", "<tds:GetUsers/>"],
    "media_service": [
        "<trt:GetServiceCapabilities/>", "<trt:GetProfiles/>",
        "<trt:GetProfile><trt:ProfileToken>stream2</trt:ProfileToken></trt:GetProfile>",
        "<trt:GetVideoSources/>", "<trt:GetVideoSourceConfigurations/>",
        "<trt:GetVideoSourceConfiguration><trt:ConfigurationToken>video_source_config"
        "</trt:ConfigurationToken></trt:GetVideoSourceConfiguration>",
        "<trt:GetCompatibleVideoSourceConfigurations><trt:ProfileToken>stream1</trt:ProfileToken>"
        "</trt:GetCompatibleVideoSourceConfigurations>",
        "<trt:GetVideoSourceConfigurationOptions/>", "<trt:GetVideoEncoderConfigurations/>",
        "<trt:GetVideoEncoderConfiguration><trt:ConfigurationToken>encoder1"
        "</trt:ConfigurationToken></trt:GetVideoEncoderConfiguration>",
        "<trt:GetCompatibleVideoEncoderConfigurations><trt:ProfileToken>stream2"
        "</trt:ProfileToken></trt:GetCompatibleVideoEncoderConfigurations>",
        "<trt:GetVideoEncoderConfigurationOptions><trt:ConfigurationToken>encoder2"
        "</trt:ConfigurationToken></trt:GetVideoEncoderConfigurationOptions>",
        "<trt:GetGuaranteedNumberOfVideoEncoderInstances><trt:ConfigurationToken>"
        "video_source_config</trt:ConfigurationToken>"
        "</trt:GetGuaranteedNumberOfVideoEncoderInstances>",
        "<trt:GetStreamUri><trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream><tt:Transport>"
        "<tt:Protocol>HTTP</tt:Protocol></tt:Transport></trt:StreamSetup>"
        "<trt:ProfileToken>stream2</trt:ProfileToken></trt:GetStreamUri>",
        "<trt:GetSnapshotUri><trt:ProfileToken>stream1</trt:ProfileToken></trt:GetSnapshotUri>",
        "<trt:GetAudioSources/>", "<trt:GetAudioEncoderConfigurations/>",
        "<trt:GetMetadataConfigurations/>"],
    "ptz_service": [
        "<tptz:GetServiceCapabilities/>", "<tptz:GetNodes/>",
        "<tptz:GetNode><tptz:NodeToken>ptz_node</tptz:NodeToken></tptz:GetNode>",
        "<tptz:GetConfigurations/>",
        "<tptz:GetConfiguration><tptz:PTZConfigurationToken>ptz_config"
        "</tptz:PTZConfigurationToken></tptz:GetConfiguration>",
        "<tptz:GetCompatibleConfigurations><tptz:ProfileToken>stream1</tptz:ProfileToken>"
        "</tptz:GetCompatibleConfigurations>",
        "<tptz:GetConfigurationOptions><tptz:ConfigurationToken>ptz_config"
        "</tptz:ConfigurationToken></tptz:GetConfigurationOptions>",
        "<tptz:GetStatus><tptz:ProfileToken>stream1</tptz:ProfileToken></tptz:GetStatus>",
        "<tptz:GetPresets><tptz:ProfileToken>stream1</tptz:ProfileToken></tptz:GetPresets>"],
    "imaging_service": [
        "<timg:GetServiceCapabilities/>"] + [
        "<timg:%s><timg:VideoSourceToken>video_source</timg:VideoSourceToken></timg:%s>"
        % (op, op) for op in ("GetImagingSettings", "GetOptions", "GetMoveOptions", "GetStatus")],
    "deviceio_service": [
        '<tmd:GetServiceCapabilities xmlns:tmd="http://www.onvif.org/ver10/deviceIO/wsdl"/>',
        "<trt:GetVideoSources/>",
        '<tmd:GetDigitalInputs xmlns:tmd="http://www.onvif.org/ver10/deviceIO/wsdl"/>'],
}


@pytest.mark.parametrize("service", sorted(READS))
def test_every_read_operation_is_schema_valid(daemon, schema, service):
    for body in READS[service]:
        r = requests.post(daemon.http + "/onvif/" + service, timeout=30,
                          data=envelope(body, security("admin", daemon.admin_password)),
                          headers={"content-type": "application/soap+xml; charset=utf-8"})
        assert r.status_code == 200, (body, r.text[:500])
        assert validate(schema, r.content) != "fault"


def test_system_reboot_restarts_the_daemon(fresh_daemon, schema):
    d = fresh_daemon(settings={"resolution": "640x360", "fps": 10})
    pid = d.proc.pid
    r = requests.post(d.http + "/onvif/device_service", timeout=30,
                      data=envelope("<tds:SystemReboot/>", security("admin", d.admin_password)),
                      headers={"content-type": "application/soap+xml"})
    assert r.status_code == 200
    validate(schema, r.content)
    assert d.wait_output(lambda out: sum("is running" in line for line in out) >= 2, 60)
    assert d.proc.poll() is None and d.proc.pid == pid  # re-executed in place
    r = requests.post(d.http + "/onvif/device_service", timeout=30,
                      data=envelope("<tds:GetDeviceInformation/>",
                                    security("admin", d.admin_password)),
                      headers={"content-type": "application/soap+xml"})
    assert r.status_code == 200


# -- Home Assistant's client, onvif-zeep-async, in a venv of its own --------------------------

ASYNC_VENV = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), ".venv", "onvif-async")


def _async_python():
    """Python of a venv with onvif-zeep-async (both packages install as `onvif`, so it
    cannot share the test venv); built under .venv/onvif-async on first use."""
    python = os.environ.get("ROTORDREAM_ONVIF_ASYNC_PYTHON") or \
        os.path.join(ASYNC_VENV, "bin", "python")
    ok = os.path.exists(python) and subprocess.run(
        [python, "-c", "import onvif, zeep, aiohttp; onvif.ONVIFCamera"],
        capture_output=True).returncode == 0
    if not ok and not os.environ.get("ROTORDREAM_ONVIF_ASYNC_PYTHON"):
        import sys
        subprocess.run([sys.executable, "-m", "venv", "--clear", ASYNC_VENV], check=True)
        built = subprocess.run([python, "-m", "pip", "install", "-q", "onvif-zeep-async"],
                               capture_output=True, text=True, timeout=600)
        ok = built.returncode == 0
    if not ok:
        from tests.conftest import REQUIRE_ALL
        message = "onvif-zeep-async venv unavailable at %s" % python
        if REQUIRE_ALL:
            pytest.fail(message)
        pytest.skip(message)
    return python


def test_home_assistant_setup_sequence(daemon):
    python = _async_python()
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "support", "ha_sequence.py")
    run = subprocess.run([python, script, "127.0.0.1", str(daemon.http_port), "admin",
                          daemon.admin_password], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    base = "http://127.0.0.1:%d/onvif/" % daemon.http_port
    assert out["xaddrs"][NS["trt"]] == base + "media_service"
    assert out["xaddrs"][NS["tptz"]] == base + "ptz_service"
    assert out["manufacturer"] == "RotorDream" and out["macs"]
    assert {"Device", "Media", "PTZ", "Imaging"} <= set(out["capability_keys"])
    assert out["snapshot_capable"] and out["snapshot_jpeg"]
    res1, res2 = settings(daemon, "resolution", "stream2-resolution")
    assert ["%dx%d" % (p["width"], p["height"]) for p in out["profiles"]] == [res1, res2]
    assert out["profiles"][0]["stream_uri"] == daemon.rtsp("stream1")
    assert all(p["continuous"] and p["ptz_spaces"] == 1 for p in out["profiles"])
