"""The ONVIF Imaging service (ver20) over the image state keys.

The options advertise 0-100 for brightness, colour saturation, contrast and
sharpness, the state keys' own range, so values map one to one and a change
made here is the change REST and WebSocket clients see. Exposure and white
balance modes map to ``auto-exposure``/``auto-white-balance``, the gains to
``gain``, ``red-gain`` (Cr) and ``blue-gain`` (Cb).
"""

from rotordream.auth import roles
from rotordream.onvif import soap
from rotordream.onvif.dispatch import PRE_AUTH, Table
from rotordream.onvif.soap import E

OPS = Table("timg")

SOURCE = "video_source"
# ONVIF element -> state key (all 0-100).
LEVELS = (("Brightness", "brightness"), ("ColorSaturation", "saturation"),
          ("Contrast", "contrast"))


def service_capabilities(call):
    """timg:Capabilities."""
    return E("timg:Capabilities", ImageStabilization=False, Presets=False,
             AdaptablePreset=False)


def _source(call):
    token = soap.value(call.request, "VideoSourceToken")
    if token != SOURCE:
        raise soap.invalid_arg("ter:NoSource", "no such video source %r" % (token,))


def _float(value):
    return float(value)


def settings(state, tag="timg:ImagingSettings"):
    """tt:ImagingSettings20 from the state."""
    return E(tag,
             [E("tt:" + name, _float(state.get(key))) for name, key in LEVELS],
             E("tt:Exposure", E("tt:Mode", "AUTO" if state.get("auto-exposure") else "MANUAL"),
               E("tt:Gain", _float(state.get("gain")))),
             E("tt:Sharpness", _float(state.get("sharpness"))),
             E("tt:WhiteBalance",
               E("tt:Mode", "AUTO" if state.get("auto-white-balance") else "MANUAL"),
               E("tt:CrGain", _float(state.get("red-gain"))),
               E("tt:CbGain", _float(state.get("blue-gain")))))


def _range(tag, lo=0.0, hi=100.0):
    return E(tag, E("tt:Min", lo), E("tt:Max", hi))


@OPS.op("GetServiceCapabilities", PRE_AUTH)
def get_service_capabilities(call):
    """The imaging service's capabilities."""
    return E("timg:GetServiceCapabilitiesResponse", service_capabilities(call))


@OPS.op("GetImagingSettings", roles.STATE_READ)
def get_imaging_settings(call):
    """The current image settings."""
    _source(call)
    return E("timg:GetImagingSettingsResponse", settings(call.ctx.state))


@OPS.op("GetOptions", roles.STATE_READ)
def get_options(call):
    """Ranges and modes SetImagingSettings accepts."""
    _source(call)
    return E("timg:GetOptionsResponse", E(
        "timg:ImagingOptions",
        [_range("tt:" + name) for name, _ in LEVELS],
        E("tt:Exposure", E("tt:Mode", "AUTO"), E("tt:Mode", "MANUAL"),
          _range("tt:MinExposureTime", 0.0, 0.0), _range("tt:MaxExposureTime", 0.0, 0.0),
          _range("tt:MinGain"), _range("tt:MaxGain"),
          _range("tt:MinIris", 0.0, 0.0), _range("tt:MaxIris", 0.0, 0.0),
          _range("tt:ExposureTime", 0.0, 0.0), _range("tt:Gain"), _range("tt:Iris", 0.0, 0.0)),
        _range("tt:Sharpness"),
        E("tt:WhiteBalance", E("tt:Mode", "AUTO"), E("tt:Mode", "MANUAL"),
          _range("tt:YrGain"), _range("tt:YbGain"))))


@OPS.op("GetMoveOptions", roles.STATE_READ)
def get_move_options(call):
    """No focus motor: no move options."""
    _source(call)
    return E("timg:GetMoveOptionsResponse", E("timg:MoveOptions"))


@OPS.op("Move", roles.CAMERA_CONTROL)
def move(call):
    """There is no focus to move."""
    _source(call)
    raise soap.receiver(("ter:ActionNotSupported", "ter:NoImagingForSource"),
                        "the lens has fixed focus")


@OPS.op("Stop", roles.CAMERA_CONTROL)
def stop(call):
    """Nothing moves; stopping is always done."""
    _source(call)
    return E("timg:StopResponse")


@OPS.op("GetStatus", roles.STATE_READ)
def get_status(call):
    """Fixed focus: an empty status."""
    _source(call)
    return E("timg:GetStatusResponse", E("timg:Status"))


def _level(el, name):
    raw = soap.number(el, name)
    if raw is None:
        return None
    if not 0.0 <= raw <= 100.0:
        raise soap.invalid_arg("ter:SettingsInvalid", "%s must be 0-100" % name)
    return int(round(raw))


@OPS.op("SetImagingSettings", roles.CAMERA_CONTROL)
def set_imaging_settings(call):
    """Apply the given settings to the state in one batch (all or nothing)."""
    _source(call)
    el = soap.child(call.request, "ImagingSettings")
    if el is None:
        raise soap.invalid_arg("ter:SettingsInvalid", "no ImagingSettings given")
    changes = {}
    for name, key in LEVELS + (("Sharpness", "sharpness"),):
        level = _level(el, name)
        if level is not None:
            changes[key] = level
    for path, key in (("Exposure/Mode", "auto-exposure"),
                      ("WhiteBalance/Mode", "auto-white-balance")):
        mode = soap.value(el, path)
        if mode:
            if mode not in ("AUTO", "MANUAL"):
                raise soap.invalid_arg("ter:SettingsInvalid", "%s is AUTO or MANUAL" % path)
            changes[key] = mode == "AUTO"
    for path, key in (("Exposure/Gain", "gain"), ("WhiteBalance/CrGain", "red-gain"),
                      ("WhiteBalance/CbGain", "blue-gain")):
        parent, _, leaf = path.partition("/")
        level = _level(soap.child(el, parent), leaf)
        if level is not None:
            changes[key] = level
    state = call.ctx.state
    changes = {k: v for k, v in changes.items() if state.get(k) != v}
    if changes:
        state.set(changes, call.principal, origin="onvif")
    return E("timg:SetImagingSettingsResponse")
