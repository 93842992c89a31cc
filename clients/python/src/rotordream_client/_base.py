"""What the sync and async clients share: requests as data, answers read the same way.

Every one-request method builds a :class:`Call` and hands it to ``self._call``; the
sync client returns its result, the async one a coroutine of it. Methods of several
requests (paging, downloads, watching) are written once per flavour.
"""

from __future__ import annotations

import datetime
import json
import ssl
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from .errors import ApiError, error_from

_NOBODY = object()
VerifyType = Union[bool, str, ssl.SSLContext]



class Call:
    """One HTTP request and how to read its answer."""

    def __init__(self, method: str, path: str, params: Optional[Mapping[str, Any]] = None,
                 json: Any = _NOBODY, content: Optional[bytes] = None,
                 headers: Optional[Dict[str, str]] = None, raw: bool = False,
                 parse: Optional[Callable[[Any], Any]] = None) -> None:
        self.method = method
        self.path = path
        self.params = {k: v for k, v in (params or {}).items() if v is not None}
        self.json = json
        self.content = content
        self.headers = headers or {}
        self.raw = raw
        self.parse = parse or (lambda data: data)

    def kwargs(self) -> Dict[str, Any]:
        """Keyword arguments for ``httpx.Client.request``."""
        kw: Dict[str, Any] = {"params": self.params or None, "headers": self.headers}
        if self.json is not _NOBODY:
            kw["json"] = self.json
        elif self.content is not None:
            kw["content"] = self.content
        return kw


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer <token>`` on every request."""

    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request):  # type: ignore[override]
        request.headers["Authorization"] = "Bearer " + self.token
        yield request


def ssl_context(verify: VerifyType) -> Union[bool, ssl.SSLContext]:
    """What httpx and websockets take for ``verify``: a CA/certificate file becomes a context
    that trusts exactly that certificate (a pinned self-signed one)."""
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return verify


def read_answer(response: httpx.Response, call: Call) -> Any:
    """The result of ``call`` from its response; ApiError for an error answer."""
    ctype = response.headers.get("content-type", "")
    if response.status_code >= 400:
        if "json" in ctype:
            try:
                body = response.json()
            except ValueError:
                body = None
            if isinstance(body, dict):
                raise error_from(body, response.status_code, response.headers.get("retry-after"))
        raise ApiError("HTTP %d" % response.status_code, _status_code(response.status_code),
                       status=response.status_code)
    if call.raw:
        return call.parse(response.content)
    try:
        body = response.json()
    except ValueError:
        raise ApiError("the answer is not JSON", "INTERNAL", status=response.status_code) from None
    if isinstance(body, dict) and body.get("status") == "success":
        return call.parse(body.get("data"))
    return call.parse(body)


def _status_code(status: int) -> str:
    return {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
            405: "METHOD_NOT_ALLOWED", 409: "CONFLICT", 413: "PAYLOAD_TOO_LARGE",
            429: "RATE_LIMITED", 503: "CAMERA_NOT_CONNECTED"}.get(status, "INTERNAL")


# -- small helpers both flavours use ------------------------------------------------------

def key_name(name: str) -> str:
    """A Python keyword to a state key: ``cam1_light`` -> ``cam1-light``."""
    return name.replace("_", "-")


def merge_values(args: Tuple[Mapping[str, Any], ...], kwargs: Mapping[str, Any]) -> Dict[str, Any]:
    """``set({"cam1-light": True}, brightness=75)`` -> one dict of state keys."""
    values: Dict[str, Any] = {}
    for mapping in args:
        values.update(mapping)
    values.update({key_name(k): v for k, v in kwargs.items()})
    if not values:
        raise ValueError("set() needs at least one key")
    return values


def pick(data: Mapping[str, Any], keys: Iterable[str]) -> Dict[str, Any]:
    """The requested keys of a settings read; ApiError naming a key the caller may not read."""
    out = {}
    for key in keys:
        if key not in data:
            raise ApiError("unknown key or not readable: %s" % key, "BAD_REQUEST", key=key,
                           status=None, body={"error": "unknown key", "key": key})
        out[key] = data[key]
    return out


def epoch(value: Union[None, float, int, str, datetime.datetime]) -> Optional[Union[float, str]]:
    """A time filter for /api/recordings: seconds since the epoch, an ISO string, a datetime."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.timestamp()
    return value


def ws_url(base_url: str, token: Optional[str]) -> str:
    """The control WebSocket URL of the daemon at ``base_url``."""
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    path = parts.path.rstrip("/") + "/api/v1"
    query = "token=" + quote(token, safe="") if token else ""
    return urlunsplit((scheme, parts.netloc, path, query, ""))


def with_query(url: str, *items: str) -> str:
    """``url`` with query items appended (``tcp``, ``token=...``)."""
    items = tuple(i for i in items if i)
    if not items:
        return url
    return url + ("&" if "?" in url else "?") + "&".join(items)


def dumps(value: Any) -> str:
    """Compact JSON for WebSocket messages."""
    return json.dumps(value, separators=(",", ":"))


class Diff:
    """What a watcher last reported, to report only changes (also after a reconnect)."""

    def __init__(self, keys: Optional[List[str]]) -> None:
        self.keys = keys
        self.seen: Dict[str, Any] = {}

    def changes(self, message: Mapping[str, Any]) -> Dict[str, Any]:
        """The watched keys of ``message`` whose values differ from what was last seen."""
        out = {}
        for key, value in message.items():
            if key == "info" or (self.keys is not None and key not in self.keys):
                continue
            if key not in self.seen or self.seen[key] != value:
                out[key] = value
                self.seen[key] = value
        return out
