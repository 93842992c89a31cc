"""The ONVIF Media service (ver10): two fixed H.264 profiles over the live streams.

Everything is read from and written to the camera state, so ONVIF, REST and
WebSocket always agree: stream1 is ``resolution``/``fps``/``stream1-*``,
stream2 is ``stream2-*``.

Multicast follows ``[rtsp] multicast_*``: each encoder configuration's
``Multicast`` shows its stream's group (0.0.0.0 when off), GetStreamUri
with ``RTP-Multicast`` gives the RTSP URL a client then SETUPs with
``RTP/AVP;multicast``, and Start/StopMulticastStreaming send to the group
without an RTSP session (not kept across a restart: AutoStart is false).
"""

from rotordream.auth import roles
from rotordream.onvif import ptz, soap
from rotordream.onvif.dispatch import PRE_AUTH, Table
from rotordream.onvif.soap import E

OPS = Table("trt")

SOURCE = "video_source"
SOURCE_CONFIG = "video_source_config"
PROFILES = ("stream1", "stream2")
ENCODERS = {"encoder1": "stream1", "encoder2": "stream2"}
PROFILE_ENCODER = {"stream1": "encoder1", "stream2": "encoder2"}
ONVIF_HOLDER = "onvif"   # who holds a group started by StartMulticastStreaming


def stream_keys(stream):
    """State keys of one stream: resolution, fps, bitrate, gop."""
    if stream == "stream1":
        return {"resolution": "resolution", "fps": "fps", "bitrate": "stream1-bitrate",
                "gop": "stream1-gop"}
    return {"resolution": "stream2-resolution", "fps": "stream2-fps",
            "bitrate": "stream2-bitrate", "gop": "stream2-gop"}


def parse_size(text):
    """``"1280x720"`` -> (1280, 720)."""
    w, _, h = text.partition("x")
    return int(w), int(h)


def stream_settings(state, stream):
    """Dict width, height, fps, bitrate (kbit/s), gop of a stream, from the state."""
    k = stream_keys(stream)
    w, h = parse_size(state.get(k["resolution"]))
    return {"width": w, "height": h, "fps": state.get(k["fps"]),
            "bitrate": state.get(k["bitrate"]), "gop": state.get(k["gop"])}


def service_capabilities(call):
    """trt:Capabilities."""
    return E("trt:Capabilities",
             E("trt:ProfileCapabilities", MaximumNumberOfProfiles=len(PROFILES)),
             E("trt:StreamingCapabilities", RTPMulticast=multicast_on(call), RTP_TCP=True,
               RTP_RTSP_TCP=True, NonAggregateControl=False, NoRTSPStreaming=False),
             SnapshotUri=True, Rotation=False, VideoSourceMode=False, OSD=False)


# -- multicast ------------------------------------------------------------------

def multicast_on(call):
    """Is multicast configured (and its socket bound, when the RTSP server is there)?"""
    groups = _groups(call)
    return groups is not None and bool(groups.groups)


def _groups(call):
    """The RTSP server's MulticastGroups, or None (no RTSP server, or multicast off)."""
    rtsp = call.ctx.rtsp
    return rtsp.multicast if rtsp is not None else None


def multicast_group(call, stream):
    """(address, port, ttl) of ``stream``'s group, or None when multicast is off."""
    groups = _groups(call)
    group = groups.groups.get(stream) if groups is not None else None
    return (group.address, group.port, group.ttl) if group is not None else None


def multicast_configuration(call, stream):
    """tt:Multicast of ``stream``'s encoder: its group, or 0.0.0.0 port 0 when off."""
    address, port, ttl = multicast_group(call, stream) or ("0.0.0.0", 0, 0)
    return E("tt:Multicast", E("tt:Address", E("tt:Type", "IPv4"),
                               E("tt:IPv4Address", address)),
             E("tt:Port", port), E("tt:TTL", ttl), E("tt:AutoStart", False))


def _multicast_profile(call):
    """The profile token of a Start/StopMulticastStreaming; a fault when multicast is off."""
    token = _profile_token(call)
    if multicast_group(call, token) is None:
        raise soap.receiver(("ter:Action", "ter:IncompleteConfiguration"),
                            "multicast is not configured ([rtsp] multicast_group)")
    return token


# -- building blocks ------------------------------------------------------------

def video_source_configuration(call, tag="trt:Configurations"):
    """The one video source configuration (the full sensor frame of stream1)."""
    s = stream_settings(call.ctx.state, "stream1")
    return E(tag, E("tt:Name", "Video source"), E("tt:UseCount", len(PROFILES)),
             E("tt:SourceToken", SOURCE),
             E("tt:Bounds", x=0, y=0, width=s["width"], height=s["height"]),
             token=SOURCE_CONFIG)


