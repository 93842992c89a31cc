"""Media2 (ver20 media) against a running daemon with zeep on the official WSDL; every
response is validated against the ver20 media schema and the current ONVIF schema."""

import json
import subprocess

import pytest
import requests

from tests.conftest import require_module, require_tool
from tests.onvif.schemas import MEDIA2_WSDL, wsdl_schema
from tests.support.soapkit import ResponseRecorder, validate

TR2 = "http://www.onvif.org/ver20/media/wsdl"


@pytest.fixture(scope="module")
def schema():
    """The ver20 media WSDL's types with the ONVIF schema they import."""
    return wsdl_schema(MEDIA2_WSDL)


@pytest.fixture(scope="module")
def recorder():
    return ResponseRecorder()


@pytest.fixture(scope="module")
def media2(daemon, recorder):
    """A zeep Media2 client logged in as admin (PasswordDigest), at the advertised XAddr."""
    zeep = require_module("zeep")
    onvif = require_module("onvif")
    from zeep.wsse.username import UsernameToken
    cam = onvif.ONVIFCamera("127.0.0.1", daemon.http_port, "admin", daemon.admin_password,
                            no_cache=True)
    services = {s.Namespace: s.XAddr
                for s in cam.devicemgmt.GetServices({"IncludeCapability": False})}
    client = zeep.Client(MEDIA2_WSDL, transport=recorder.transport(),
                         wsse=UsernameToken("admin", daemon.admin_password, use_digest=True))
    return client.create_service("{%s}Media2Binding" % TR2, services[TR2])


@pytest.fixture(autouse=True)
def validated(schema, recorder):
    """After each test, validate the responses it received."""
    start = len(recorder.responses)
    yield
    assert len(recorder.responses) > start
    for raw in recorder.responses[start:]:
        validate(schema, raw)


def settings(daemon, *keys):
    r = requests.get(daemon.http + "/api/settings", auth=("admin", daemon.admin_password))
    data = r.json()["data"]
    return tuple(data[k] for k in keys)


def test_capabilities_profiles_and_configurations(media2, daemon):
    caps = media2.GetServiceCapabilities()
    assert caps.SnapshotUri and caps.VideoSourceMode and not caps.OSD
    assert caps.ProfileCapabilities.MaximumNumberOfProfiles == 2
    assert caps.StreamingCapabilities.RTSPStreaming and not caps.StreamingCapabilities.RTPMulticast
    bare = media2.GetProfiles()
    assert [p.token for p in bare] == ["stream1", "stream2"]
    assert all(p.Configurations is None for p in bare)
    profiles = media2.GetProfiles(Type=["All"])
    res1, fps1, res2, gop2, kbps2 = settings(daemon, "resolution", "fps", "stream2-resolution",
                                             "stream2-gop", "stream2-bitrate")
    for p, res in zip(profiles, (res1, res2)):
        enc = p.Configurations.VideoEncoder
        assert enc.Encoding == "H264"
        assert "%dx%d" % (enc.Resolution.Width, enc.Resolution.Height) == res
        assert p.Configurations.VideoSource.SourceToken == "video_source"
        assert p.Configurations.PTZ.NodeToken == "ptz_node"
    assert profiles[0].Configurations.VideoEncoder.RateControl.FrameRateLimit == fps1
    enc2 = profiles[1].Configurations.VideoEncoder
    assert (enc2.GovLength, enc2.RateControl.BitrateLimit) == (gop2, kbps2)
    only = media2.GetProfiles(Token="stream2", Type=["VideoEncoder"])
    assert len(only) == 1 and only[0].Configurations.VideoSource is None
    assert only[0].Configurations.VideoEncoder.token == "encoder2"
    assert [c.token for c in media2.GetVideoSourceConfigurations()] == ["video_source_config"]
    assert [c.token for c in media2.GetVideoEncoderConfigurations()] == ["encoder1", "encoder2"]
    assert [c.token for c in media2.GetVideoEncoderConfigurations(
        ProfileToken="stream2")] == ["encoder2"]
    options = media2.GetVideoEncoderConfigurationOptions(ConfigurationToken="encoder1")
    assert len(options) == 1 and options[0].Encoding == "H264"
    sizes = {"%dx%d" % (r.Width, r.Height) for r in options[0].ResolutionsAvailable}
    assert res1 in sizes and fps1 in options[0].FrameRatesSupported
    assert len(media2.GetVideoEncoderConfigurationOptions()) == 2
    modes = media2.GetVideoSourceModes(VideoSourceToken="video_source")
    assert len(modes) == 1 and modes[0].Enabled and modes[0].Encodings == ["H264"]
    assert modes[0].MaxResolution.Width >= int(res1.split("x")[0])
    assert media2.GetOSDs() == []
    assert media2.GetSnapshotUri(ProfileToken="stream1") == daemon.http + "/api/snapshot"


