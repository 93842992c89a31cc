"""ONVIF scopes: the fixed ones, name/location from the state, and extra configurable ones.

``current(ctx)`` is what GetScopes answers. Every scope is camera state
(:mod:`rotordream.state`): the fixed ones and the name and location scopes
come from ``rotordream.scopes.device_scopes``, which WS-Discovery announces too; name and
location map to the ``device-name`` and ``device-location`` keys; the other
configurable scopes are ``state.scopes`` (persisted, observed by discovery).
"""

from urllib.parse import unquote

from rotordream.onvif import hostinfo
from rotordream.scopes import ONVIF_SCOPE as PREFIX
from rotordream.scopes import device_scopes

MAX_SCOPES = 32


def _base(ctx):
    """Fixed scopes plus name and location, as WS-Discovery announces them."""
    name, location = ctx.state.get("device-name"), ctx.state.get("device-location")
    return list(device_scopes(name, location, hostinfo.primary_mac()))


def _configurable(scope):
    return scope.startswith(PREFIX + "name/") or scope.startswith(PREFIX + "location/")


def fixed(ctx):
    """Scopes no client may change."""
    return [s for s in _base(ctx) if not _configurable(s)]


def extra(ctx):
    """Configurable scopes other than name and location."""
    return list(ctx.state.scopes.get())


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
    """Keep the extra configurable scopes (WS-Discovery observes them and announces)."""
    ctx.state.scopes.set(scope_list)
