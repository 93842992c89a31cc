"""Python client for the RotorDream camera server.

:class:`Camera` (synchronous) and :class:`AsyncCamera` (asyncio) share one surface:
settings, watching changes, snapshots, recording, recordings, PTZ, rotor, users.
"""

from .aio import AsyncCamera
from .camera import Camera
from .errors import (ApiError, Conflict, ConnectionFailed, Forbidden, IncompleteDownload,
                     InvalidValue, NotFound, RateLimited, RotorDreamError, Unauthorized)

__version__ = "1.0.0"

__all__ = ["Camera", "AsyncCamera", "RotorDreamError", "ApiError", "ConnectionFailed",
           "Unauthorized", "Forbidden", "NotFound", "InvalidValue", "Conflict", "RateLimited",
           "IncompleteDownload", "__version__"]