def video_encoder_configuration(call, token, tag="trt:Configurations"):
    """The H.264 encoder configuration ``token`` with the stream's true settings."""
    s = stream_settings(call.ctx.state, ENCODERS[token])
    return E(tag, E("tt:Name", "H.264 " + ENCODERS[token]), E("tt:UseCount", 1),
             E("tt:Encoding", "H264"),
             E("tt:Resolution", E("tt:Width", s["width"]), E("tt:Height", s["height"])),
             E("tt:Quality", 5.0),
             E("tt:RateControl", E("tt:FrameRateLimit", s["fps"]), E("tt:EncodingInterval", 1),
               E("tt:BitrateLimit", s["bitrate"])),
             E("tt:H264", E("tt:GovLength", s["gop"]), E("tt:H264Profile", h264_profile(call))),
             multicast_configuration(call, ENCODERS[token]),
             E("tt:SessionTimeout", "PT%dS" % call.ctx.config.rtsp.session_timeout),
             token=token)


def h264_profile(call):
    """The configured H.264 profile as ONVIF names it."""
    profile = call.ctx.config.video.profile
    return {"baseline": "Baseline", "main": "Main", "high": "High"}.get(profile, "Baseline")


def profile(call, token, tag="trt:Profiles"):
    """One fixed media profile."""
    return E(tag, E("tt:Name", token),
             video_source_configuration(call, "tt:VideoSourceConfiguration"),
             video_encoder_configuration(call, PROFILE_ENCODER[token],
                                         "tt:VideoEncoderConfiguration"),
             ptz.configuration(call, "tt:PTZConfiguration") if ptz.available(call) else None,
             token=token, fixed=True)


def _token(call, name, allowed, subcode):
    token = soap.value(call.request, name)
    if token not in allowed:
        raise soap.invalid_arg(subcode, "no such token %r" % (token,))
    return token


def _profile_token(call):
    return _token(call, "ProfileToken", PROFILES, "ter:NoProfile")


# -- profiles ----------------------------------------------------------------------

@OPS.op("GetServiceCapabilities", PRE_AUTH)
def get_service_capabilities(call):
    """The media service's capabilities."""
    return E("trt:GetServiceCapabilitiesResponse", service_capabilities(call))


@OPS.op("GetProfiles", roles.STREAM_WATCH)
def get_profiles(call):
    """Both H.264 profiles."""
    return E("trt:GetProfilesResponse", [profile(call, t) for t in PROFILES])


@OPS.op("GetProfile", roles.STREAM_WATCH)
def get_profile(call):
    """One profile by token."""
    return E("trt:GetProfileResponse", profile(call, _profile_token(call), "trt:Profile"))


@OPS.op("CreateProfile", roles.CAMERA_CONTROL)
def create_profile(call):
    """The two stream profiles are all the encoder offers."""
    raise soap.receiver(("ter:Action", "ter:MaxNVTProfiles"),
                        "the maximum number of profiles (%d) is reached" % len(PROFILES))


@OPS.op("DeleteProfile", roles.CAMERA_CONTROL)
def delete_profile(call):
    """Fixed profiles cannot be deleted."""
    _profile_token(call)
    raise soap.receiver(("ter:Action", "ter:DeletionOfFixedProfile"),
                        "the stream profiles are fixed")


@OPS.op("GetGuaranteedNumberOfVideoEncoderInstances", roles.STREAM_WATCH)
def get_guaranteed_encoders(call):
    """Two H.264 encoders, always."""
    return E("trt:GetGuaranteedNumberOfVideoEncoderInstancesResponse",
             E("trt:TotalNumber", 2), E("trt:H264", 2))


# -- sources and encoders --------------------------------------------------------------

@OPS.op("GetVideoSources", roles.STREAM_WATCH)
def get_video_sources(call):
    """The one camera, at stream1's resolution and frame rate."""
    s = stream_settings(call.ctx.state, "stream1")
    return E("trt:GetVideoSourcesResponse", E(
        "trt:VideoSources", E("tt:Framerate", float(s["fps"])),
        E("tt:Resolution", E("tt:Width", s["width"]), E("tt:Height", s["height"])),
        token=SOURCE))


@OPS.op("GetVideoSourceConfigurations", roles.STREAM_WATCH)
def get_video_source_configurations(call):
    """The one video source configuration."""
    return E("trt:GetVideoSourceConfigurationsResponse", video_source_configuration(call))


@OPS.op("GetVideoSourceConfiguration", roles.STREAM_WATCH)
def get_video_source_configuration(call):
    """The video source configuration by token."""
    _token(call, "ConfigurationToken", (SOURCE_CONFIG,), "ter:NoConfig")
    return E("trt:GetVideoSourceConfigurationResponse",
             video_source_configuration(call, "trt:Configuration"))


