"""The camera state: every setting and status key, declared once.

Each key declares its type, range or allowed values, default, the
permission that reads it and the one that writes it, and whether it is
persisted. REST, WebSocket, ONVIF, the pipeline, the recorder and the motor
service all read and write through one :class:`CameraState`; none keeps a
second copy.

Changes are applied all-or-nothing per batch, then every observer is told
(in the reactor thread, in the order the changes happened).

Settings and commands differ (a setting is a fact the store keeps; a
command acts). Keys with a registered command (``snap``, ``record``, the
motor keys once a motor is configured) are not stored by :meth:`set`: once
the batch's settings are applied and broadcast, the command runs and reports
its outcome with :meth:`update`, a fresh change of its own. Nothing calls
back into the store while it applies a change (that raises).

The device's configurable ONVIF scopes are state too (:class:`ExtraScopes`;
the others follow from the name and location keys, :mod:`rotordream.scopes`),
read by ONVIF and WS-Discovery.

Why it is long: it is the one declaration of every key (habit 9): the key
table, its validation, the store with its observers and commands, and its
persistence belong together, and the table alone is a hundred lines.
"""

import json
import math
import os
import threading
from dataclasses import dataclass, field, replace

from twisted.internet import threads
from twisted.logger import Logger

from rotordream.auth import roles
from rotordream.fsutil import atomic_write, keep_corrupt_copy

log = Logger()

STATE_FILE = "state.json"

# Error codes (contract.md) with the HTTP status each maps to.
BAD_REQUEST = "BAD_REQUEST"
INVALID_VALUE = "INVALID_VALUE"
UNAUTHORIZED = "UNAUTHORIZED"
FORBIDDEN = "FORBIDDEN"
UNKNOWN_KEY = "UNKNOWN_KEY"
_HTTP_STATUS = {BAD_REQUEST: 400, INVALID_VALUE: 400, UNKNOWN_KEY: 400,
                UNAUTHORIZED: 401, FORBIDDEN: 403}


class StateError(Exception):
    """A rejected read or write, naming the key and what would be allowed."""

    def __init__(self, code, key, message, allowed=None):
        super().__init__(message)
        self.code = code
        self.key = key
        self.message = message
        self.allowed = allowed

    @property
    def http_status(self):
        """The HTTP status REST answers this error with."""
        return _HTTP_STATUS.get(self.code, 400)

    def as_dict(self):
        """The error as the JSON fields every API sends."""
        d = {"error": self.message, "key": self.key, "code": self.code}
        if self.allowed is not None:
            d["allowed"] = self.allowed
        return d


RESOLUTIONS = ("1920x1080", "1280x720", "960x540", "640x360", "640x480", "320x240")
STREAM2_RESOLUTIONS = ("1280x720", "960x540", "640x360", "480x270", "320x180")
PROFILES = ("baseline", "main", "high")   # H.264 (baseline: Constrained Baseline)

_RECORD_WORDS = {"on": True, "off": False, "pause": "paused", "pause_release": True,
                 "paused": "paused"}  # "paused" is what the key reads back


