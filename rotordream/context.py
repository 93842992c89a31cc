"""The shared parts every service is built from, assembled once by makeService."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Context:
    """What the web tree and ONVIF read: config, reactor, state and the parts.

    ``makeService`` builds every part from its collaborators first, then this
    bundle once; it never changes after (frozen). Tests build one with fakes.
    """

    config: object                 # rotordream.config.Config
    reactor: object                # the running reactor (IReactorTime, IReactorTCP, ...)
    state: object                  # rotordream.state.CameraState
    auth: object = None            # rotordream.auth.service.AuthService
    pipeline: object = None        # IVideoPipeline
    motor: object = None           # IMotorController (None when --motor none)
    recorder: object = None        # IRecorder
    rtsp: object = None            # IStreamServer (stream URLs, session counts)
    events: object = None          # rotordream.onvif.broker.Broker (ONVIF events)
    websocket: object = None       # the control WebSocket factory (client counts)
    webrtc: object = None          # IWebRTC (None when off)
    started: float = 0.0           # wall-clock start time, for uptime

    def stream_urls(self, host="localhost"):
        """RTSP URLs of the live streams for ``host`` (used by /api/info, ONVIF)."""
        port = self.rtsp_port()
        suffix = "" if port == 554 else ":%d" % port
        return {name: "rtsp://%s%s/%s" % (host, suffix, name) for name in ("stream1", "stream2")}

    def rtsp_port(self):
        """The RTSP port actually listened on (the configured one before start)."""
        if self.rtsp is not None and self.rtsp.port:
            return self.rtsp.port
        desc = self.config.server.rtsp
        try:
            return int(desc.split(":")[1])
        except (IndexError, ValueError):
            return 554