@OPS.op("GetCompatibleVideoSourceConfigurations", roles.STREAM_WATCH)
def get_compatible_video_source_configurations(call):
    """The one video source configuration fits both profiles."""
    _profile_token(call)
    return E("trt:GetCompatibleVideoSourceConfigurationsResponse",
             video_source_configuration(call))


@OPS.op("GetVideoSourceConfigurationOptions", roles.STREAM_WATCH)
def get_video_source_configuration_options(call):
    """The source bounds are the whole frame."""
    s = stream_settings(call.ctx.state, "stream1")
    rng = lambda tag, v: E(tag, E("tt:Min", v), E("tt:Max", v))  # noqa: E731
    return E("trt:GetVideoSourceConfigurationOptionsResponse", E(
        "trt:Options", E("tt:BoundsRange", rng("tt:XRange", 0), rng("tt:YRange", 0),
                         rng("tt:WidthRange", s["width"]), rng("tt:HeightRange", s["height"])),
        E("tt:VideoSourceTokensAvailable", SOURCE)))


@OPS.op("GetVideoEncoderConfigurations", roles.STREAM_WATCH)
def get_video_encoder_configurations(call):
    """Both encoder configurations."""
    return E("trt:GetVideoEncoderConfigurationsResponse",
             [video_encoder_configuration(call, t) for t in ENCODERS])


@OPS.op("GetVideoEncoderConfiguration", roles.STREAM_WATCH)
def get_video_encoder_configuration(call):
    """One encoder configuration by token."""
    token = _token(call, "ConfigurationToken", ENCODERS, "ter:NoConfig")
    return E("trt:GetVideoEncoderConfigurationResponse",
             video_encoder_configuration(call, token, "trt:Configuration"))


@OPS.op("GetCompatibleVideoEncoderConfigurations", roles.STREAM_WATCH)
def get_compatible_video_encoder_configurations(call):
    """Each profile has its own encoder."""
    token = _profile_token(call)
    return E("trt:GetCompatibleVideoEncoderConfigurationsResponse",
             video_encoder_configuration(call, PROFILE_ENCODER[token]))


def _range(tag, lo, hi):
    return E(tag, E("tt:Min", lo), E("tt:Max", hi))


@OPS.op("GetVideoEncoderConfigurationOptions", roles.STREAM_WATCH)
def get_video_encoder_configuration_options(call):
    """Resolutions, frame rates, GOP and bitrate ranges the state accepts for that stream."""
    token = soap.value(call.request, "ConfigurationToken")
    if not token:
        ptoken = soap.value(call.request, "ProfileToken")
        token = PROFILE_ENCODER.get(ptoken, "encoder1") if ptoken else "encoder1"
    if token not in ENCODERS:
        raise soap.invalid_arg("ter:NoConfig", "no such configuration %r" % token)
    state = call.ctx.state
    keys = stream_keys(ENCODERS[token])
    resolutions = [parse_size(r) for r in state.choices(keys["resolution"])]
    fps, gop, bitrate = (state.spec(keys[k]) for k in ("fps", "gop", "bitrate"))

    def h264(tag, with_bitrate):
        return E(tag, [E("tt:ResolutionsAvailable", E("tt:Width", w), E("tt:Height", h))
                       for w, h in resolutions],
                 _range("tt:GovLengthRange", int(gop.minimum), int(gop.maximum)),
                 _range("tt:FrameRateRange", int(fps.minimum), int(fps.maximum)),
                 _range("tt:EncodingIntervalRange", 1, 1),
                 E("tt:H264ProfilesSupported", h264_profile(call)),
                 _range("tt:BitrateRange", int(bitrate.minimum), int(bitrate.maximum))
                 if with_bitrate else None)
    return E("trt:GetVideoEncoderConfigurationOptionsResponse", E(
        "trt:Options", _range("tt:QualityRange", 0, 10), h264("tt:H264", False),
        E("tt:Extension", h264("tt:H264", True))))


