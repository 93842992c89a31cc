"""The device's ONVIF scopes (ONVIF Core 7.3.2.1): one definition, pure.

The camera state keeps the configurable ones; WS-Discovery announces them all and
ONVIF's GetScopes answers with them.
"""

from urllib.parse import quote

ONVIF_SCOPE = "onvif://www.onvif.org/"
FIXED_SCOPES = (ONVIF_SCOPE + "type/video_encoder", ONVIF_SCOPE + "type/ptz",
                ONVIF_SCOPE + "Profile/Streaming", ONVIF_SCOPE + "hardware/RotorDream")


def scope_value(text):
    """``text`` as one scope path segment: UTF-8, percent-encoded, no spaces or slashes."""
    return quote(text, safe="")


def device_scopes(name, location="", mac=None):
    """The ONVIF scopes of the device: types, Profile S, hardware, name, location and MAC.

    Empty values are left out rather than announced as an empty segment.
    """
    scopes = list(FIXED_SCOPES)
    if name:
        scopes.append(ONVIF_SCOPE + "name/" + scope_value(name))
    if location:
        scopes.append(ONVIF_SCOPE + "location/" + scope_value(location))
    if mac:
        # Colons are legal in a path segment; NVRs show the MAC as written.
        scopes.append(ONVIF_SCOPE + "MAC/" + quote(mac.lower(), safe=":"))
    return tuple(scopes)
