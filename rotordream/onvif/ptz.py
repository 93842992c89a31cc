"""The ONVIF PTZ service (ver20) over the motor service (rotordream.interfaces.IMotorController).

Spaces: the generic position/translation/velocity/speed spaces ([-1, 1]
mapped linearly onto the axis limits) and the FOV translation space (x, y of
-1..1 move by half the field of view). ``tt:Wiper|On``/``Off`` drive the
rotor (clear-view disc) through the ``rotor-enabled`` state key.

Why it is long: one WSDL service with its 20 operations, the node and
configuration descriptions they share and the space conversions; each
operation is a short function.
"""

import re
import time

from rotordream.auth import roles
from rotordream.onvif import soap
from rotordream.onvif.dispatch import PRE_AUTH, Table
from rotordream.onvif.soap import E

OPS = Table("tptz")

NODE = "ptz_node"
CONFIG = "ptz_config"
PROFILES = ("stream1", "stream2")
SPACES = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/"
ABS_GENERIC = SPACES + "PositionGenericSpace"
REL_GENERIC = SPACES + "TranslationGenericSpace"
REL_FOV = SPACES + "TranslationSpaceFov"
VEL_GENERIC = SPACES + "VelocityGenericSpace"
SPEED_GENERIC = SPACES + "GenericSpeedSpace"
AUX_COMMANDS = ("tt:Wiper|On", "tt:Wiper|Off")
MAX_PRESETS = 32
DEFAULT_TIMEOUT = 30.0     # seconds a ContinuousMove lasts without its own Timeout
MAX_TIMEOUT = 300.0
# The lens' field of view in degrees (fixed lens), for the FOV translation space.
HFOV, VFOV = 60.0, 34.0

_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d*)?)S)?)?$")


def parse_duration(text):
    """Seconds in an xs:duration like ``PT5S``, ``PT0.5S`` or ``PT1M30S``; InvalidArgVal else."""
    m = _DURATION.match((text or "").strip())
    if not m or text.strip() in ("P", "PT"):
        raise soap.invalid_arg("ter:InvalidArgVal", "not a duration: %r" % (text,))
    d, h, mi, s = m.groups()
    return int(d or 0) * 86400 + int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0)


def available(call):
    """True when a motor controller is configured."""
    return call.ctx.motor is not None


def _motor(call):
    if call.ctx.motor is None:
        raise soap.SoapFault("Receiver", ("ter:ActionNotSupported", "ter:PTZNotSupported"),
                             "this camera runs without a motor controller")
    return call.ctx.motor


def _limits(call):
    return _motor(call).limits()


def to_generic(value, lo, hi):
    """Degrees -> [-1, 1] across the axis range."""
    return max(-1.0, min(1.0, 2.0 * (value - lo) / (hi - lo) - 1.0))


def from_generic(x, lo, hi):
    """[-1, 1] -> degrees across the axis range."""
    return lo + (x + 1.0) / 2.0 * (hi - lo)


def _range(tag, lo, hi):
    return E(tag, E("tt:Min", lo), E("tt:Max", hi))


def _space2d(tag, uri, lo=-1.0, hi=1.0):
    return E(tag, E("tt:URI", uri), _range("tt:XRange", lo, hi), _range("tt:YRange", lo, hi))


def _spaces():
    return [_space2d("tt:AbsolutePanTiltPositionSpace", ABS_GENERIC),
            _space2d("tt:RelativePanTiltTranslationSpace", REL_GENERIC),
            _space2d("tt:RelativePanTiltTranslationSpace", REL_FOV),
            _space2d("tt:ContinuousPanTiltVelocitySpace", VEL_GENERIC),
            E("tt:PanTiltSpeedSpace", E("tt:URI", SPEED_GENERIC), _range("tt:XRange", 0.0, 1.0))]


def node(call, tag="tptz:PTZNode"):
    """The one PTZ node (pan/tilt, no zoom) with its spaces, presets and aux commands."""
    return E(tag, E("tt:Name", "Pan/tilt head"),
             E("tt:SupportedPTZSpaces", _spaces()),
             E("tt:MaximumNumberOfPresets", MAX_PRESETS), E("tt:HomeSupported", True),
             [E("tt:AuxiliaryCommands", c) for c in AUX_COMMANDS],
             token=NODE, FixedHomePosition=False)


