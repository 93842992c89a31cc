"""Exceptions: every refusal of the daemon carries its envelope's code, message, key, retry_after."""

from __future__ import annotations

from typing import Any, Dict, Optional


class RotorDreamError(Exception):
    """Base of every error this library raises."""


class ConnectionFailed(RotorDreamError):
    """The daemon could not be reached (refused, timed out, TLS failure)."""


class ApiError(RotorDreamError):
    """An error answer of the daemon.

    ``code`` is the machine code (``INVALID_VALUE``, ``UNAUTHORIZED``, ...), ``key`` the
    setting or field it concerns (or None), ``retry_after`` seconds to wait (429), ``status``
    the HTTP status (None over WebSocket) and ``body`` the whole error envelope.
    """

    def __init__(self, message: str, code: str = "BAD_REQUEST", key: Optional[str] = None,
                 retry_after: Optional[float] = None, status: Optional[int] = None,
                 body: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.key = key
        self.retry_after = retry_after
        self.status = status
        self.body = body or {}

    @property
    def allowed(self) -> Any:
        """The allowed values or range the daemon named for a bad setting, if any."""
        return self.body.get("allowed")

    def __str__(self) -> str:
        text = "%s: %s" % (self.code, self.message)
        if self.key:
            text += " (key %s)" % self.key
        return text


class Unauthorized(ApiError):
    """Missing or wrong credentials (UNAUTHORIZED)."""


class Forbidden(ApiError):
    """The user's role may not do this (FORBIDDEN)."""


class NotFound(ApiError):
    """No such recording, user, endpoint or preset (NOT_FOUND)."""


class InvalidValue(ApiError):
    """A value out of range or of the wrong type (INVALID_VALUE); ``key`` names it."""


class Conflict(ApiError):
    """The request conflicts with the current state (CONFLICT)."""


class RateLimited(ApiError):
    """Too many requests or failed logins (RATE_LIMITED); wait ``retry_after`` seconds."""


_BY_CODE = {"UNAUTHORIZED": Unauthorized, "FORBIDDEN": Forbidden, "NOT_FOUND": NotFound,
            "INVALID_VALUE": InvalidValue, "CONFLICT": Conflict, "RATE_LIMITED": RateLimited}


def error_from(body: Dict[str, Any], status: Optional[int] = None,
               retry_after_header: Optional[str] = None) -> ApiError:
    """The ApiError subclass for an error envelope (REST) or error message (WebSocket)."""
    code = str(body.get("code") or "BAD_REQUEST")
    retry = body.get("retry_after")
    if retry is None and retry_after_header:
        try:
            retry = float(retry_after_header)
        except ValueError:
            retry = None
    cls = _BY_CODE.get(code, ApiError)
    return cls(str(body.get("error") or body.get("message") or code), code, body.get("key"),
               retry, status, body)


class IncompleteDownload(RotorDreamError):
    """A download ended with another length than the server announced."""
