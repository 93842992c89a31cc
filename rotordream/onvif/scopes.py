"""ONVIF scopes: the fixed ones, name/location from the state, and extra configurable ones.

``current(ctx)`` is what GetScopes answers; the fixed, name and location scopes
come from ``rotordream.discovery.message.device_scopes`` so ProbeMatches say the
same. Extra scopes (AddScopes/SetScopes) are pushed to ``ctx.discovery``'s
``set_extra_scopes`` when the discovery service is on the context.
Name and location scopes map to the ``device-name`` and ``device-location``
state keys; other configurable scopes persist in ``<state_dir>/onvif-scopes.json``.
"""

import json
import os
from urllib.parse import quote, unquote

from rotordream.fsutil import atomic_write
from rotordream.onvif import hostinfo

PREFIX = "onvif://www.onvif.org/"
SCOPES_FILE = "onvif-scopes.json"
MAX_SCOPES = 32
HARDWARE = "RotorDream"


def _base(ctx):
    """Fixed scopes plus name and location, as WS-Discovery announces them."""
    name, location = ctx.state.get("device-name"), ctx.state.get("device-location")
    mac = hostinfo.primary_mac()
    try:
        from rotordream.discovery.message import device_scopes
    except ImportError:
        device_scopes = None
    if device_scopes is not None:
        # One definition of the scopes: GetScopes and ProbeMatches must agree.
        return list(device_scopes(name, location, mac))
    out = [PREFIX + "type/video_encoder", PREFIX + "type/ptz", PREFIX + "Profile/Streaming",
           PREFIX + "hardware/" + HARDWARE]
    if name:
        out.append(PREFIX + "name/" + quote(name, safe=""))
    if location:
        out.append(PREFIX + "location/" + quote(location, safe=""))
    return out + [PREFIX + "MAC/" + quote(mac.lower(), safe=":")]


def _configurable(scope):
    return scope.startswith(PREFIX + "name/") or scope.startswith(PREFIX + "location/")


def fixed(ctx):
    """Scopes no client may change."""
    return [s for s in _base(ctx) if not _configurable(s)]


def _path(ctx):
    return os.path.join(ctx.config.server.state_dir, SCOPES_FILE)


def extra(ctx):
    """Configurable scopes other than name and location."""
    try:
        with open(_path(ctx)) as f:
            data = json.load(f)
        return [s for s in data if isinstance(s, str)]
    except (OSError, ValueError, TypeError):
        return []


def current(ctx):
    """[(scope URI, is_fixed)] in announcement order."""
    return [(s, not _configurable(s)) for s in _base(ctx)] + [(s, False) for s in extra(ctx)]


def split(scope_list):
    """({state key: value} for name/location scopes, [other scopes]) from client scopes."""
    keys, others = {}, []
    for scope in scope_list:
        if scope.startswith(PREFIX + "name/"):
            keys["device-name"] = unquote(scope[len(PREFIX + "name/"):])
        elif scope.startswith(PREFIX + "location/"):
            keys["device-location"] = unquote(scope[len(PREFIX + "location/"):])
        else:
            others.append(scope)
    return keys, others


def save_extra(ctx, scope_list):
    """Persist the extra configurable scopes; tell WS-Discovery (if it runs) to announce them."""
    scope_list = list(dict.fromkeys(scope_list))
    atomic_write(_path(ctx), json.dumps(scope_list).encode())
    discovery = getattr(ctx, "discovery", None)
    if discovery is not None and hasattr(discovery, "set_extra_scopes"):
        discovery.set_extra_scopes(scope_list)
