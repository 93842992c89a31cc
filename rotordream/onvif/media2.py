"""The ONVIF Media2 service (ver20 media): the same two H.264 profiles as Media (ver10).

Profiles, sources and encoders are the ones media.py describes, in the Media2
shapes (``tr2:MediaProfile`` with a ``ConfigurationSet``,
``tt:VideoEncoder2Configuration``); every value is read from and written to the
camera state through the same keys, so ONVIF, REST and WebSocket agree.

What the camera does not have is answered as such: no OSD, one video source
mode, and multicast (``RtspMulticast``, Start/StopMulticastStreaming) only when
``[rtsp] multicast_group`` is set (media.py has the rules).
"""

from rotordream.auth import roles
from rotordream.onvif import media, ptz, soap
from rotordream.onvif.dispatch import PRE_AUTH, Table
from rotordream.onvif.soap import E

OPS = Table("tr2")

MODE = "mode1"
CONFIG_TYPES = ("All", "VideoSource", "VideoEncoder", "AudioSource", "AudioEncoder",
                "AudioOutput", "AudioDecoder", "Metadata", "Analytics", "PTZ", "Receiver")
# GetStreamUri protocols we stream; the SRTP ones are refused, RtspMulticast when it is off.
PROTOCOLS = ("RtspUnicast", "RTSP", "RtspOverHttp")
MULTICAST = "RtspMulticast"


def service_capabilities(call):
    """tr2:Capabilities (also in GetServices)."""
    types = "VideoSource VideoEncoder" + (" PTZ" if ptz.available(call) else "")
    return E("tr2:Capabilities",
             E("tr2:ProfileCapabilities", MaximumNumberOfProfiles=len(media.PROFILES),
               ConfigurationsSupported=types),
             E("tr2:StreamingCapabilities", RTSPStreaming=True,
               RTPMulticast=media.multicast_on(call),
               RTP_RTSP_TCP=True, NonAggregateControl=False, AutoStartMulticast=False),
             SnapshotUri=True, Rotation=False, VideoSourceMode=True, OSD=False,
             TemporaryOSDText=False, Mask=False, SourceMask=False)


def _float(value):
    return float(value)


def video_encoder_configuration(call, token, tag="tr2:Configurations"):
    """The H.264 encoder ``token`` as a tt:VideoEncoder2Configuration."""
    s = media.stream_settings(call.ctx.state, media.ENCODERS[token])
    return E(tag, E("tt:Name", "H.264 " + media.ENCODERS[token]), E("tt:UseCount", 1),
             E("tt:Encoding", "H264"),
             E("tt:Resolution", E("tt:Width", s["width"]), E("tt:Height", s["height"])),
             E("tt:RateControl", E("tt:FrameRateLimit", _float(s["fps"])),
               E("tt:BitrateLimit", s["bitrate"]), ConstantBitRate=False),
             media.multicast_configuration(call, media.ENCODERS[token]),
             E("tt:Quality", 5.0),
             token=token, GovLength=s["gop"], Profile=media.h264_profile(call),
             GuaranteedFrameRate=False)


def _wanted(types):
    """The configuration types GetProfiles was asked for (None: names and tokens only)."""
    if not types:
        return set()
    unknown = [t for t in types if t not in CONFIG_TYPES]
    if unknown:
        raise soap.invalid_arg("ter:InvalidArgVal", "unknown configuration type %s"
                               % unknown[0])
    return set(CONFIG_TYPES) if "All" in types else set(types)


def profile(call, token, wanted):
    """One fixed profile with the configurations of the ``wanted`` types it has."""
    configs = None
    if wanted:
        configs = E("tr2:Configurations",
                    media.video_source_configuration(call, "tr2:VideoSource")
                    if "VideoSource" in wanted else None,
                    video_encoder_configuration(call, media.PROFILE_ENCODER[token],
                                                "tr2:VideoEncoder")
                    if "VideoEncoder" in wanted else None,
                    ptz.configuration(call, "tr2:PTZ")
                    if "PTZ" in wanted and ptz.available(call) else None)
    return E("tr2:Profiles", E("tr2:Name", token), configs, token=token, fixed=True)


def _profile_token(call):
    token = soap.value(call.request, "ProfileToken")
    if token not in media.PROFILES:
        raise soap.invalid_arg("ter:NoProfile", "no such profile %r" % (token,))
    return token


def _configuration_filter(call, tokens):
    """The configuration tokens a GetXxxConfigurations request selects (ConfigurationToken,
    ProfileToken or neither), in ``tokens`` order."""
    config = soap.value(call.request, "ConfigurationToken")
    prof = soap.value(call.request, "ProfileToken")
    chosen = list(tokens)
    if config is not None:
        if config not in tokens:
            raise soap.invalid_arg("ter:NoConfig", "no such configuration %r" % config)
        chosen = [config]
    if prof is not None:
        if prof not in media.PROFILES:
            raise soap.invalid_arg("ter:NoProfile", "no such profile %r" % prof)
        in_profile = {media.SOURCE_CONFIG, media.PROFILE_ENCODER[prof]}
        chosen = [t for t in chosen if t in in_profile]
    return chosen


