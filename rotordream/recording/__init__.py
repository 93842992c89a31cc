"""Recording: stream1 remuxed to crash-safe fragmented MP4, its index, REST and RTSP playback."""


from rotordream.errors import ServiceError


class RecorderError(ServiceError):
    """A recorder command that cannot be carried out (``code`` as in the error envelope)."""

    def __init__(self, code, message, status=409):
        super().__init__(status, message, code)
