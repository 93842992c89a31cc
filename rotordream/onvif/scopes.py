"""ONVIF scopes: the fixed ones, name/location from the state, and extra configurable ones.

``current(ctx)`` is what GetScopes and WS-Discovery ProbeMatches announce.
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


def fixed(ctx):
    """Scopes no client may change."""
    return [PREFIX + "Profile/Streaming", PREFIX + "type/video_encoder", PREFIX + "type/ptz",
            PREFIX + "type/Network_Video_Transmitter", PREFIX + "hardware/" + HARDWARE,
            PREFIX + "MAC/" + hostinfo.primary_mac()]


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


def configurable(ctx):
    """Name, location (from the state) and extra scopes."""
    out = [PREFIX + "name/" + quote(ctx.state.get("device-name"), safe="")]
    location = ctx.state.get("device-location")
    if location:
        out.append(PREFIX + "location/" + quote(location, safe=""))
    return out + extra(ctx)


def current(ctx):
    """[(scope URI, is_fixed)] in announcement order."""
    return [(s, True) for s in fixed(ctx)] + [(s, False) for s in configurable(ctx)]


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
    """Persist the extra configurable scopes."""
    atomic_write(_path(ctx), json.dumps(list(dict.fromkeys(scope_list))).encode())