def configuration(call, tag="tptz:PTZConfiguration"):
    """The one PTZ configuration (also in the media profiles)."""
    return E(tag, E("tt:Name", "Pan/tilt"), E("tt:UseCount", len(PROFILES)),
             E("tt:NodeToken", NODE),
             E("tt:DefaultAbsolutePantTiltPositionSpace", ABS_GENERIC),
             E("tt:DefaultRelativePanTiltTranslationSpace", REL_GENERIC),
             E("tt:DefaultContinuousPanTiltVelocitySpace", VEL_GENERIC),
             E("tt:DefaultPTZSpeed", E("tt:PanTilt", x=1.0, y=1.0, space=SPEED_GENERIC)),
             E("tt:DefaultPTZTimeout", "PT%dS" % DEFAULT_TIMEOUT),
             E("tt:PanTiltLimits", _space2d("tt:Range", ABS_GENERIC)),
             token=CONFIG)


def service_capabilities(call):
    """tptz:Capabilities."""
    return E("tptz:Capabilities", EFlip=False, Reverse=False, GetCompatibleConfigurations=True,
             MoveStatus=True, StatusPosition=True)


def _profile(call):
    token = soap.value(call.request, "ProfileToken")
    if token not in PROFILES:
        raise soap.invalid_arg("ter:NoProfile", "no such profile %r" % (token,))
    return token


def _ok(name):
    return E("tptz:%sResponse" % name)


def _done(d, element):
    """Answer once the controller accepted the command (its failure becomes a fault)."""
    return d.addCallback(lambda _: element)


def _speed(call, el):
    """Degrees/s from a generic Speed element (None: the controller's default)."""
    pt = soap.child(soap.child(el, "Speed"), "PanTilt")
    if pt is None or pt.get("x") is None:
        return None
    try:
        x = max(0.0, min(1.0, float(pt.get("x"))))
    except ValueError:
        raise soap.invalid_arg("ter:InvalidSpeed", "speed x is not a number") from None
    return max(0.1, x * _limits(call)["pan_speed"]) if x else None


def _xy(el, space_default):
    """(x, y, space) of a tt:PanTilt vector element; None when absent."""
    if el is None:
        return None
    try:
        x = float(el.get("x", "0"))
        y = float(el.get("y", "0"))
    except ValueError:
        raise soap.invalid_arg("ter:InvalidPosition", "x and y must be numbers") from None
    return x, y, el.get("space") or space_default


# -- service description ------------------------------------------------------

@OPS.op("GetServiceCapabilities", PRE_AUTH)
def get_service_capabilities(call):
    """The PTZ service's capabilities."""
    return E("tptz:GetServiceCapabilitiesResponse", service_capabilities(call))


@OPS.op("GetNodes", roles.STATE_READ)
def get_nodes(call):
    """The pan/tilt node."""
    _motor(call)
    return E("tptz:GetNodesResponse", node(call))


@OPS.op("GetNode", roles.STATE_READ)
def get_node(call):
    """The node by token."""
    _motor(call)
    if soap.value(call.request, "NodeToken") != NODE:
        raise soap.invalid_arg("ter:NoEntity", "no such node")
    return E("tptz:GetNodeResponse", node(call, "tptz:PTZNode"))


@OPS.op("GetConfigurations", roles.STATE_READ)
def get_configurations(call):
    """The PTZ configuration."""
    _motor(call)
    return E("tptz:GetConfigurationsResponse", configuration(call))


@OPS.op("GetConfiguration", roles.STATE_READ)
def get_configuration(call):
    """The PTZ configuration by token."""
    _motor(call)
    if soap.value(call.request, "PTZConfigurationToken") != CONFIG:
        raise soap.invalid_arg("ter:NoConfig", "no such configuration")
    return E("tptz:GetConfigurationResponse", configuration(call))


@OPS.op("GetCompatibleConfigurations", roles.STATE_READ)
def get_compatible_configurations(call):
    """Every profile takes the one configuration."""
    _motor(call)
    _profile(call)
    return E("tptz:GetCompatibleConfigurationsResponse", configuration(call))


@OPS.op("GetConfigurationOptions", roles.STATE_READ)
def get_configuration_options(call):
    """Spaces and the ContinuousMove timeout range."""
    _motor(call)
    if soap.value(call.request, "ConfigurationToken") != CONFIG:
        raise soap.invalid_arg("ter:NoConfig", "no such configuration")
    return E("tptz:GetConfigurationOptionsResponse", E(
        "tptz:PTZConfigurationOptions", E("tt:Spaces", _spaces()),
        _range("tt:PTZTimeout", "PT1S", "PT%dS" % MAX_TIMEOUT)))