@dataclass(frozen=True)
class KeySpec:
    """The declaration of one state key."""

    name: str
    kind: str                      # int | float | bool | str | choice | record | trigger
    default: object = None
    read: str = roles.STATE_READ   # permission that reads it (None: public)
    write: str = None              # permission that writes it (None: read-only)
    persisted: bool = False
    minimum: float = None
    maximum: float = None
    choices: tuple = None
    max_length: int = 64
    aliases: tuple = ()
    description: str = ""
    status: bool = field(default=False)  # set only by the daemon (positions, counters)

    @property
    def writable(self):
        """True when some API may write this key."""
        return self.write is not None

    def allowed(self, choices=None):
        """A description of the allowed values, for error messages and docs."""
        choices = choices if choices is not None else self.choices
        if self.kind in ("int", "float"):
            return {"min": self.minimum, "max": self.maximum}
        if self.kind == "choice":
            return list(choices)
        if self.kind == "bool" or self.kind == "trigger":
            return [True, False]
        if self.kind == "record":
            return [True, False, "on", "off", "pause", "pause_release"]
        if self.kind == "str":
            return {"max_length": self.max_length}
        return None

    def validate(self, value, choices=None):
        """Return ``value`` normalised for this key, or raise :class:`StateError`."""
        k = self.kind
        if k == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                else:
                    raise self._type_error("an integer", value)
            return self._in_range(value)
        if k == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self._type_error("a number", value)
            if not math.isfinite(value):  # NaN passes every range check and is not JSON
                raise StateError(INVALID_VALUE, self.name, "%s must be a finite number, not %s"
                                 % (self.name, value), self.allowed())
            return self._in_range(float(value))
        if k in ("bool", "trigger"):
            if not isinstance(value, bool):
                raise self._type_error("true or false", value)
            return value
        if k == "choice":
            choices = choices if choices is not None else self.choices
            if not isinstance(value, type(choices[0])) or isinstance(value, bool):
                raise self._type_error("one of %s" % ", ".join(map(str, choices)), value)
            if value not in choices:
                raise StateError(INVALID_VALUE, self.name, "%s must be one of %s, not %r"
                                 % (self.name, ", ".join(map(str, choices)), value),
                                 list(choices))
            return value
        if k == "record":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value in _RECORD_WORDS:
                return _RECORD_WORDS[value]
            raise StateError(INVALID_VALUE, self.name,
                             "record must be true, false, \"on\", \"off\", \"pause\" or "
                             "\"pause_release\", not %r" % (value,), self.allowed())
        if k == "str":
            if not isinstance(value, str):
                raise self._type_error("a string", value)
            if len(value) > self.max_length or any(ord(c) < 32 for c in value):
                raise StateError(INVALID_VALUE, self.name,
                                 "%s must be printable text of at most %d characters"
                                 % (self.name, self.max_length), self.allowed())
            return value
        raise AssertionError("unknown kind %r" % k)

    def _type_error(self, expected, value):
        return StateError(BAD_REQUEST, self.name, "%s must be %s, not %s"
                          % (self.name, expected, json.dumps(value)[:40]), self.allowed())

    def _in_range(self, value):
        if (self.minimum is not None and value < self.minimum) or \
                (self.maximum is not None and value > self.maximum):
            raise StateError(INVALID_VALUE, self.name, "%s must be between %s and %s, not %s"
                             % (self.name, _num(self.minimum), _num(self.maximum), _num(value)),
                             self.allowed())
        return value


def _num(v):
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _image(name, default=50, desc=""):
    return KeySpec(name, "int", default, write=roles.CAMERA_CONTROL, persisted=True,
                   minimum=0, maximum=100, description=desc)


def _flag(name, default, desc="", write=roles.CAMERA_CONTROL, aliases=()):
    return KeySpec(name, "bool", default, write=write, persisted=True,
                   description=desc, aliases=aliases)


def _status(name, kind, default, desc, read=roles.STATE_READ, **kw):
    return KeySpec(name, kind, default, read=read, write=None, status=True,
                   description=desc, **kw)


