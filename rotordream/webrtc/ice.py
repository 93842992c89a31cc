"""ICE servers for both ends of a session, with short-lived TURN credentials.

TURN REST credentials as coturn's ``use-auth-secret`` defines them: the
username is ``<expiry unix time>:<name>``, the password the base64 HMAC-SHA1
of that username under the secret the camera shares with the TURN server. A
viewer gets credentials that stop working ``lifetime`` seconds later, and the
secret never leaves the camera.
"""

import base64
import hashlib
import hmac

TURN_SCHEMES = ("turn:", "turns:")


def turn_credentials(secret, lifetime, now, name="rotordream"):
    """``(username, password)`` valid until ``now + lifetime`` for a ``use-auth-secret`` server."""
    username = "%d:%s" % (int(now) + int(lifetime), name)
    digest = hmac.new(secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def is_turn(url):
    """True for a ``turn:`` or ``turns:`` URL."""
    return url.lower().startswith(TURN_SCHEMES)


def ice_servers(urls, secret, lifetime, now, name="rotordream"):
    """RTCIceServer dicts (``urls``, and for TURN ``username``/``credential``) for ``urls``.

    STUN URLs share one entry; TURN URLs share another carrying fresh credentials when
    ``secret`` is set (without one a TURN URL is passed on bare).
    """
    stun = [u for u in urls if not is_turn(u)]
    turn = [u for u in urls if is_turn(u)]
    out = []
    if stun:
        out.append({"urls": stun})
    if turn:
        entry = {"urls": turn}
        if secret:
            entry["username"], entry["credential"] = turn_credentials(secret, lifetime, now,
                                                                      name)
        out.append(entry)
    return out


def _quoted(value):
    return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"')


def link_headers(servers):
    """The WHEP ``Link: <url>; rel="ice-server"`` header values for ``servers``."""
    out = []
    for server in servers:
        for url in server["urls"]:
            value = "<%s>; rel=\"ice-server\"" % url
            if "username" in server:
                value += "; username=%s; credential=%s; credential-type=\"password\"" % (
                    _quoted(server["username"]), _quoted(server["credential"]))
            out.append(value)
    return out