@OPS.op("SetConfiguration", roles.MOTOR_CONTROL)
def set_configuration(call):
    """Only the one fixed configuration exists; accept it unchanged."""
    _motor(call)
    conf = soap.child(call.request, "PTZConfiguration")
    if conf is None or conf.get("token") != CONFIG:
        raise soap.invalid_arg("ter:NoConfig", "no such configuration")
    if soap.value(conf, "NodeToken") not in (None, NODE):
        raise soap.invalid_arg("ter:ConfigModify", "the node cannot be changed")
    return _ok("SetConfiguration")


# -- moves ---------------------------------------------------------------------------

@OPS.op("ContinuousMove", roles.MOTOR_CONTROL)
def continuous_move(call):
    """Move at a generic velocity until Stop or the timeout."""
    motor = _motor(call)
    _profile(call)
    vel = _xy(soap.child(soap.child(call.request, "Velocity"), "PanTilt"), VEL_GENERIC)
    if vel is None:
        return _ok("ContinuousMove")  # zoom only: we have none
    x, y, space = vel
    if space != VEL_GENERIC:
        raise soap.invalid_arg("ter:InvalidVelocity", "unsupported velocity space %s" % space)
    if abs(x) > 1 or abs(y) > 1:
        raise soap.invalid_arg("ter:InvalidVelocity", "velocities are -1 to 1")
    raw = soap.value(call.request, "Timeout")
    timeout = parse_duration(raw) if raw else DEFAULT_TIMEOUT
    timeout = max(0.1, min(MAX_TIMEOUT, timeout))
    return _done(motor.continuous_move(x, y, timeout=timeout), _ok("ContinuousMove"))


@OPS.op("AbsoluteMove", roles.MOTOR_CONTROL)
def absolute_move(call):
    """Move to a generic position."""
    motor = _motor(call)
    _profile(call)
    pos = _xy(soap.child(soap.child(call.request, "Position"), "PanTilt"), ABS_GENERIC)
    if pos is None:
        return _ok("AbsoluteMove")
    x, y, space = pos
    if space != ABS_GENERIC:
        raise soap.invalid_arg("ter:InvalidPosition", "unsupported position space %s" % space)
    if abs(x) > 1 or abs(y) > 1:
        raise soap.invalid_arg("ter:InvalidPosition", "positions are -1 to 1")
    lim = motor.limits()
    pan = from_generic(x, lim["pan_min"], lim["pan_max"])
    tilt = from_generic(y, lim["tilt_min"], lim["tilt_max"])
    return _done(motor.absolute_move(pan, tilt, _speed(call, call.request)), _ok("AbsoluteMove"))


@OPS.op("RelativeMove", roles.MOTOR_CONTROL)
def relative_move(call):
    """Move by a generic or field-of-view translation."""
    motor = _motor(call)
    _profile(call)
    tr = _xy(soap.child(soap.child(call.request, "Translation"), "PanTilt"), REL_GENERIC)
    if tr is None:
        return _ok("RelativeMove")
    x, y, space = tr
    if abs(x) > 1 or abs(y) > 1:
        raise soap.invalid_arg("ter:InvalidTranslation", "translations are -1 to 1")
    lim = motor.limits()
    if space == REL_GENERIC:
        dpan = x * (lim["pan_max"] - lim["pan_min"]) / 2.0
        dtilt = y * (lim["tilt_max"] - lim["tilt_min"]) / 2.0
    elif space == REL_FOV:
        dpan, dtilt = x * HFOV / 2.0, y * VFOV / 2.0
    else:
        raise soap.invalid_arg("ter:InvalidTranslation", "unsupported space %s" % space)
    return _done(motor.relative_move(dpan, dtilt, _speed(call, call.request)),
                 _ok("RelativeMove"))


@OPS.op("Stop", roles.MOTOR_CONTROL)
def stop(call):
    """Stop pan/tilt (Zoom is accepted: there is none)."""
    motor = _motor(call)
    _profile(call)
    pan_tilt = soap.boolean(call.request, "PanTilt", True)
    if not pan_tilt:
        return _ok("Stop")
    return _done(motor.stop(), _ok("Stop"))


@OPS.op("GetStatus", roles.STATE_READ)
def get_status(call):
    """Position (generic space), IDLE/MOVING and any motor fault."""
    motor = _motor(call)
    _profile(call)
    s, lim = motor.status(), motor.limits()
    moving = s.get("pan_moving") or s.get("tilt_moving") or s.get("state") == "moving"
    error = None
    if s.get("state") == "fault" or not s.get("connected", True):
        error = E("tt:Error", "motor controller %s" % ("fault" if s.get("connected", True)
                                                        else "disconnected"))
    return E("tptz:GetStatusResponse", E(
        "tptz:PTZStatus",
        E("tt:Position", E("tt:PanTilt", x=to_generic(s["pan"], lim["pan_min"], lim["pan_max"]),
                           y=to_generic(s["tilt"], lim["tilt_min"], lim["tilt_max"]),
                           space=ABS_GENERIC)),
        E("tt:MoveStatus", E("tt:PanTilt", "MOVING" if moving else "IDLE")),
        error,
        E("tt:UtcTime", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))))


