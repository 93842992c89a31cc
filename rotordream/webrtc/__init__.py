"""WebRTC viewing for browsers: the already-encoded H.264 streams sent through aiortc.

``track`` turns a stream hub's access units into packets aiortc sends as they
are (no second encode); ``sessions`` owns the peer connections; ``resource``
is the REST side (/api/webrtc).
"""


from rotordream.errors import ServiceError


class WebRTCError(ServiceError):
    """A request the WebRTC service refuses: HTTP status, message, error code."""
