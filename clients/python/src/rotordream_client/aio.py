"""The asynchronous client: :class:`AsyncCamera`, the same surface as :class:`Camera`."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any, AsyncIterator, Dict, Iterable, List, Optional
from urllib.parse import quote

import httpx
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from ._base import Call, Diff, dumps, read_answer, ssl_context, ws_url
from ._surface import Ptz, RecordingControl, RecordingsBase, Rotor, Surface, Users
from .camera import Progress, _skip, backoff, check_length, range_of, ws_ssl
from .errors import ConnectionFailed, RateLimited, Unauthorized, error_from


class AsyncCamera(Surface):
    """A RotorDream camera for asyncio: every method of :class:`Camera` as a coroutine,
    ``watch`` and ``recordings.list`` as async iterators. Same constructor arguments."""

    def __init__(self, url: str, username: Optional[str] = None, password: Optional[str] = None,
                 token: Optional[str] = None, **options: Any) -> None:
        super().__init__(url, username, password, token, **options)
        self._client = httpx.AsyncClient(base_url=self.url, verify=ssl_context(self.verify),
                                         timeout=self.timeout)
        self.recording = RecordingControl(self)
        self.recordings = AsyncRecordings(self)
        self.ptz = Ptz(self)
        self.rotor = Rotor(self)
        self.users = Users(self)

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self._client.aclose()

    async def __aenter__(self) -> "AsyncCamera":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def _send(self, call: Call, stream: bool = False) -> httpx.Response:
        try:
            if self._needs_priming():
                await self._client.get(self.PRIMING.path, auth=self._password_auth)
            request = self._client.build_request(call.method, call.path, **call.kwargs())
            return await self._client.send(request, auth=self._http_auth(), stream=stream)
        except httpx.TransportError as e:
            raise ConnectionFailed("%s: %s" % (self.url, e or type(e).__name__)) from e
        finally:
            self._client.cookies.clear()

    async def _call(self, call: Call) -> Any:  # type: ignore[override]
        attempt = 0
        while True:
            response = await self._send(call)
            try:
                return read_answer(response, call)
            except RateLimited as e:
                wait = self._rate_wait(e.retry_after, attempt)
                if wait is None:
                    raise
                attempt += 1
                await asyncio.sleep(wait)

    async def watch(self, keys: Optional[Iterable[str]] = None, initial: bool = False,
                    max_backoff: float = 10.0) -> AsyncIterator[Dict[str, Any]]:
        """Async iterator of dicts of changed keys; reconnects and re-reads like
        :meth:`Camera.watch`."""
        wanted: Optional[List[str]] = list(keys) if keys else None
        diff = Diff(wanted)
        url = ws_url(self.url, self.token)
        first, delay = True, 0.0
        while True:
            try:
                async with ws_connect(url, ssl=ws_ssl(url, self.verify),
                                      open_timeout=self.timeout, max_size=2 ** 22) as ws:
                    early = await self._ws_login(ws)
                    current = await (self.get(*wanted) if wanted else self.get_all())
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
                    async for text in ws:
                        message = json.loads(text)
                        if _skip(message):
                            continue
                        changed = diff.changes(message)
                        if changed:
                            yield changed
            except (ConnectionClosed, InvalidHandshake, ConnectionFailed, OSError,
                    asyncio.TimeoutError) as e:
                if isinstance(e, InvalidHandshake) and "401" in str(e):
                    raise Unauthorized("the WebSocket refused the credentials",
                                       "UNAUTHORIZED") from e
            delay = backoff(delay, max_backoff)
            await asyncio.sleep(delay)

    async def _ws_login(self, ws: Any) -> List[Dict[str, Any]]:
        if self.token or not (self.username and self.password is not None):
            return []
        await ws.send(dumps({"username": self.username, "password": self.password}))
        early: List[Dict[str, Any]] = []
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), self.timeout + 30))
            if message.get("authenticated"):
                return early
            if "error" in message:
                raise error_from(message)
            early.append(message)


class AsyncRecordings(RecordingsBase):
    """``camera.recordings`` for asyncio."""

    async def list(self, since: Any = None, limit: Optional[int] = None, until: Any = None,
                   page_size: int = 100) -> AsyncIterator[Dict[str, Any]]:
        """Async iterator over the recordings, newest first, all pages."""
        offset, count = 0, 0
        while True:
            page = await self._cam._call(self._page(offset, page_size, since, until))
            items = page["recordings"]
            for item in items:
                if limit is not None and count >= limit:
                    return
                count += 1
                yield item
            offset += len(items)
            if not items or offset >= page["total"]:
                return

    async def download(self, id: str, path: Optional[str] = None,
                       progress: Optional[Progress] = None, retries: int = 3,
                       chunk_size: int = 1 << 16) -> str:
        """Download recording ``id`` to ``path``, resuming a partial file; see
        :meth:`Recordings.download`."""
        path = path or "%s.mp4" % id
        for attempt in range(retries + 1):
            try:
                return await self._fetch(id, path, progress, chunk_size)
            except ConnectionFailed:
                if attempt == retries:
                    raise
        return path

    async def _fetch(self, id: str, path: str, progress: Optional[Progress],
                     chunk_size: int) -> str:
        cam: AsyncCamera = self._cam  # type: ignore[assignment]
        have = os.path.getsize(path) if os.path.exists(path) else 0
        call = Call("GET", "/api/recordings/" + quote(id, safe=""),
                    headers={"Range": "bytes=%d-" % have} if have else {})
        response = await cam._send(call, stream=True)
        try:
            if response.status_code == 416 and have:
                await response.aread()
                if response.json().get("size") == have:
                    return path
                os.remove(path)
                return await self._fetch(id, path, progress, chunk_size)
            if response.status_code >= 400:
                await response.aread()
                read_answer(response, call)
            start, total = range_of(response, have)
            done = start
            with open(path, "r+b" if start else "wb") as f:
                f.seek(start)
                f.truncate()
                try:
                    async for chunk in response.aiter_bytes(chunk_size):
                        f.write(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, total)
                except httpx.TransportError as e:
                    raise ConnectionFailed("download interrupted: %s" % e) from e
        finally:
            await response.aclose()
        check_length(path, done, total)
        return path
