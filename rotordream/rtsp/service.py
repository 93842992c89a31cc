"""make_rtsp_service: the RTSP listener (plain or TLS) and the shared RTSP server."""

from twisted.application import service

from rotordream.listener import Listener
from rotordream.rtsp.server import RTSPFactory, RTSPServer


class RTSPService(service.MultiService):
    """Starts the shared server (RTP ports, reaper) and its listeners."""

    def __init__(self, server, reactor):
        super().__init__()
        self.server = server
        self.reactor = reactor

    def startService(self):
        self.server.start(self.reactor)
        super().startService()

    def stopService(self):
        d = super().stopService()
        self.server.stop()
        return d


def make_rtsp_service(ctx, endpoint_description, tls_context_factory=None):
    """The RTSP listener on ``endpoint_description``; the first call creates ``ctx.rtsp``.

    A second call (RTSPS) adds a listener to the same server, so sessions,
    limits and the packetized streams are shared.
    """
    option = "rtsps" if tls_context_factory is not None else "rtsp"
    listener = Listener(ctx.reactor, endpoint_description, None, option,
                        tls=tls_context_factory)
    if ctx.rtsp is None:
        ctx.rtsp = RTSPServer(ctx.config, ctx.pipeline.hubs, ctx.auth, ctx.reactor,
                              ctx.playback)
        top = RTSPService(ctx.rtsp, ctx.reactor)
    else:
        top = service.MultiService()
    listener.factory = RTSPFactory(ctx.rtsp)
    listener.setServiceParent(top)
    if option == "rtsp":
        ctx.rtsp.listener = listener
    return top
