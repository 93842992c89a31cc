"""REST for pan/tilt: /api/ptz (status), /api/ptz/{move,relative,continuous,stop,home} and
/api/ptz/presets[/<token>[/goto]].

The same moves ONVIF PTZ offers, in degrees and JSON, for scripts and the web
page: every one goes to the motor controller (:class:`~rotordream.interfaces.
IMotorController`), which keeps the ``pan``/``tilt`` targets true whoever moved
the camera. Mounted only when the camera has a motor controller.
"""

import math

from rotordream.auth import roles
from rotordream.motor import MotorError
from rotordream.state import KEYS
from rotordream.web.api.base import ApiError, ApiResource, read_json
from rotordream.web.api.schema import AUTHENTICATED, VIEWER, Route

MAX_TIMEOUT = 3600.0   # seconds a continuous move may last without a stop
MAX_NAME = 64          # characters of a preset name

# Motor refusals -> (HTTP status, envelope code); the controller's own code goes along as
# ``motor_code``. Codes not listed (docs/motor-protocol.md: LIMIT, RANGE, FAULT, ...) refuse
# the move itself: 409.
_MOTOR_STATUS = {"DISCONNECTED": (503, "MOTOR_NOT_CONNECTED"),
                 "TIMEOUT": (503, "MOTOR_NOT_CONNECTED"),   # no answer: as good as gone
                 "BUSY": (429, "RATE_LIMITED")}             # too many commands waiting


def _number(lo, hi, exclusive_min=False):
    return {"type": "number", "exclusiveMinimum" if exclusive_min else "minimum": lo,
            "maximum": hi}


PAN, TILT = ({spec.name: spec for spec in KEYS}[name] for name in ("pan", "tilt"))
MAX_SPEED = 360.0      # degrees/s asked for; the controller moves at most at its own top speed
SPEED = _number(0, MAX_SPEED, exclusive_min=True)
MOVE_BODY = {"type": "object", "additionalProperties": False,
             "anyOf": [{"required": ["pan"]}, {"required": ["tilt"]}],
             "properties": {"pan": _number(PAN.minimum, PAN.maximum),
                            "tilt": _number(TILT.minimum, TILT.maximum), "speed": SPEED}}
RELATIVE_BODY = {"type": "object", "additionalProperties": False,
                 "properties": {"pan": _number(PAN.minimum - PAN.maximum,
                                               PAN.maximum - PAN.minimum),
                                "tilt": _number(TILT.minimum - TILT.maximum,
                                                TILT.maximum - TILT.minimum),
                                "speed": SPEED}}
CONTINUOUS_BODY = {"type": "object", "additionalProperties": False,
                   "properties": {"pan_velocity": _number(-1, 1),
                                  "tilt_velocity": _number(-1, 1),
                                  "timeout": _number(0, MAX_TIMEOUT, exclusive_min=True)}}
PRESET_BODY = {"type": "object", "required": ["name"], "additionalProperties": False,
               "properties": {"name": {"type": "string", "minLength": 1,
                                       "maxLength": MAX_NAME, "pattern": "\\S"}}}
GOTO_BODY = {"type": "object", "additionalProperties": False, "properties": {"speed": SPEED}}


def motor_refusal(failure):
    """The ApiError for a refused or failed motor command."""
    failure.trap(MotorError)
    e = failure.value
    status, code = _MOTOR_STATUS.get(e.code, (409, "CONFLICT"))
    extra = {"retry_after": 1} if e.code == "BUSY" else {}
    headers = {b"retry-after": b"1"} if extra else None
    raise ApiError(status, "motor: %s" % e.message, code, headers=headers, motor_code=e.code,
                   **extra)


def _body(request, allowed, required=True):
    """The JSON object in the body with only ``allowed`` fields (no fields: no body needed;
    ``required`` False: an empty body is ``{}``)."""
    empty = request.getHeader(b"transfer-encoding") is None and \
        request.getHeader(b"content-length") in (None, b"0")
    if empty and (not allowed or not required):
        return {}
    body = read_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(400, "unknown field %s" % unknown[0], key=unknown[0],
                       allowed=sorted(allowed))
    return body


def _value(body, key, lo=None, hi=None, default=None, above=None):
    """``body[key]`` as a float within [lo, hi] (and > ``above``); ``default`` when absent
    (a null is no number)."""
    if key not in body:
        return default
    value = body[key]
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value) and (lo is None or value >= lo) and \
        (hi is None or value <= hi) and (above is None or value > above)
    if not ok:
        low = lo if lo is not None else above
        raise ApiError(400, "%s must be a number from %s to %s" % (key, low, hi),
                       "INVALID_VALUE", key=key, allowed={"min": low, "max": hi})
    return float(value)


class PtzResource(ApiResource):
    """What every /api/ptz resource shares: the motor and its answers."""

    @property
    def motor(self):
        """The IMotorController."""
        return self.ctx.motor

    def _answer(self, d):
        """Once the controller accepted the command: the status after it."""
        return d.addCallbacks(lambda _: self.motor.status(), motor_refusal)


class Ptz(PtzResource):
    """GET /api/ptz: position, movement, limits and presets."""

    routes = (
        Route("/api/ptz", "get", "Pan/tilt position, whether moving, limits and presets",
              VIEWER),
    )

    methods = {"GET": ("get", roles.STATUS_READ)}

    def __init__(self, api):
        super().__init__(api)
        for verb in (b"move", b"relative", b"continuous", b"stop", b"home"):
            self.putChild(verb, Move(api, verb.decode()))
        self.putChild(b"presets", Presets(api))

    def get(self, request, principal):
        return dict(self.motor.status(), limits=self.motor.limits(),
                    presets=self.motor.presets())


