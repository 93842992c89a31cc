"""The ONVIF Replay Control service (ver10 replay): where to replay a recording over RTSP.

A recording replays at ``rtsp://<host>:<rtsp port>/recording/<token>``, the RTSP
server's recordings mount, as the ONVIF Streaming Specification defines replay
(``Require: onvif-replay``, ``Range: clock=...``, ``Rate-Control``, ``Immediate``,
the RTP header extension; see rotordream.rtsp.core). Reverse playback is not
offered. The session timeout is the RTSP server's (``[rtsp] session_timeout``).
"""

from rotordream.auth import roles
from rotordream.onvif import recording, soap
from rotordream.onvif.dispatch import PRE_AUTH, Table
from rotordream.onvif.soap import E
from rotordream.onvif.topics import parse_duration

OPS = Table("trp")

MOUNT = "recording"   # the RTSP server's recordings mount


def _timeout(call):
    return int(call.ctx.config.rtsp.session_timeout)


def service_capabilities(call):
    """trp:Capabilities."""
    t = _timeout(call)
    return E("trp:Capabilities", ReversePlayback=False, SessionTimeoutRange="%d %d" % (t, t),
             RTP_RTSP_TCP=True)


def replay_uri(call, token, over_http=False):
    """The RTSP URI replaying recording ``token`` on the host the client addressed us by
    (with ``over_http``, RTSP tunnelled in HTTP on this web port)."""
    if over_http:
        return "rtsp://%s/%s/%s" % (call.base_url().split("://", 1)[1], MOUNT, token)
    host = "[%s]" % call.host if ":" in call.host else call.host
    live = call.ctx.stream_urls(host)["stream1"]
    return "%s/%s/%s" % (live.rsplit("/", 1)[0], MOUNT, token)


@OPS.op("GetServiceCapabilities", PRE_AUTH)
def get_service_capabilities(call):
    """The replay service's capabilities."""
    return E("trp:GetServiceCapabilitiesResponse", service_capabilities(call))


@OPS.op("GetReplayUri", roles.RECORDINGS_READ)
def get_replay_uri(call):
    """The RTSP URI of one recording (RTP unicast over UDP, TCP, RTSP or HTTP)."""
    token = soap.value(call.request, "RecordingToken")
    recording.entry(call, token)
    stream = soap.value(call.request, "StreamSetup/Stream") or "RTP-Unicast"
    if stream != "RTP-Unicast":
        raise soap.invalid_arg("ter:InvalidStreamSetup", "only RTP-Unicast is offered")
    protocol = soap.value(call.request, "StreamSetup/Transport/Protocol") or "RTSP"
    if protocol not in ("UDP", "TCP", "RTSP", "HTTP"):
        raise soap.invalid_arg("ter:InvalidStreamSetup", "unknown transport %r" % protocol)
    return E("trp:GetReplayUriResponse",
             E("trp:Uri", replay_uri(call, token, over_http=protocol == "HTTP")))


@OPS.op("GetReplayConfiguration", roles.RECORDINGS_READ)
def get_replay_configuration(call):
    """The replay session timeout."""
    recording.recorder(call)
    return E("trp:GetReplayConfigurationResponse", E(
        "trp:Configuration", E("tt:SessionTimeout", "PT%dS" % _timeout(call))))


@OPS.op("SetReplayConfiguration", roles.CAMERA_CONTROL)
def set_replay_configuration(call):
    """The timeout is the RTSP server's configured one: only that value is accepted."""
    recording.recorder(call)
    raw = soap.value(call.request, "Configuration/SessionTimeout")
    try:
        wanted = parse_duration(raw)
    except ValueError:
        raise soap.invalid_arg("ter:InvalidArgVal", "SessionTimeout is not a duration") \
            from None
    if int(wanted) != _timeout(call):
        raise soap.invalid_arg("ter:ConfigModify", "the replay session timeout is the RTSP "
                                                   "server's, [rtsp] session_timeout = %d s"
                               % _timeout(call))
    return E("trp:SetReplayConfigurationResponse")
