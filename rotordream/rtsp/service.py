"""build_rtsp_service: the RTSP server's service with its listeners (plain and TLS)."""

from twisted.application import service

from rotordream.listener import Listener
from rotordream.rtsp.connection import RTSPFactory


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


def build_rtsp_service(server, reactor, rtsp_endpoint, rtsps_endpoint="", tls=None):
    """The RTSP service: ``server`` behind a listener on ``rtsp_endpoint`` and, when given,
    an RTSPS one on ``rtsps_endpoint`` (sessions, limits and streams shared)."""
    top = RTSPService(server, reactor)
    plain = Listener(reactor, rtsp_endpoint, RTSPFactory(server), "rtsp")
    plain.setServiceParent(top)
    server.listener = plain
    if rtsps_endpoint:
        Listener(reactor, rtsps_endpoint, RTSPFactory(server), "rtsps",
                 tls=tls).setServiceParent(top)
    return top
