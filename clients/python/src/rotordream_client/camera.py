"""The synchronous client: :class:`Camera`."""

from __future__ import annotations

import json
import os
import re
import ssl
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional
from urllib.parse import quote

import httpx
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect as ws_connect

from ._base import Call, Diff, dumps, read_answer, ssl_context, ws_url
from ._surface import Ptz, RecordingControl, RecordingsBase, Rotor, Surface, Users
from .errors import ApiError, ConnectionFailed, IncompleteDownload, RateLimited, Unauthorized, \
    error_from

Progress = Callable[[int, Optional[int]], Any]
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
# Errors that end a watch: retrying cannot fix them.
FATAL = ("UNAUTHORIZED", "FORBIDDEN", "BAD_REQUEST", "INVALID_VALUE")


def ws_ssl(url: str, verify: Any) -> Optional[ssl.SSLContext]:
    """The SSL context for a wss:// URL (None for ws://)."""
    if not url.startswith("wss:"):
        return None
    ctx = ssl_context(verify)
    if ctx is True:
        return ssl.create_default_context()
    if ctx is False:
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        return insecure
    return ctx  # type: ignore[return-value]


def backoff(delay: float, cap: float) -> float:
    """The next wait of a capped exponential backoff."""
    return min(cap, max(0.25, delay * 2))


class Camera(Surface):
    """A RotorDream camera, synchronously.

    ``Camera(url, username=None, password=None, token=None, *, auth="digest", verify=True,
    timeout=10.0, wait_rate_limited=False, max_rate_wait=60.0)``: ``auth`` picks HTTP Digest
    or Basic for the password; a ``token`` is sent as a Bearer token; ``verify`` is True,
    False, an ``ssl.SSLContext`` or the path of a (self-signed) certificate to trust;
    ``wait_rate_limited`` waits out a RATE_LIMITED answer (up to ``max_rate_wait`` s)
    instead of raising :class:`RateLimited`.
    """

    def __init__(self, url: str, username: Optional[str] = None, password: Optional[str] = None,
                 token: Optional[str] = None, **options: Any) -> None:
        super().__init__(url, username, password, token, **options)
        self._client = httpx.Client(base_url=self.url, verify=ssl_context(self.verify),
                                    timeout=self.timeout)
        self.recording = RecordingControl(self)
        self.recordings = Recordings(self)
        self.ptz = Ptz(self)
        self.rotor = Rotor(self)
        self.users = Users(self)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def __enter__(self) -> "Camera":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _send(self, call: Call, stream: bool = False) -> httpx.Response:
        try:
            if self._needs_priming():
                self._client.get(self.PRIMING.path, auth=self._password_auth)
            request = self._client.build_request(call.method, call.path, **call.kwargs())
            return self._client.send(request, auth=self._http_auth(), stream=stream)
        except httpx.TransportError as e:
            raise ConnectionFailed("%s: %s" % (self.url, e or type(e).__name__)) from e
        finally:
            # The login cookie is for browsers; this client authenticates every request.
            self._client.cookies.clear()

    def _call(self, call: Call) -> Any:
        attempt = 0
        while True:
            response = self._send(call)
            try:
                return read_answer(response, call)
            except RateLimited as e:
                wait = self._rate_wait(e.retry_after, attempt)
                if wait is None:
                    raise
                attempt += 1
                time.sleep(wait)

    def watch(self, keys: Optional[Iterable[str]] = None, initial: bool = False,
              max_backoff: float = 10.0) -> Iterator[Dict[str, Any]]:
        """Yield dicts of changed keys (all readable keys, or ``keys``) as they happen.

        Over the WebSocket; when the connection drops it reconnects with a capped
        exponential backoff and re-reads the state, yielding the keys that changed
        meanwhile. ``initial=True`` first yields the current values.
        """
        wanted: Optional[List[str]] = list(keys) if keys else None
        diff = Diff(wanted)
        url = ws_url(self.url, self.token)
        first, delay = True, 0.0
        while True:
            try:
                with ws_connect(url, ssl=ws_ssl(url, self.verify), open_timeout=self.timeout,
                                max_size=2 ** 22) as ws:
                    early = self._ws_login(ws)
                    current = self.get(*wanted) if wanted else self.get_all()
                    changed = diff.changes(current)
                    if first and initial:
                        yield dict(current)
                    elif not first and changed:
                        yield changed
                    first, delay = False, 0.0
                    for message in early:
                        changed = diff.changes(message)
                        if changed:
                            yield changed
                    while True:
                        message = json.loads(ws.recv())
                        if _skip(message):
                            continue
                        changed = diff.changes(message)
                        if changed:
                            yield changed
            except (ConnectionClosed, InvalidHandshake, ConnectionFailed, OSError,
                    TimeoutError) as e:
                if isinstance(e, InvalidHandshake) and "401" in str(e):
                    raise Unauthorized("the WebSocket refused the credentials",
                                       "UNAUTHORIZED") from e
            delay = backoff(delay, max_backoff)
            time.sleep(delay)

    def _ws_login(self, ws: Any) -> List[Dict[str, Any]]:
        """Log in over the socket with the password (a token went in the URL); the
        broadcasts that arrived before the answer."""
        if self.token or not (self.username and self.password is not None):
            return []
        ws.send(dumps({"username": self.username, "password": self.password}))
        early: List[Dict[str, Any]] = []
        while True:
            message = json.loads(ws.recv(timeout=self.timeout + 30))
            if message.get("authenticated"):
                return early
            if "error" in message:
                raise error_from(message)
            early.append(message)