class Move(PtzResource):
    """POST /api/ptz/<verb>: move, relative, continuous, stop, home."""

    routes = (
        Route("/api/ptz/move", "post", "Move to absolute pan/tilt degrees (an axis left out "
              "stays; speed in degrees/s)", AUTHENTICATED, body=MOVE_BODY),
        Route("/api/ptz/relative", "post", "Move by pan/tilt degrees (stopping at a limit)",
              AUTHENTICATED,
              body=RELATIVE_BODY),
        Route("/api/ptz/continuous", "post", "Move at velocities -1..1 until stopped or the "
              "timeout (seconds) passes", AUTHENTICATED, body=CONTINUOUS_BODY),
        Route("/api/ptz/stop", "post", "Stop both axes", AUTHENTICATED),
        Route("/api/ptz/home", "post", "Go to the home position", AUTHENTICATED),
    )

    isLeaf = True
    methods = {"POST": ("post", roles.MOTOR_CONTROL)}

    def __init__(self, api, verb):
        super().__init__(api)
        self.verb = verb

    def post(self, request, principal):
        motor, verb = self.motor, self.verb
        if verb in ("stop", "home"):
            _body(request, ())
            return self._answer(motor.stop() if verb == "stop" else motor.home())
        if verb == "continuous":
            body = _body(request, ("pan_velocity", "tilt_velocity", "timeout"))
            pv = _value(body, "pan_velocity", -1.0, 1.0, 0.0)
            tv = _value(body, "tilt_velocity", -1.0, 1.0, 0.0)
            timeout = _value(body, "timeout", hi=MAX_TIMEOUT, above=0.0)
            return self._answer(motor.continuous_move(pv, tv, timeout=timeout))
        body = _body(request, ("pan", "tilt", "speed"))
        lim = motor.limits()
        speed = _value(body, "speed", above=0.0, hi=MAX_SPEED)
        if verb == "move":
            pan = _value(body, "pan", lim["pan_min"], lim["pan_max"])
            tilt = _value(body, "tilt", lim["tilt_min"], lim["tilt_max"])
            if pan is None and tilt is None:
                raise ApiError(400, "give pan, tilt or both", key="pan")
            return self._answer(motor.absolute_move(pan, tilt, speed))
        pan = _value(body, "pan", lim["pan_min"] - lim["pan_max"], lim["pan_max"] - lim["pan_min"],
                     0.0)
        tilt = _value(body, "tilt", lim["tilt_min"] - lim["tilt_max"],
                      lim["tilt_max"] - lim["tilt_min"], 0.0)
        # A step past a limit stops at the limit (as a hand on a joystick would).
        now = motor.status()
        pan = min(max(now["pan"] + pan, lim["pan_min"]), lim["pan_max"]) - now["pan"]
        tilt = min(max(now["tilt"] + tilt, lim["tilt_min"]), lim["tilt_max"]) - now["tilt"]
        return self._answer(motor.relative_move(pan, tilt, speed))


class Presets(PtzResource):
    """GET /api/ptz/presets; POST {"name"} stores the current position as a preset."""

    routes = (
        Route("/api/ptz/presets", "get", "The stored positions: token, name, pan, tilt", VIEWER),
        Route("/api/ptz/presets", "post", "Store the current position under a name; answers "
              "its token", AUTHENTICATED, body=PRESET_BODY, status=201),
    )

    methods = {"GET": ("get", roles.STATUS_READ), "POST": ("post", roles.MOTOR_CONTROL)}

    def get(self, request, principal):
        return {"presets": self.motor.presets()}

    def post(self, request, principal):
        name = _body(request, ("name",)).get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
            # The schema's pattern: at least one character that is not white space.
            raise ApiError(400, "name must be a non-empty string of at most %d characters"
                           % MAX_NAME, "INVALID_VALUE", key="name")
        token = self.motor.set_preset(name.strip())
        request.setResponseCode(201)
        return {"token": token, "name": name.strip()}

    def getChild(self, name, request):
        return OnePreset(self.api, name.decode("utf-8", "replace"))


class OnePreset(PtzResource):
    """DELETE /api/ptz/presets/<token>."""

    routes = (
        Route("/api/ptz/presets/{token}", "delete", "Delete a preset", AUTHENTICATED),
    )

    methods = {"DELETE": ("delete", roles.MOTOR_CONTROL)}

    def __init__(self, api, token):
        super().__init__(api)
        self.token = token
        self.putChild(b"goto", PresetGoto(api, token))

    def delete(self, request, principal):
        known(self.motor, self.token)
        self.motor.remove_preset(self.token)
        return {"deleted": self.token}


class PresetGoto(PtzResource):
    """POST /api/ptz/presets/<token>/goto."""

    routes = (
        Route("/api/ptz/presets/{token}/goto", "post", "Move to a preset (optional speed)",
              AUTHENTICATED, body=GOTO_BODY),
    )

    isLeaf = True
    methods = {"POST": ("post", roles.MOTOR_CONTROL)}

    def __init__(self, api, token):
        super().__init__(api)
        self.token = token

    def post(self, request, principal):
        known(self.motor, self.token)
        speed = _value(_body(request, ("speed",), required=False), "speed", above=0.0,
                       hi=MAX_SPEED)
        return self._answer(self.motor.goto_preset(self.token, speed))


def known(motor, token):
    """404 unless ``token`` names a preset."""
    if token not in {p["token"] for p in motor.presets()}:
        raise ApiError(404, "no preset %r" % token[:64])


# The classes made per request, for the OpenAPI document.
Presets.child_classes = (OnePreset,)
OnePreset.child_classes = (PresetGoto,)