# -- presets and home -------------------------------------------------------------------

def _preset(call, p, lim):
    return E("tptz:Preset", E("tt:Name", p["name"]), E(
        "tt:PTZPosition", E("tt:PanTilt", x=to_generic(p["pan"], lim["pan_min"], lim["pan_max"]),
                            y=to_generic(p["tilt"], lim["tilt_min"], lim["tilt_max"]),
                            space=ABS_GENERIC)), token=p["token"])


@OPS.op("GetPresets", roles.STATE_READ)
def get_presets(call):
    """Stored presets with their positions."""
    motor = _motor(call)
    _profile(call)
    lim = motor.limits()
    return E("tptz:GetPresetsResponse", [_preset(call, p, lim) for p in motor.presets()])


@OPS.op("SetPreset", roles.MOTOR_CONTROL)
def set_preset(call):
    """Store the current position (new, or over an existing token)."""
    motor = _motor(call)
    _profile(call)
    name = soap.value(call.request, "PresetName")
    token = soap.value(call.request, "PresetToken") or None
    presets = {p["token"]: p for p in motor.presets()}
    if token is not None and token not in presets:
        raise soap.invalid_arg("ter:NoToken", "no preset %r" % token)
    if token is None and len(presets) >= MAX_PRESETS:
        raise soap.receiver(("ter:Action", "ter:TooManyPresets"), "no room for more presets")
    if name is not None and (len(name) > 64 or any(ord(c) < 32 for c in name)):
        raise soap.invalid_arg("ter:InvalidPresetName", "preset names are 1-64 characters")
    if name and any(p["name"] == name and p["token"] != token for p in presets.values()):
        raise soap.invalid_arg("ter:PresetExist", "a preset named %r exists" % name)
    if not name:
        name = presets[token]["name"] if token else "Preset %d" % (len(presets) + 1)
    token = motor.set_preset(name, token)
    return E("tptz:SetPresetResponse", E("tptz:PresetToken", token))


@OPS.op("GotoPreset", roles.MOTOR_CONTROL)
def goto_preset(call):
    """Move to a preset."""
    motor = _motor(call)
    _profile(call)
    token = soap.value(call.request, "PresetToken")
    try:
        d = motor.goto_preset(token, _speed(call, call.request))
    except KeyError:
        raise soap.invalid_arg("ter:NoToken", "no preset %r" % token) from None
    return _done(d, _ok("GotoPreset"))


@OPS.op("RemovePreset", roles.MOTOR_CONTROL)
def remove_preset(call):
    """Delete a preset."""
    motor = _motor(call)
    _profile(call)
    token = soap.value(call.request, "PresetToken")
    try:
        motor.remove_preset(token)
    except KeyError:
        raise soap.invalid_arg("ter:NoToken", "no preset %r" % token) from None
    return _ok("RemovePreset")


@OPS.op("GotoHomePosition", roles.MOTOR_CONTROL)
def goto_home_position(call):
    """Move to the home position."""
    motor = _motor(call)
    _profile(call)
    return _done(motor.home(), _ok("GotoHomePosition"))


@OPS.op("SetHomePosition", roles.MOTOR_CONTROL)
def set_home_position(call):
    """Make the current position home."""
    motor = _motor(call)
    _profile(call)
    motor.set_home()
    return _ok("SetHomePosition")


@OPS.op("SendAuxiliaryCommand", roles.MOTOR_CONTROL)
def send_auxiliary_command(call):
    """``tt:Wiper|On``/``Off``: start or stop the rotor (clear-view disc)."""
    _motor(call)
    _profile(call)
    command = soap.value(call.request, "AuxiliaryData")
    if command not in AUX_COMMANDS:
        raise soap.invalid_arg("ter:InvalidArgVal", "supported commands: %s"
                               % ", ".join(AUX_COMMANDS))
    # Through the state: the motor service's action drives the rotor, and every
    # REST/WebSocket client sees rotor-enabled change.
    call.ctx.state.set({"rotor-enabled": command.endswith("On")}, call.principal,
                       origin="onvif")
    return E("tptz:SendAuxiliaryCommandResponse", E("tptz:AuxiliaryResponse", command))
