"""The control WebSocket's messages, without I/O: one ControlSession per connection.

``handle(text)`` turns one client message into the replies to send back
(contract.md): set keys (all or nothing, confirmed with ``info``), get keys,
in-band login. Errors are ``{"error", "key", "code"}`` replies; nothing
changes on an error and the connection stays open.
"""

import json

from rotordream.auth.service import AuthError
from rotordream.state import StateError


def error(message, key=None, code="BAD_REQUEST", **extra):
    """An error reply."""
    out = {"error": message, "key": key, "code": code}
    out.update(extra)
    return out


class ControlSession:
    """The state of one WebSocket client: who it is, and how to answer it."""

    def __init__(self, state, auth, principal, client=None, origin="websocket"):
        self.state = state
        self.auth = auth
        self.principal = principal
        self.client = client
        self.origin = origin

    def readable(self, changes):
        """The part of a broadcast this client may read, or None."""
        can = self.principal.can
        specs = self.state.specs
        out = {k: v for k, v in changes.items() if can(specs[k].read)}
        return out or None

    def handle(self, text):
        """Answer one text message; return the list of reply dicts."""
        try:
            msg = json.loads(text)
        except (ValueError, TypeError, RecursionError):
            # RecursionError: nesting deeper than the decoder allows fits in a small
            # message; left uncaught it would drop the connection.
            return [error("message is not valid JSON")]
        if not isinstance(msg, dict):
            return [error("message must be a JSON object")]
        if not msg:
            return [error("empty message")]
        if "get" in msg:
            if len(msg) != 1:
                return [error("get goes alone in its message", "get")]
            return [self._get(msg["get"])]
        if set(msg) == {"username", "password"} or set(msg) == {"token"}:
            return [self._login(msg)]
        return [self._set(msg)]

    def _get(self, keys):
        if keys != "*" and not (isinstance(keys, list) and keys and
                                all(isinstance(k, str) for k in keys)):
            return error('get takes a list of key names or "*"', "get")
        try:
            return self.state.read(keys, self.principal)
        except StateError as e:
            return e.as_dict()

    def _login(self, msg):
        try:
            if "token" in msg:
                if not isinstance(msg["token"], str):
                    raise AuthError("token must be a string")
                principal = self.auth.check_token(msg["token"])
            else:
                principal = self.auth.check_password(msg["username"], msg["password"],
                                                     self.client)
        except AuthError as e:
            extra = {"retry_after": e.retry_after} if e.retry_after else {}
            return error(e.message, None, e.code, **extra)
        self.principal = principal
        return {"authenticated": True, "user": principal.name, "role": principal.role,
                "permissions": sorted(principal.permissions)}

    def _set(self, msg):
        try:
            result = self.state.set(msg, self.principal, origin=self.origin)
        except StateError as e:
            return e.as_dict()
        reply = {}
        for key in msg:
            name = self.state.spec(key).name
            if name in result.info:
                reply[name] = result.info[name]
            elif self.state.specs[name].kind == "trigger":
                reply[name] = True
            else:
                reply[name] = self.state.get(name)
        reply["info"] = list(reply)
        return reply
