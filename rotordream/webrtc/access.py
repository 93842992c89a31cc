"""Who may open a WebRTC session and who may touch one: slots, owners, the viewer key.

Slots (``[webrtc]``): the rule every protocol shares, :mod:`rotordream.auth.slots`.
Authenticated users have no per-address cap (an NVR or a family behind one NAT
address is normal).

Owners: a signed-in user owns the sessions opened under their name. Every anonymous
client is called "anonymous", so its sessions are bound instead to the *viewer key*,
a 256-bit secret the daemon gives the opener in an HttpOnly, SameSite=Strict cookie,
together with the source address the offer came from: another anonymous client lacks
the key, and a stolen key is useless from another address. Operators and admins
(``camera.control``) may manage every session. A refusal is the same 403 whatever the
reason, so nobody learns more than "not yours".
"""

import hmac
import secrets
from dataclasses import dataclass

from rotordream.auth import roles, slots
from rotordream.webrtc import WebRTCError

KEY_BYTES = 32
KEY_LENGTH = len(secrets.token_urlsafe(KEY_BYTES))   # 43 url-safe characters


@dataclass(frozen=True)
class Caller:
    """One request's side of a session: the principal, its source address, the key it
    presented (the viewer-key cookie, or None)."""

    principal: object
    client: str = "local"
    key: str = None

    @property
    def authenticated(self):
        """True when the request carried valid credentials."""
        return bool(self.principal.authenticated)

    @property
    def manages_all(self):
        """Operators and admins see, switch and end every session."""
        return self.principal.can(roles.CAMERA_CONTROL)


def new_key():
    """A fresh viewer key."""
    return secrets.token_urlsafe(KEY_BYTES)


def same_key(known, presented):
    """True when ``presented`` is the viewer key ``known`` (compared in constant time)."""
    return (isinstance(presented, str) and len(presented) == KEY_LENGTH
            and hmac.compare_digest(known.encode(), presented.encode("utf-8", "replace")))


def owns(session, caller):
    """True when ``caller`` opened ``session`` (see the module docstring)."""
    if caller.authenticated:
        return session.authenticated and session.user == caller.principal.name
    return (not session.authenticated and session.client == caller.client
            and same_key(session.key, caller.key))


def may_manage(session, caller):
    """True when ``caller`` may answer, switch or end ``session``."""
    return caller.manages_all or owns(session, caller)


def key_for(sessions, caller):
    """The viewer key a new session of ``caller`` gets: the one it presented when that key
    already owns a live session of the same caller (one browser, several tabs), else a
    new one. A key the daemon did not hand to this caller is never adopted."""
    if any(owns(s, caller) and same_key(s.key, caller.key) for s in sessions):
        return caller.key
    return new_key()


def admit(sessions, caller, config):
    """Raise a 429 :class:`WebRTCError` when ``caller`` may not open another session now.

    ``sessions`` are the live ones; ``config`` is the ``[webrtc]`` section.
    """
    total = config.max_sessions
    here = sum(1 for s in sessions if not s.authenticated and s.client == caller.client)
    why = slots.refusal(len(sessions), here, caller.authenticated, total,
                        config.reserved_sessions, config.max_sessions_per_address)
    if why == slots.FULL:
        _refuse("all %d WebRTC sessions are taken" % total, total, config)
    if why == slots.ANONYMOUS_SHARE:
        shared = max(0, total - config.reserved_sessions)
        _refuse("the last %d of %d WebRTC sessions are kept for signed-in users; log in "
                "to watch" % (total - shared, total), shared, config)
    if why == slots.ADDRESS_CAP:
        _refuse("this address already holds %d WebRTC sessions (max_sessions_per_address)"
                % here, config.max_sessions_per_address, config)


def _refuse(message, limit, config):
    raise WebRTCError(429, message, "RATE_LIMITED", limit=limit,
                      retry_after=config.offer_timeout)