@OPS.op("SetVideoEncoderConfiguration", roles.CAMERA_CONTROL)
def set_video_encoder_configuration(call):
    """Change a stream's resolution, frame rate, bitrate and GOP through the state."""
    conf = soap.child(call.request, "Configuration")
    token = conf.get("token") if conf is not None else None
    if token not in ENCODERS:
        raise soap.invalid_arg("ter:NoConfig", "no such configuration %r" % (token,))
    encoding = soap.value(conf, "Encoding")
    if encoding and encoding != "H264":
        raise soap.invalid_arg("ter:ConfigModify", "only H264 is supported")
    keys = stream_keys(ENCODERS[token])
    changes = {}
    width = soap.number(conf, "Resolution/Width", kind=int)
    height = soap.number(conf, "Resolution/Height", kind=int)
    if width is not None and height is not None:
        changes[keys["resolution"]] = "%dx%d" % (width, height)
    fps = soap.number(conf, "RateControl/FrameRateLimit", kind=int)
    if fps is not None:
        changes[keys["fps"]] = fps
    bitrate = soap.number(conf, "RateControl/BitrateLimit", kind=int)
    if bitrate is not None:
        changes[keys["bitrate"]] = bitrate
    gop = soap.number(conf, "H264/GovLength", kind=int)
    if gop is not None:
        changes[keys["gop"]] = gop
    state = call.ctx.state
    changes = {k: v for k, v in changes.items() if state.get(k) != v}
    if changes:
        state.set(changes, call.principal, origin="onvif")
    return E("trt:SetVideoEncoderConfigurationResponse")


# -- URIs ---------------------------------------------------------------------------------

@OPS.op("GetStreamUri", roles.STREAM_WATCH)
def get_stream_uri(call):
    """The RTSP URI of the profile's stream, on the host the client addressed us by."""
    token = _profile_token(call)
    stream = soap.value(call.request, "StreamSetup/Stream") or "RTP-Unicast"
    if stream not in ("RTP-Unicast", "RTP-Multicast"):
        raise soap.invalid_arg("ter:InvalidStreamSetup", "unknown stream type %r" % stream)
    protocol = soap.value(call.request, "StreamSetup/Transport/Protocol") or "RTSP"
    if protocol not in ("UDP", "TCP", "RTSP", "HTTP"):
        raise soap.invalid_arg("ter:InvalidStreamSetup", "unknown transport %r" % protocol)
    if stream == "RTP-Multicast":
        if multicast_group(call, token) is None:
            raise soap.invalid_arg("ter:InvalidStreamSetup", "multicast is not configured")
        if protocol in ("TCP", "HTTP"):
            raise soap.invalid_arg("ter:InvalidStreamSetup",
                                   "multicast is RTP over UDP (Protocol UDP or RTSP)")
    return E("trt:GetStreamUriResponse", E(
        "trt:MediaUri", E("tt:Uri", stream_uri(call, token, over_http=protocol == "HTTP")),
        E("tt:InvalidAfterConnect", False),
        E("tt:InvalidAfterReboot", False), E("tt:Timeout", "PT0S")))


def stream_uri(call, token, over_http=False):
    """The RTSP URI of ``token``'s stream on the host the client addressed us by; with
    ``over_http``, RTSP tunnelled in HTTP on the web port this request came in on."""
    if over_http:
        return "rtsp://%s/%s" % (call.base_url().split("://", 1)[1], token)
    return call.ctx.stream_urls(_uri_host(call))[token]


def _uri_host(call):
    return "[%s]" % call.host if ":" in call.host else call.host


@OPS.op("StartMulticastStreaming", roles.CAMERA_CONTROL)
def start_multicast_streaming(call):
    """Send the profile's stream to its group until StopMulticastStreaming."""
    token = _multicast_profile(call)
    _groups(call).hold(token, ONVIF_HOLDER)
    return E("trt:StartMulticastStreamingResponse")


@OPS.op("StopMulticastStreaming", roles.CAMERA_CONTROL)
def stop_multicast_streaming(call):
    """Stop what StartMulticastStreaming started (RTSP multicast sessions go on)."""
    token = _multicast_profile(call)
    _groups(call).release(token, ONVIF_HOLDER)
    return E("trt:StopMulticastStreamingResponse")


@OPS.op("GetSnapshotUri", roles.SNAPSHOT_READ)
def get_snapshot_uri(call):
    """The REST snapshot URL (a JPEG of the latest full-resolution frame)."""
    _profile_token(call)
    return E("trt:GetSnapshotUriResponse", E(
        "trt:MediaUri", E("tt:Uri", call.base_url() + "/api/snapshot"),
        E("tt:InvalidAfterConnect", False), E("tt:InvalidAfterReboot", False),
        E("tt:Timeout", "PT0S")))


# -- what this camera has none of (answered empty, as clients probe for them) -------------

for _name, _perm in (("GetAudioSources", roles.STREAM_WATCH),
                     ("GetAudioSourceConfigurations", roles.STREAM_WATCH),
                     ("GetAudioEncoderConfigurations", roles.STREAM_WATCH),
                     ("GetAudioOutputs", roles.STREAM_WATCH),
                     ("GetMetadataConfigurations", roles.STREAM_WATCH),
                     ("GetVideoAnalyticsConfigurations", roles.STREAM_WATCH)):
    OPS.op(_name, _perm)(lambda call, _n=_name: E("trt:%sResponse" % _n))