# -- capabilities and profiles ------------------------------------------------------

@OPS.op("GetServiceCapabilities", PRE_AUTH)
def get_service_capabilities(call):
    """The Media2 service's capabilities."""
    return E("tr2:GetServiceCapabilitiesResponse", service_capabilities(call))


@OPS.op("GetProfiles", roles.STREAM_WATCH)
def get_profiles(call):
    """Both profiles (or the one named), with the configuration types asked for."""
    token = soap.value(call.request, "Token")
    if token is not None and token not in media.PROFILES:
        raise soap.invalid_arg("ter:NoProfile", "no such profile %r" % token)
    wanted = _wanted([t.text.strip() for t in soap.children(call.request, "Type") if t.text])
    tokens = [token] if token else media.PROFILES
    return E("tr2:GetProfilesResponse", [profile(call, t, wanted) for t in tokens])


@OPS.op("CreateProfile", roles.CAMERA_CONTROL)
def create_profile(call):
    """The two stream profiles are all the encoder offers."""
    raise soap.receiver(("ter:Action", "ter:MaxNVTProfiles"),
                        "the maximum number of profiles (%d) is reached" % len(media.PROFILES))


@OPS.op("DeleteProfile", roles.CAMERA_CONTROL)
def delete_profile(call):
    """Fixed profiles cannot be deleted."""
    token = soap.value(call.request, "Token")
    if token not in media.PROFILES:
        raise soap.invalid_arg("ter:NoProfile", "no such profile %r" % (token,))
    raise soap.receiver(("ter:Action", "ter:DeletionOfFixedProfile"),
                        "the stream profiles are fixed")


# -- sources and encoders --------------------------------------------------------------

@OPS.op("GetVideoSourceConfigurations", roles.STREAM_WATCH)
def get_video_source_configurations(call):
    """The one video source configuration (in both profiles)."""
    chosen = _configuration_filter(call, (media.SOURCE_CONFIG,))
    return E("tr2:GetVideoSourceConfigurationsResponse",
             [media.video_source_configuration(call, "tr2:Configurations") for _ in chosen])


@OPS.op("GetVideoEncoderConfigurations", roles.STREAM_WATCH)
def get_video_encoder_configurations(call):
    """The encoder configurations (all, one by token, or the profile's)."""
    chosen = _configuration_filter(call, tuple(media.ENCODERS))
    return E("tr2:GetVideoEncoderConfigurationsResponse",
             [video_encoder_configuration(call, t) for t in chosen])


def _range(tag, lo, hi):
    return E(tag, E("tt:Min", lo), E("tt:Max", hi))


def encoder_options(call, token):
    """tt:VideoEncoder2ConfigurationOptions: what the state accepts for that stream."""
    state = call.ctx.state
    keys = media.stream_keys(media.ENCODERS[token])
    resolutions = [media.parse_size(r) for r in state.choices(keys["resolution"])]
    fps, gop, bitrate = (state.spec(keys[k]) for k in ("fps", "gop", "bitrate"))
    rates = range(int(fps.maximum), int(fps.minimum) - 1, -1)  # highest first
    return E("tr2:Options", E("tt:Encoding", "H264"), _range("tt:QualityRange", 0.0, 10.0),
             [E("tt:ResolutionsAvailable", E("tt:Width", w), E("tt:Height", h))
              for w, h in resolutions],
             _range("tt:BitrateRange", int(bitrate.minimum), int(bitrate.maximum)),
             GovLengthRange="%d %d" % (gop.minimum, gop.maximum),
             FrameRatesSupported=" ".join("%d" % r for r in rates),
             ProfilesSupported=media.h264_profile(call), ConstantBitRateSupported=False,
             GuaranteedFrameRateSupported=False)


@OPS.op("GetVideoEncoderConfigurationOptions", roles.STREAM_WATCH)
def get_video_encoder_configuration_options(call):
    """Options of one encoder (by configuration or profile), or of each."""
    chosen = _configuration_filter(call, tuple(media.ENCODERS))
    if not chosen:
        raise soap.invalid_arg("ter:NoConfig", "that configuration is not in that profile")
    return E("tr2:GetVideoEncoderConfigurationOptionsResponse",
             [encoder_options(call, t) for t in chosen])