KEYS = (
    # Image (contract.md).
    _image("brightness", desc="Image brightness"),
    _image("contrast", desc="Image contrast"),
    _image("saturation", desc="Colour saturation"),
    _image("sharpness", desc="Image sharpness"),
    _image("gain", 0, "Sensor gain"),
    _image("red-gain", 50, "White balance red gain"),
    _image("blue-gain", 50, "White balance blue gain"),
    _flag("auto-exposure", True, "Automatic exposure"),
    _flag("auto-white-balance", True, "Automatic white balance"),
    _flag("noise-supression", False, "Noise suppression (historical spelling)",
          aliases=("noise-suppression",)),
    # Streams. `resolution` and `fps` are the main stream's (contract.md).
    KeySpec("resolution", "choice", "1920x1080", write=roles.CAMERA_CONTROL, persisted=True,
            choices=RESOLUTIONS, description="Main stream (stream1) resolution"),
    KeySpec("fps", "int", 30, write=roles.CAMERA_CONTROL, persisted=True, minimum=5,
            maximum=60, description="Main stream (stream1) frame rate"),
    KeySpec("stream1-bitrate", "int", 4000, write=roles.CAMERA_CONTROL, persisted=True,
            minimum=100, maximum=20000, description="Main stream bitrate, kbit/s"),
    KeySpec("stream1-gop", "int", 30, write=roles.CAMERA_CONTROL, persisted=True,
            minimum=1, maximum=600, description="Main stream keyframe interval, frames"),
    KeySpec("profile", "choice", "baseline", write=roles.CAMERA_CONTROL, persisted=True,
            choices=PROFILES, description="H.264 profile of both streams (baseline plays "
            "everywhere, WebRTC included; main and high compress better)"),
    KeySpec("stream2-resolution", "choice", "640x360", write=roles.CAMERA_CONTROL,
            persisted=True, choices=STREAM2_RESOLUTIONS,
            description="Secondary stream (stream2) resolution"),
    KeySpec("stream2-fps", "int", 15, write=roles.CAMERA_CONTROL, persisted=True,
            minimum=1, maximum=30, description="Secondary stream frame rate"),
    KeySpec("stream2-bitrate", "int", 1000, write=roles.CAMERA_CONTROL, persisted=True,
            minimum=100, maximum=8000, description="Secondary stream bitrate, kbit/s"),
    KeySpec("stream2-gop", "int", 15, write=roles.CAMERA_CONTROL, persisted=True,
            minimum=1, maximum=600, description="Secondary stream keyframe interval, frames"),
    KeySpec("jpeg-quality", "int", 85, write=roles.CAMERA_CONTROL, persisted=True,
            minimum=1, maximum=100, description="Snapshot JPEG quality"),
    # Heads and lights.
    _flag("cam1-light", False, "Camera 1 light"),
    _flag("cam2-light", False, "Camera 2 light"),
    KeySpec("main-camera", "int", 1, write=roles.CAMERA_CONTROL, persisted=True,
            minimum=1, maximum=2, description="Camera head shown on the streams"),
    _status("cam1-exists", "bool", False, "Camera head 1 delivers frames"),
    _status("cam2-exists", "bool", False, "Camera head 2 is present"),
    # Recording and snapshots (triggers handled by actions).
    KeySpec("record", "record", False, write=roles.RECORDING_CONTROL,
            description="Recording: true/false/\"on\"/\"off\"/\"pause\"/\"pause_release\"; "
                        "reads true, false or \"paused\""),
    KeySpec("snap", "trigger", False, write=roles.SNAPSHOT,
            description="true takes a snapshot (a trigger, not stored)"),
    # Motors: the rotor disc and the pan/tilt axes (issue 7).
    _flag("rotor-enabled", False, "Rotor (clear-view disc) running", write=roles.MOTOR_CONTROL),
    KeySpec("rotor-speed", "int", 3000, write=roles.MOTOR_CONTROL, persisted=True,
            minimum=0, maximum=6000, description="Rotor speed setpoint, rpm"),
    KeySpec("rotor-direction", "choice", "cw", write=roles.MOTOR_CONTROL, persisted=True,
            choices=("cw", "ccw"), description="Rotor direction"),
    _status("rotor-rpm", "int", 0, "Rotor actual speed, rpm", minimum=0, maximum=100000),
    KeySpec("pan", "float", 0.0, write=roles.MOTOR_CONTROL, minimum=-170.0, maximum=170.0,
            description="Pan target, degrees"),
    KeySpec("tilt", "float", 0.0, write=roles.MOTOR_CONTROL, minimum=-90.0, maximum=90.0,
            description="Tilt target, degrees"),
    _status("pan-position", "float", 0.0, "Pan actual position, degrees"),
    _status("tilt-position", "float", 0.0, "Tilt actual position, degrees"),
    _status("motor-state", "choice", "idle", "Motor controller: idle, moving or fault",
            choices=("idle", "moving", "fault")),
    _status("motion", "bool", False, "Motion in the picture (frame differences on stream2)"),
    # Device identity and discovery (ONVIF scopes, WS-Discovery).
    KeySpec("device-name", "str", "RotorDream", write=roles.SYSTEM_ADMIN, persisted=True,
            description="Device name (ONVIF name scope)"),
    KeySpec("device-location", "str", "", write=roles.SYSTEM_ADMIN, persisted=True,
            description="Device location (ONVIF location scope)"),
    KeySpec("discovery-mode", "choice", "discoverable", read=roles.SYSTEM_ADMIN,
            write=roles.SYSTEM_ADMIN, persisted=True,
            choices=("discoverable", "non-discoverable"),
            description="ONVIF discovery mode (admins only)"),
)



def with_defaults(keys=KEYS, **defaults):
    """``keys`` with other factory defaults (``profile="high"``), e.g. from the config file;
    a value someone set and the camera kept still wins."""
    by_name = {k.replace("_", "-"): v for k, v in defaults.items()}
    unknown = set(by_name) - {spec.name for spec in keys}
    if unknown:
        raise KeyError(sorted(unknown)[0])
    return tuple(replace(spec, default=by_name[spec.name]) if spec.name in by_name else spec
                 for spec in keys)


