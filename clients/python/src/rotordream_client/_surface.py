"""The API surface both clients share, built from :class:`~rotordream_client._base.Call`.

Each method returns what ``self._call`` returns: the result for :class:`Camera`, a
coroutine of it for :class:`AsyncCamera`.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional
from urllib.parse import quote

import httpx

from ._base import BearerAuth, Call, VerifyType, merge_values, pick, with_query


class Surface:
    """Connection settings and every one-request method of the API."""

    def __init__(self, url: str, username: Optional[str] = None, password: Optional[str] = None,
                 token: Optional[str] = None, *, auth: str = "digest", verify: VerifyType = True,
                 timeout: float = 10.0, wait_rate_limited: bool = False,
                 max_rate_wait: float = 60.0) -> None:
        if auth not in ("digest", "basic"):
            raise ValueError('auth is "digest" or "basic"')
        self.url = url.rstrip("/")
        self.username = username
        self.password = password
        self.token = token
        self.auth_scheme = auth
        self.verify = verify
        self.timeout = timeout
        self.wait_rate_limited = wait_rate_limited
        self.max_rate_wait = max_rate_wait
        self._password_auth: Optional[httpx.Auth] = None
        # Anonymous clients may read, so a read never meets the Digest challenge: one
        # request that needs credentials fetches it first (see ``_needs_priming``).
        self._primed = auth != "digest"
        if username is not None and password is not None:
            self._password_auth = (httpx.DigestAuth(username, password) if auth == "digest"
                                   else httpx.BasicAuth(username, password))

    def _http_auth(self) -> Optional[httpx.Auth]:
        """A bearer token wins over the password (after ``login()``)."""
        if self.token:
            return BearerAuth(self.token)
        return self._password_auth

    def _call(self, call: Call) -> Any:
        raise NotImplementedError

    def _needs_priming(self) -> bool:
        """True once, before the first request with a password over Digest: the daemon
        answers reads anonymously, so the client asks for its challenge first and sends
        Digest credentials with every request from then on."""
        if self._primed or self.token or self._password_auth is None:
            return False
        self._primed = True
        return True

    PRIMING = Call("GET", "/api/users")

    def _rate_wait(self, retry_after: Optional[float], attempt: int) -> Optional[float]:
        """Seconds to wait before retrying a RATE_LIMITED answer, or None to raise it."""
        wait = retry_after if retry_after is not None else 1.0
        if not self.wait_rate_limited or wait > self.max_rate_wait or attempt >= 5:
            return None
        return wait

    # -- system ----------------------------------------------------------------------------

    def info(self) -> Any:
        """Product, version, capabilities and stream URLs (public)."""
        return self._call(Call("GET", "/api/info"))

    def status(self) -> Any:
        """Uptime, CPU, memory, disk, encoder counters, recording and clients."""
        return self._call(Call("GET", "/api/status"))

    def health(self) -> Any:
        """Liveness: is the daemon serving and the camera delivering frames (public)."""
        return self._call(Call("GET", "/api/health"))

    def snapshot(self, quality: Optional[int] = None) -> Any:
        """A JPEG of the latest frame, as bytes."""
        return self._call(Call("GET", "/api/snapshot", params={"quality": quality}, raw=True))

    def stream_url(self, name: str = "stream1", transport: Optional[str] = "tcp",
                   credentials: bool = False) -> Any:
        """The RTSP URL of stream ``name`` (``?tcp``/``?udp`` pins the transport; None leaves it
        open). With a token (``login()`` or ``token=``) it carries ``token=``; with
        ``credentials=True`` and a password it carries ``user:password@`` instead."""
        if transport not in (None, "tcp", "udp"):
            raise ValueError('transport is "tcp", "udp" or None')

        def build(data: Mapping[str, Any]) -> str:
            url = data["streams"][name]["url"]
            if credentials and not self.token and self.username and self.password:
                scheme, rest = url.split("://", 1)
                url = "%s://%s:%s@%s" % (scheme, quote(self.username, safe=""),
                                         quote(self.password, safe=""), rest)
            return with_query(url, transport or "",
                              "token=" + quote(self.token, safe="") if self.token else "")
        return self._call(Call("GET", "/api/info", parse=build))

    # -- settings --------------------------------------------------------------------------

    def get(self, *keys: str) -> Any:
        """The values of ``keys`` as a dict (an unknown or unreadable key raises ApiError)."""
        if not keys:
            raise ValueError("get() needs at least one key; get_all() reads everything")
        return self._call(Call("GET", "/api/settings", parse=lambda data: pick(data, keys)))

    def get_all(self) -> Any:
        """Every setting the caller may read."""
        return self._call(Call("GET", "/api/settings"))

    def set(self, *mapping: Mapping[str, Any], **values: Any) -> Any:
        """Set keys in one all-or-nothing batch: ``set(brightness=75, cam1_light=True)``
        (underscores stand for hyphens) or ``set({"cam1-light": True})``. Returns the
        confirmed values."""
        return self._call(Call("POST", "/api/settings", json=merge_values(mapping, values)))

    # -- sessions --------------------------------------------------------------------------

    def login(self, username: Optional[str] = None, password: Optional[str] = None) -> Any:
        """Trade the password for a bearer token, used from then on (and by ``stream_url``)."""
        username = username or self.username
        password = password or self.password
        if not username or password is None:
            raise ValueError("login() needs a username and a password")

        def keep(data: Dict[str, Any]) -> Dict[str, Any]:
            self.token = data["token"]
            self.username = username
            return data
        return self._call(Call("POST", "/api/login",
                               json={"username": username, "password": password}, parse=keep))

    def logout(self) -> Any:
        """Revoke the bearer token; later calls use the password again (if any)."""
        def forget(data: Dict[str, Any]) -> Dict[str, Any]:
            self.token = None
            return data
        return self._call(Call("POST", "/api/logout", parse=forget))


class RecordingControl:
    """``camera.recording``: start, stop, pause, resume and status of the recorder."""

    def __init__(self, camera: Surface) -> None:
        self._cam = camera

    def start(self, name: Optional[str] = None, duration: Optional[float] = None) -> Any:
        """Start recording stream1 (an optional name, a duration limit in seconds)."""
        body = {k: v for k, v in (("name", name), ("duration", duration)) if v is not None}
        return self._cam._call(Call("POST", "/api/recording/start", json=body))

    def stop(self) -> Any:
        """Stop recording; answered once the file is complete."""
        return self._cam._call(Call("POST", "/api/recording/stop"))

    def pause(self) -> Any:
        """Pause the recording."""
        return self._cam._call(Call("POST", "/api/recording/pause"))

    def resume(self) -> Any:
        """Resume a paused recording."""
        return self._cam._call(Call("POST", "/api/recording/resume"))

    def status(self) -> Any:
        """State, id, duration, bytes and free space of the recorder."""
        return self._cam._call(Call("GET", "/api/recording/status"))


class RecordingsBase:
    """``camera.recordings``: the shared part (list and download differ per flavour)."""

    def __init__(self, camera: Surface) -> None:
        self._cam = camera

    def delete(self, id: str) -> Any:
        """Delete recording ``id`` (operators)."""
        return self._cam._call(Call("DELETE", "/api/recordings/" + quote(id, safe="")))

    @staticmethod
    def _page(offset: int, size: int, since: Any, until: Any) -> Call:
        from ._base import epoch
        return Call("GET", "/api/recordings", params={"offset": offset, "limit": size,
                                                      "since": epoch(since),
                                                      "until": epoch(until)})


class Ptz:
    """``camera.ptz``: pan/tilt in degrees over ``/api/ptz``; absolute moves through the
    ``pan``/``tilt`` settings (the answer names the targets)."""

    def __init__(self, camera: Surface) -> None:
        self._cam = camera

    def status(self) -> Any:
        """Position, ``state``, ``limits`` and ``presets``."""
        return self._cam._call(Call("GET", "/api/ptz"))

    def move(self, pan: Optional[float] = None, tilt: Optional[float] = None) -> Any:
        """Move to ``pan``/``tilt`` degrees (one move when both are given)."""
        values = {k: float(v) for k, v in (("pan", pan), ("tilt", tilt)) if v is not None}
        if not values:
            raise ValueError("move() needs pan, tilt or both")
        return self._cam._call(Call("POST", "/api/settings", json=values))

    def relative(self, pan: float = 0.0, tilt: float = 0.0,
                 speed: Optional[float] = None) -> Any:
        """Move by ``pan``/``tilt`` degrees (a step past a limit stops there)."""
        body = {"pan": float(pan), "tilt": float(tilt)}
        if speed is not None:
            body["speed"] = float(speed)
        return self._cam._call(Call("POST", "/api/ptz/relative", json=body))

    def continuous(self, pan_velocity: float, tilt_velocity: float,
                   timeout: Optional[float] = None) -> Any:
        """Move at a velocity (-1..1 of the axis' top speed) until ``stop()`` or ``timeout`` s."""
        body = {"pan_velocity": float(pan_velocity), "tilt_velocity": float(tilt_velocity)}
        if timeout is not None:
            body["timeout"] = float(timeout)
        return self._cam._call(Call("POST", "/api/ptz/continuous", json=body))

    def stop(self) -> Any:
        """Stop both axes."""
        return self._cam._call(Call("POST", "/api/ptz/stop"))

    def home(self) -> Any:
        """Go to the home position."""
        return self._cam._call(Call("POST", "/api/ptz/home"))

    def presets(self) -> Any:
        """The stored presets: ``[{"token", "name", "pan", "tilt"}]`` (degrees)."""
        return self._cam._call(Call("GET", "/api/ptz/presets", parse=lambda d: d["presets"]))

    def goto(self, preset: str) -> Any:
        """Move to the preset with token ``preset``."""
        return self._cam._call(Call("POST", "/api/ptz/presets/%s/goto" % quote(preset, safe="")))

    def set_preset(self, name: str) -> Any:
        """Store the current position as preset ``name``; its token."""
        return self._cam._call(Call("POST", "/api/ptz/presets", json={"name": name},
                                    parse=lambda d: d["token"]))

    def remove_preset(self, preset: str) -> Any:
        """Delete the preset with token ``preset``."""
        return self._cam._call(Call("DELETE", "/api/ptz/presets/" + quote(preset, safe="")))

    def position(self) -> Any:
        """Actual ``pan-position``, ``tilt-position`` (degrees) and ``motor-state``."""
        return self._cam._call(Call("GET", "/api/settings", parse=lambda d: pick(
            d, ("pan-position", "tilt-position", "motor-state"))))


class Rotor:
    """``camera.rotor``: the spinning clear-view disc."""

    def __init__(self, camera: Surface) -> None:
        self._cam = camera

    def set(self, enabled: Optional[bool] = None, speed: Optional[int] = None,
            direction: Optional[str] = None) -> Any:
        """Switch the rotor, set its speed (rpm) and direction (``cw``/``ccw``) in one batch."""
        values = {k: v for k, v in (("rotor-enabled", enabled), ("rotor-speed", speed),
                                    ("rotor-direction", direction)) if v is not None}
        if not values:
            raise ValueError("rotor.set() needs enabled, speed or direction")
        return self._cam._call(Call("POST", "/api/settings", json=values))

    def status(self) -> Any:
        """``rotor-enabled``, ``rotor-speed``, ``rotor-direction`` and the actual ``rotor-rpm``."""
        return self._cam._call(Call("GET", "/api/settings", parse=lambda d: pick(
            d, ("rotor-enabled", "rotor-speed", "rotor-direction", "rotor-rpm"))))


class Users:
    """``camera.users``: user management (admins; a user may read itself and change its
    own password)."""

    def __init__(self, camera: Surface) -> None:
        self._cam = camera

    def list(self) -> Any:
        """Every user with its role and permissions."""
        return self._cam._call(Call("GET", "/api/users", parse=lambda d: d["users"]))

    def get(self, username: str) -> Any:
        """One user."""
        return self._cam._call(Call("GET", "/api/users/" + quote(username, safe="")))

    def add(self, username: str, password: str, role: str = "viewer") -> Any:
        """Create a user with ``role`` (admin, operator, viewer or guest)."""
        return self._cam._call(Call("POST", "/api/users", json={
            "username": username, "password": password, "role": role}))

    def passwd(self, username: str, password: str, current: Optional[str] = None) -> Any:
        """Set a password (admins), or change one's own (with ``current``)."""
        body = {"password": password}
        if current is not None:
            body["current"] = current
        return self._cam._call(Call("PUT", "/api/users/%s/password" % quote(username, safe=""),
                                    json=body))

    def set_role(self, username: str, role: str) -> Any:
        """Change a user's role."""
        return self._cam._call(Call("PUT", "/api/users/" + quote(username, safe=""),
                                    json={"role": role}))

    def delete(self, username: str) -> Any:
        """Delete a user."""
        return self._cam._call(Call("DELETE", "/api/users/" + quote(username, safe="")))