@OPS.op("SetVideoEncoderConfiguration", roles.CAMERA_CONTROL)
def set_video_encoder_configuration(call):
    """Resolution, frame rate, bitrate and GOP of a stream, through the state (validated
    there, as every other writer's)."""
    conf = soap.child(call.request, "Configuration")
    token = conf.get("token") if conf is not None else None
    if token not in media.ENCODERS:
        raise soap.invalid_arg("ter:NoConfig", "no such configuration %r" % (token,))
    encoding = soap.value(conf, "Encoding")
    if encoding and encoding not in ("H264", "H.264"):
        raise soap.invalid_arg("ter:ConfigModify", "only H264 is supported")
    keys = media.stream_keys(media.ENCODERS[token])
    changes = {}
    width = soap.number(conf, "Resolution/Width", kind=int)
    height = soap.number(conf, "Resolution/Height", kind=int)
    if width is not None and height is not None:
        changes[keys["resolution"]] = "%dx%d" % (width, height)
    fps = soap.number(conf, "RateControl/FrameRateLimit")
    if fps is not None:
        if fps != int(fps):
            raise soap.invalid_arg("ter:ConfigModify", "frame rates are whole numbers")
        changes[keys["fps"]] = int(fps)
    bitrate = soap.number(conf, "RateControl/BitrateLimit", kind=int)
    if bitrate is not None:
        changes[keys["bitrate"]] = bitrate
    gov = conf.get("GovLength")
    if gov is not None:
        try:
            changes[keys["gop"]] = int(gov)
        except ValueError:
            raise soap.invalid_arg("ter:ConfigModify", "GovLength is not a number") from None
    state = call.ctx.state
    changes = {k: v for k, v in changes.items() if state.get(k) != v}
    if changes:
        state.set(changes, call.principal, origin="onvif")
    return E("tr2:SetVideoEncoderConfigurationResponse")


@OPS.op("GetVideoSourceModes", roles.STREAM_WATCH)
def get_video_source_modes(call):
    """The one mode the sensor runs in: its largest resolution and highest frame rate."""
    if soap.value(call.request, "VideoSourceToken") != media.SOURCE:
        raise soap.invalid_arg("ter:NoVideoSource", "no such video source")
    state = call.ctx.state
    keys = media.stream_keys("stream1")
    sizes = [media.parse_size(r) for r in state.choices(keys["resolution"])]
    w, h = max(sizes, key=lambda s: s[0] * s[1])
    return E("tr2:GetVideoSourceModesResponse", E(
        "tr2:VideoSourceModes", E("tr2:MaxFramerate", float(state.spec(keys["fps"]).maximum)),
        E("tr2:MaxResolution", E("tt:Width", w), E("tt:Height", h)),
        E("tr2:Encodings", "H264"), E("tr2:Reboot", False),
        E("tr2:Description", "Test pattern or camera sensor, H.264 encoded"),
        token=MODE, Enabled=True))


# -- URIs and streaming ------------------------------------------------------------------

@OPS.op("GetStreamUri", roles.STREAM_WATCH)
def get_stream_uri(call):
    """The RTSP URI of the profile's stream (unicast, multicast when configured; RTSP over
    HTTP on this web port)."""
    protocol = soap.value(call.request, "Protocol") or ""
    token = _profile_token(call)
    offered = PROTOCOLS + ((MULTICAST,) if media.multicast_group(call, token) else ())
    if protocol not in offered:
        raise soap.invalid_arg("ter:InvalidStreamSetup",
                               "protocol %r is not offered (%s)"
                               % (protocol, ", ".join(offered)))
    return E("tr2:GetStreamUriResponse", E("tr2:Uri", media.stream_uri(
        call, token, over_http=protocol == "RtspOverHttp")))


@OPS.op("StartMulticastStreaming", roles.CAMERA_CONTROL)
def start_multicast_streaming(call):
    """Send the profile's stream to its group until StopMulticastStreaming (Media's rule)."""
    media.start_multicast_streaming(call)
    return E("tr2:StartMulticastStreamingResponse")


@OPS.op("StopMulticastStreaming", roles.CAMERA_CONTROL)
def stop_multicast_streaming(call):
    """Stop what StartMulticastStreaming started."""
    media.stop_multicast_streaming(call)
    return E("tr2:StopMulticastStreamingResponse")


@OPS.op("GetSnapshotUri", roles.SNAPSHOT_READ)
def get_snapshot_uri(call):
    """The REST snapshot URL (a JPEG of the latest full-resolution frame)."""
    _profile_token(call)
    return E("tr2:GetSnapshotUriResponse", E("tr2:Uri", call.base_url() + "/api/snapshot"))


@OPS.op("SetSynchronizationPoint", roles.STREAM_WATCH)
def set_synchronization_point(call):
    """Accepted: the next viewer of the profile starts at a keyframe, because each stream
    hub keeps its current GOP from its keyframe and plays it first to a new viewer."""
    _profile_token(call)
    return E("tr2:SetSynchronizationPointResponse")


@OPS.op("GetOSDs", roles.STREAM_WATCH)
def get_osds(call):
    """None: the camera draws no on-screen display."""
    osd = soap.value(call.request, "OSDToken")
    if osd is not None:
        raise soap.invalid_arg("ter:NoConfig", "no OSD %r" % osd)
    config = soap.value(call.request, "ConfigurationToken")
    if config is not None and config != media.SOURCE_CONFIG:
        raise soap.invalid_arg("ter:NoConfig", "no such configuration %r" % config)
    return E("tr2:GetOSDsResponse")
