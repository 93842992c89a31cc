"""WebRTC viewing for browsers: the already-encoded H.264 streams sent through aiortc.

``track`` turns a stream hub's access units into packets aiortc sends as they
are (no second encode); ``sessions`` owns the peer connections; ``resource``
is the REST side (/api/webrtc).
"""


class WebRTCError(Exception):
    """A request the WebRTC service refuses: HTTP status, message, error code."""

    def __init__(self, status, message, code="BAD_REQUEST", **extra):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.extra = extra