def _skip(message: Dict[str, Any]) -> bool:
    """True for replies that are no state (login answers); a fatal error raises."""
    if "authenticated" in message:
        return True
    if "error" in message:
        if message.get("code") in FATAL and message.get("key") is None:
            raise error_from(message)
        return True
    return False


class Recordings(RecordingsBase):
    """``camera.recordings``: list (all pages), download (resumable), delete."""

    def list(self, since: Any = None, limit: Optional[int] = None, until: Any = None,
             page_size: int = 100) -> Iterator[Dict[str, Any]]:
        """Recordings newest first, at most ``limit``, since/until a time (epoch seconds,
        ISO 8601 UTC or a datetime), fetched page by page."""
        offset, count = 0, 0
        while True:
            page = self._cam._call(self._page(offset, page_size, since, until))
            items = page["recordings"]
            for item in items:
                if limit is not None and count >= limit:
                    return
                count += 1
                yield item
            offset += len(items)
            if not items or offset >= page["total"]:
                return

    def download(self, id: str, path: Optional[str] = None, progress: Optional[Progress] = None,
                 retries: int = 3, chunk_size: int = 1 << 16) -> str:
        """Download recording ``id`` to ``path`` (default ``<id>.mp4``), resuming a partial
        file with an HTTP Range request and checking the length; ``progress(done, total)``
        follows it. Returns the path."""
        path = path or "%s.mp4" % id
        for attempt in range(retries + 1):
            try:
                return self._fetch(id, path, progress, chunk_size)
            except ConnectionFailed:
                if attempt == retries:
                    raise
        return path

    def _fetch(self, id: str, path: str, progress: Optional[Progress], chunk_size: int) -> str:
        cam: Camera = self._cam  # type: ignore[assignment]
        have = os.path.getsize(path) if os.path.exists(path) else 0
        call = Call("GET", "/api/recordings/" + quote(id, safe=""),
                    headers={"Range": "bytes=%d-" % have} if have else {})
        response = cam._send(call, stream=True)
        try:
            if response.status_code == 416 and have:
                response.read()
                size = response.json().get("size")
                if size == have:
                    return path  # already complete
                os.remove(path)  # longer than the recording: not a part of it
                return self._fetch(id, path, progress, chunk_size)
            if response.status_code >= 400:
                response.read()
                read_answer(response, call)
            start, total = range_of(response, have)
            done = start
            with open(path, "r+b" if start else "wb") as f:
                f.seek(start)
                f.truncate()
                try:
                    for chunk in response.iter_bytes(chunk_size):
                        f.write(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, total)
                except httpx.TransportError as e:
                    raise ConnectionFailed("download interrupted: %s" % e) from e
        finally:
            response.close()
        check_length(path, done, total)
        return path


def range_of(response: httpx.Response, have: int) -> "tuple[int, Optional[int]]":
    """(first byte, total length) of a 200 or 206 download answer."""
    if response.status_code == 206:
        m = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
        if not m or int(m.group(1)) != have:
            raise IncompleteDownload("the server resumed at another offset than asked")
        return have, int(m.group(3))
    length = response.headers.get("content-length")
    return 0, int(length) if length is not None else None


def check_length(path: str, done: int, total: Optional[int]) -> None:
    """IncompleteDownload unless the file has exactly the announced length."""
    size = os.path.getsize(path)
    if total is not None and (size != total or done != total):
        raise IncompleteDownload("downloaded %d of %d bytes" % (size, total))


__all__ = ["Camera", "ApiError"]