def declarations(keys=KEYS, choices=None):
    """Every key's declaration as JSON-ready dicts, in declaration order.

    ``choices`` maps a choice key to its allowed values now (as narrowed by
    :meth:`CameraState.set_choices`); without it the declared ones are given.
    """
    choices = choices or {}
    out = []
    for spec in keys:
        d = {"key": spec.name, "type": spec.kind, "default": spec.default,
             "description": spec.description, "read": spec.read, "write": spec.write,
             "persisted": spec.persisted, "status": spec.status}
        if spec.kind in ("int", "float"):
            d["minimum"], d["maximum"] = spec.minimum, spec.maximum
        elif spec.kind == "choice":
            d["choices"] = list(choices.get(spec.name, spec.choices))
        elif spec.kind == "str":
            d["max_length"] = spec.max_length
        elif spec.kind == "record":
            d["choices"] = spec.allowed()
        if spec.aliases:
            d["aliases"] = list(spec.aliases)
        out.append(d)
    return out

# -- ONVIF scopes -----------------------------------------------------------
# The fixed scopes and those of the name and location keys: rotordream.scopes.
# The extra configurable ones (ONVIF AddScopes/SetScopes) are kept here.

SCOPES_FILE = "onvif-scopes.json"


class ExtraScopes:
    """The configurable scopes beyond name and location (ONVIF AddScopes/SetScopes).

    Kept in ``<state_dir>/onvif-scopes.json`` (in memory without a
    directory); observers (WS-Discovery) hear every change.
    """

    def __init__(self, state_dir=None):
        self.path = os.path.join(state_dir, SCOPES_FILE) if state_dir else None
        self._scopes = self._load()
        self._observers = []

    def _load(self):
        if self.path is None:
            return ()
        try:
            with open(self.path) as f:
                data = json.load(f)
            return tuple(s for s in data if isinstance(s, str))
        except (OSError, ValueError, TypeError):
            return ()

    def get(self):
        """The extra scopes, in the order they were added."""
        return self._scopes

    def set(self, scopes):
        """Replace the extra scopes (duplicates dropped); persist; tell observers of a change."""
        scopes = tuple(dict.fromkeys(scopes))
        if scopes == self._scopes:
            return
        if self.path is not None:
            atomic_write(self.path, json.dumps(list(scopes)).encode())
        self._scopes = scopes
        for observer in list(self._observers):
            try:
                observer(scopes)
            except Exception:
                log.failure("scope observer {observer!r} failed", observer=observer)

    def subscribe(self, observer):
        """Call ``observer(scopes)`` after every change; return an unsubscribe callable."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer) if observer in self._observers else None


class ChangeResult:
    """What a successful :meth:`CameraState.set` did."""

    def __init__(self, changes, info):
        self.changes = changes  # key -> new value, in applied order (includes triggers)
        self.info = info        # key -> extra data returned by actions (e.g. snapshot URL)


class CameraState:
    """The single source of truth for camera settings and status.

    ``clock`` is an IReactorTime used to coalesce writes of the state file
    into one per reactor turn; ``state_dir`` None keeps everything in memory.
    With ``pool`` (a thread pool; ``clock`` is then the reactor) the file is
    written in that pool, one write at a time, so an fsync never holds up
    the reactor; :meth:`flush` still writes at once.
    """

    def __init__(self, state_dir=None, clock=None, keys=KEYS, pool=None):
        self.specs = {spec.name: spec for spec in keys}
        self._aliases = {a: spec.name for spec in keys for a in spec.aliases}
        self._values = {spec.name: spec.default for spec in keys if spec.kind != "trigger"}
        self._choices = {}
        self._observers = []
        self._event_observers = []
        self._commands = {}            # key -> (keys, fn) of its command
        self._applying = False
        self._clock = clock
        self._pool = pool
        self._pending_write = None
        self._writing = False          # a write is in the pool
        self._version = 0              # bumped by every persisted change
        self._written = 0              # the version on disk (under _write_lock)
        self._write_lock = threading.Lock()
        self.path = os.path.join(state_dir, STATE_FILE) if state_dir else None
        self.scopes = ExtraScopes(state_dir)
        if self.path:
            self._load()

    # -- declarations ---------------------------------------------------

    def spec(self, key):
        """The :class:`KeySpec` for ``key`` (aliases accepted) or raise UNKNOWN_KEY."""
        name = self._aliases.get(key, key)
        try:
            return self.specs[name]
        except (KeyError, TypeError):
            raise StateError(UNKNOWN_KEY, key, "unknown key %r" % (key,)) from None

    def set_choices(self, key, choices):
        """Narrow a choice key's allowed values at run time (e.g. what the source supports)."""
        self._choices[key] = tuple(choices)

    def choices(self, key):
        """The allowed values of a choice key now."""
        return self._choices.get(key, self.specs[key].choices)

    def allowed(self, key):
        """A description of what ``key`` accepts."""
        spec = self.spec(key)
        return spec.allowed(self._choices.get(spec.name))

    def set_command(self, keys, fn):
        """Make writes of ``keys`` (one name or several) a command run by ``fn``.

        ``fn(values, origin) -> info or None`` gets the batch's values of its
        keys (all at once: ``{"pan", "tilt"}`` is one move), acts, and reports
        its outcome into the state with :meth:`update` using ``origin``. It
        runs after the rest of the batch is applied and broadcast. What it
        returns (a dict key -> info) is reported to the writer.
        """
        keys = (keys,) if isinstance(keys, str) else tuple(keys)
        for key in keys:
            self._commands[key] = (keys, fn)

    # -- reads ----------------------------------------------------------

    def get(self, key):
        """The current value of ``key``."""
        spec = self.spec(key)
        return self._values.get(spec.name, spec.default)

    def readable(self, principal):
        """Names of keys ``principal`` may read (triggers excluded)."""
        return [name for name, spec in self.specs.items()
                if spec.kind != "trigger" and principal.can(spec.read)]

    def read(self, keys, principal):
        """Values of ``keys`` (``"*"`` for all readable) for ``principal``; raise on any refusal."""
        if keys == "*":
            return {k: self._values[k] for k in self.readable(principal)}
        out = {}
        for key in keys:
            spec = self.spec(key)
            if not principal.can(spec.read):
                raise self._denied(spec, principal, "read")
            out[spec.name] = self._values.get(spec.name, spec.default)
        return out

    def as_dict(self):
        """Every stored value (no permission check: for the daemon's own use)."""
        return dict(self._values)

    # -- writes ---------------------------------------------------------

    def validate(self, changes, principal):
        """Check a batch without applying it; return it normalised with canonical names."""
        if not isinstance(changes, dict):
            raise StateError(BAD_REQUEST, None, "settings must be a JSON object of keys")
        if not changes:
            raise StateError(BAD_REQUEST, None, "no keys given")
        out = {}
        for key, value in changes.items():
            spec = self.spec(key)
            if not spec.writable:
                raise StateError(FORBIDDEN, spec.name, "%s is read-only" % spec.name)
            if not principal.can(spec.write):
                raise self._denied(spec, principal, "write")
            out[spec.name] = spec.validate(value, self._choices.get(spec.name))
        return out

    def set(self, changes, principal, origin="api"):
        """Apply a batch of writes all-or-nothing; return a :class:`ChangeResult`.

        Raises :class:`StateError` (and changes nothing) if any key is unknown,
        read-only, not permitted for ``principal`` or out of range.
        """
        normalised = self.validate(changes, principal)
        settings = {k: v for k, v in normalised.items() if k not in self._commands}
        result = self._apply(settings, origin)
        # Commands act once the settings are in, outside any apply: each reports
        # its outcome with update(), a change (and broadcast) of its own.
        done = set()
        for key in normalised:
            if key not in self._commands or key in done:
                continue
            keys, fn = self._commands[key]
            values = {k: normalised[k] for k in keys if k in normalised}
            done.update(values)
            info = fn(values, origin)
            if info:
                result.info.update(info)
        changes_out = {}
        for key, value in normalised.items():
            if self.specs[key].kind == "trigger":
                changes_out[key] = value
            elif key in result.changes or key in self._commands:
                changes_out[key] = self._values[key]
        return ChangeResult(changes_out, result.info)

    def update(self, changes, origin="system"):
        """Let the daemon itself set keys, read-only status keys included.

        Values are still type- and range-checked; no commands run (the caller
        is the one acting). Only keys whose value really changes are broadcast.
        """
        normalised = {}
        for key, value in changes.items():
            spec = self.spec(key)
            normalised[spec.name] = spec.validate(value, self._choices.get(spec.name))
        return self._apply(normalised, origin)

    def _apply(self, normalised, origin):
        if self._applying:
            raise RuntimeError("the camera state was changed from inside its own change "
                               "(an observer must not write; commands report afterwards)")
        self._applying = True
        try:
            return self._store(normalised, origin)
        finally:
            self._applying = False

    def _store(self, normalised, origin):
        changed = {}
        for key, value in normalised.items():
            spec = self.specs[key]
            if spec.kind == "trigger":
                changed[key] = value
                continue
            old = self._values.get(key)
            if old != value or type(old) is not type(value):
                self._values[key] = value
                changed[key] = value
        broadcast = {k: v for k, v in changed.items() if self.specs[k].kind != "trigger"}
        if broadcast:
            if any(self.specs[k].persisted for k in broadcast):
                self._schedule_write()
            for observer in list(self._observers):
                try:
                    observer(broadcast, origin)
                except Exception:
                    log.failure("state observer {observer!r} failed", observer=observer)
        return ChangeResult(changed, {})

    def _denied(self, spec, principal, what):
        if not principal.authenticated:
            return StateError(UNAUTHORIZED, spec.name,
                              "log in to %s %s" % (what, spec.name))
        return StateError(FORBIDDEN, spec.name, "%s may not %s %s"
                          % (principal.role, what, spec.name))

    # -- observers ------------------------------------------------------

    def subscribe(self, observer):
        """Call ``observer(changes, origin)`` after every change; return an unsubscribe callable."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer) if observer in self._observers else None

    def subscribe_events(self, observer):
        """Call ``observer(event)`` for daemon events such as errors; return an unsubscriber."""
        self._event_observers.append(observer)
        return lambda: (self._event_observers.remove(observer)
                        if observer in self._event_observers else None)

    def publish_event(self, event):
        """Tell event observers of something that is not a key change.

        ``event`` is a dict such as ``{"error": "disk full", "key": "record",
        "code": "INSUFFICIENT_STORAGE"}``; WebSocket clients receive it as is.
        """
        for observer in list(self._event_observers):
            try:
                observer(event)
            except Exception:
                log.failure("event observer {observer!r} failed", observer=observer)

    # -- persistence ----------------------------------------------------

    def _load(self):
        try:
            with open(self.path, "rb") as f:
                stored = json.loads(f.read().decode("utf-8"))
            values = stored["values"]
            if not isinstance(values, dict):
                raise ValueError("values is not an object")
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            log.error("state file {path} is unreadable ({e}); starting from defaults",
                      path=self.path, e=e)
            keep_corrupt_copy(self.path, log)
            return
        for key, value in values.items():
            spec = self.specs.get(key)
            if spec is None or not spec.persisted:
                continue
            try:
                self._values[key] = spec.validate(value)
            except StateError as e:
                log.warn("ignoring stored {key}: {e}", key=key, e=e.message)

    def _schedule_write(self):
        if self.path is None:
            return
        self._version += 1
        if self._clock is None:
            self.flush()
        else:
            self._queue_write()

    def _queue_write(self):
        # Coalesce: one write per reactor turn however many keys change; while one
        # is in the pool, the next waits for it (_written_back queues it then).
        if self._pending_write is None and not self._writing:
            self._pending_write = self._clock.callLater(0, self._write_soon)

    def _snapshot(self):
        values = {k: v for k, v in self._values.items() if self.specs[k].persisted}
        data = json.dumps({"version": 1, "values": values}, indent=1, sort_keys=True)
        return self._version, data.encode("utf-8")

    def _write(self, version, data):
        # Pool writes and flush() can overlap at shutdown: never let an older
        # snapshot replace a newer one.
        with self._write_lock:
            if version <= self._written:
                return
            atomic_write(self.path, data)
            self._written = version

    def _write_soon(self):
        self._pending_write = None
        if self._pool is None:
            self.flush()
            return
        self._writing = True
        threads.deferToThreadPool(self._clock, self._pool, self._write,
                                  *self._snapshot()).addCallbacks(self._written_back,
                                                                  self._write_failed)

    def _written_back(self, _):
        self._writing = False
        if self._version > self._written:
            self._queue_write()

    def _write_failed(self, failure):
        # Not retried in a loop: the next change (or flush at stop) tries again.
        self._writing = False
        log.failure("could not write {path}", failure, path=self.path)

    def flush(self):
        """Write persisted keys to the state file now (atomically)."""
        if self._pending_write is not None and self._pending_write.active():
            self._pending_write.cancel()
        self._pending_write = None
        if self.path is None:
            return
        self._write(*self._snapshot())
