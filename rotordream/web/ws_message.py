"""The control WebSocket's messages, without I/O: one ControlSession per connection.

``handle(text)`` turns one client message into the replies to send back
(contract.md): set keys (all or nothing, confirmed with ``info``), get keys,
in-band login. Errors are ``{"error", "key", "code"}`` replies; nothing
changes on an error and the connection stays open.

An in-band password login is answered when the password hash has been checked
(off the event loop). Replies keep the order of the messages: ``receive(text)``
holds the messages that arrive meanwhile (at most ``MAX_WAITING``) and answers
them after the login's reply, with the principal the login gave. A message
beyond that is answered at once with a RATE_LIMITED error and not acted on.
"""

import collections
import json

from twisted.internet import defer
from twisted.logger import Logger

from rotordream.auth.service import AuthError
from rotordream.state import StateError

log = Logger()


def error(message, key=None, code="BAD_REQUEST", **extra):
    """An error reply."""
    out = {"error": message, "key": key, "code": code}
    out.update(extra)
    return out


class ControlSession:
    """The state of one WebSocket client: who it is, and how to answer it.

    ``send(reply_dict)`` delivers the replies of :meth:`receive` and :meth:`refuse`.
    """

    MAX_WAITING = 16

    def __init__(self, state, auth, principal, client=None, origin="websocket", send=None):
        self.state = state
        self.auth = auth
        self.principal = principal
        self.client = client
        self.origin = origin
        self.send = send
        self._busy = False
        self._waiting = collections.deque()

    # -- in order -----------------------------------------------------------

    def receive(self, text):
        """Answer one message through ``send``, after the answers of earlier ones."""
        self._enqueue(text)

    def refuse(self, reply):
        """Send an error reply (e.g. a transport-level refusal) in its place in the order."""
        self._enqueue(reply)

    def _enqueue(self, item):
        if not self._busy:
            self._answer(item)
        elif len(self._waiting) < self.MAX_WAITING:
            self._waiting.append(item)
        else:
            self.send(error("%d messages already wait for the login's answer; this one was "
                            "not acted on" % self.MAX_WAITING, None, "RATE_LIMITED",
                            retry_after=1))

    def _answer(self, item):
        replies = [item] if isinstance(item, dict) else self.handle(item)
        if isinstance(replies, defer.Deferred):
            self._busy = True
            replies.addCallback(self._answered)
            return
        for reply in replies:
            self.send(reply)

    def _answered(self, replies):
        self._busy = False
        for reply in replies:
            self.send(reply)
        while self._waiting and not self._busy:
            self._answer(self._waiting.popleft())

    def close(self):
        """The connection ended: answer nothing more."""
        self._waiting.clear()
        self.send = lambda reply: None

    # -- one message ----------------------------------------------------------

    def readable(self, changes):
        """The part of a broadcast this client may read, or None."""
        can = self.principal.can
        specs = self.state.specs
        out = {k: v for k, v in changes.items() if can(specs[k].read)}
        return out or None

    def handle(self, text):
        """Answer one text message: the list of reply dicts, or a Deferred of it (login)."""
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
        if set(msg) == {"token"}:
            return [self._token_login(msg["token"])]
        if set(msg) == {"username", "password"}:
            d = defer.maybeDeferred(self.auth.check_password, msg["username"], msg["password"],
                                    self.client, protocol="websocket")
            d.addCallbacks(self._logged_in, self._login_refused)
            d.addErrback(self._login_crashed)
            return d.addCallback(lambda reply: [reply])
        return [self._set(msg)]

    def _get(self, keys):
        if keys != "*" and not (isinstance(keys, list) and keys and
                                all(isinstance(k, str) for k in keys)):
            return error('get takes a list of key names or "*"', "get")
        try:
            return self.state.read(keys, self.principal)
        except StateError as e:
            return e.as_dict()

    def _token_login(self, token):
        try:
            if not isinstance(token, str):
                raise AuthError("token must be a string")
            return self._logged_in(self.auth.check_token(token))
        except AuthError as e:
            return _auth_error(e)

    def _logged_in(self, principal):
        self.principal = principal
        return {"authenticated": True, "user": principal.name, "role": principal.role,
                "permissions": sorted(principal.permissions)}

    def _login_refused(self, failure):
        failure.trap(AuthError)
        return _auth_error(failure.value)

    def _login_crashed(self, failure):
        log.failure("in-band login failed", failure)
        return error("internal error", None, "INTERNAL")

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


def _auth_error(e):
    extra = {"retry_after": e.retry_after} if e.retry_after else {}
    return error(e.message, None, e.code, **extra)