def test_faults_for_what_does_not_exist(media2, daemon):
    from zeep.exceptions import Fault
    for call in (lambda: media2.GetStreamUri(Protocol="RtspUnicast",
                                              ProfileToken="stream3"),
                 lambda: media2.GetStreamUri(Protocol="RtspMulticast",
                                              ProfileToken="stream1"),
                 lambda: media2.GetVideoEncoderConfigurations(ConfigurationToken="x"),
                 lambda: media2.GetOSDs(OSDToken="osd1"),
                 lambda: media2.GetVideoSourceModes(VideoSourceToken="nope"),
                 lambda: media2.DeleteProfile(Token="stream1"),
                 lambda: media2.SetSynchronizationPoint(ProfileToken="stream9")):
        with pytest.raises(Fault):
            call()
    # The server keeps answering after the faults.
    assert media2.GetProfiles()[0].token == "stream1"


def test_set_video_encoder_configuration_writes_the_same_state_keys(media2, daemon):
    admin = ("admin", daemon.admin_password)
    old = settings(daemon, "stream2-resolution", "stream2-fps", "stream2-bitrate", "stream2-gop")
    conf = media2.GetVideoEncoderConfigurations(ConfigurationToken="encoder2")[0]
    try:
        conf.Resolution.Width, conf.Resolution.Height = 480, 270
        conf.RateControl.FrameRateLimit = 12.0
        conf.RateControl.BitrateLimit = 600
        conf.GovLength = 24
        media2.SetVideoEncoderConfiguration(Configuration=conf)
        assert settings(daemon, "stream2-resolution", "stream2-fps", "stream2-bitrate",
                        "stream2-gop") == ("480x270", 12, 600, 24)
        again = media2.GetVideoEncoderConfigurations(ConfigurationToken="encoder2")[0]
        assert (again.Resolution.Width, again.GovLength) == (480, 24)
        # Validated like every writer: a size stream2 does not offer, a bitrate out of range.
        from zeep.exceptions import Fault
        for field, value in (("Resolution", (1000, 1000)), ("BitrateLimit", 999999)):
            bad = media2.GetVideoEncoderConfigurations(ConfigurationToken="encoder2")[0]
            if field == "Resolution":
                bad.Resolution.Width, bad.Resolution.Height = value
            else:
                bad.RateControl.BitrateLimit = value
            with pytest.raises(Fault) as e:
                media2.SetVideoEncoderConfiguration(Configuration=bad)
            assert "stream2" in str(e.value.message)
        assert settings(daemon, "stream2-resolution", "stream2-bitrate") == ("480x270", 600)
    finally:
        r = requests.post(daemon.http + "/api/settings", auth=admin, json=dict(zip(
            ("stream2-resolution", "stream2-fps", "stream2-bitrate", "stream2-gop"), old)))
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("protocol,transport", [("RtspUnicast", "udp"), ("RTSP", "tcp"),
                                                ("RtspOverHttp", "http")])
def test_stream_uri_plays_in_ffprobe(media2, daemon, protocol, transport):
    ffprobe = require_tool("ffprobe", "apt-get install ffmpeg")
    uri = media2.GetStreamUri(Protocol=protocol, ProfileToken="stream2")
    port = daemon.http_port if protocol == "RtspOverHttp" else daemon.rtsp_port
    assert uri == "rtsp://127.0.0.1:%d/stream2" % port
    out = subprocess.run([ffprobe, "-v", "error", "-rtsp_transport", transport,
                          "-show_streams", "-of", "json", uri], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    stream = json.loads(out.stdout)["streams"][0]
    assert stream["codec_name"] == "h264"
    assert "%dx%d" % (stream["width"], stream["height"]) == settings(
        daemon, "stream2-resolution")[0]


def test_after_a_synchronization_point_a_new_viewer_starts_at_a_keyframe(media2, daemon):
    av = require_module("av")
    media2.SetSynchronizationPoint(ProfileToken="stream1")
    uri = media2.GetStreamUri(Protocol="RTSP", ProfileToken="stream1")
    with av.open(uri, options={"rtsp_transport": "tcp"}, timeout=15) as c:
        first = next(p for p in c.demux(video=0) if p.size)
        assert first.is_keyframe
