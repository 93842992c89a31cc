"""AuthService: the one authentication every API (REST, WebSocket, RTSP, ONVIF) uses.

API:
    auth.authenticate(method, uri, authorization=None, token=None, cookie=None, client=None)
        -> Principal (anonymous when no credentials); raises AuthError on bad ones.
    auth.challenges(stale=False) -> WWW-Authenticate values (Digest SHA-256, Digest MD5, Basic)
    auth.check_password(username, password, client=None) -> Principal (counts failures)
    auth.login(username, password, client) -> dict(token, expires, csrf)
    auth.logout(token)
    auth.csrf_for(session_token) -> the CSRF token that goes with a session cookie
"""

import base64
import hmac
import hashlib
import os
import secrets

from twisted.logger import Logger

from rotordream.auth import digest, roles
from rotordream.auth.ratelimit import RateLimiter
from rotordream.auth.tokens import TokenStore
from rotordream.auth.users import UserStore
from rotordream.fsutil import atomic_write

log = Logger()

SECRET_FILE = "auth-secret"
SESSION_COOKIE = "rotordream_session"


class AuthError(Exception):
    """Refused credentials. ``code``: UNAUTHORIZED or RATE_LIMITED."""

    def __init__(self, message, code="UNAUTHORIZED", stale=False, retry_after=None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.stale = stale
        self.retry_after = retry_after


def _secret(state_dir):
    path = os.path.join(state_dir, SECRET_FILE)
    try:
        with open(path, "rb") as f:
            data = f.read()
        if len(data) >= 32:
            return data
    except FileNotFoundError:
        pass
    data = secrets.token_bytes(32)
    atomic_write(path, data, mode=0o600)
    return data


class AuthService:
    """Users, tokens, Digest nonces and login limits, shared by every API."""

    def __init__(self, config, state_dir, clock):
        a = config.auth
        self.config = config
        self.clock = clock
        self.users = UserStore(state_dir, a.initial_admin_password)
        self.tokens = TokenStore(state_dir, clock, a.token_lifetime)
        self._secret = _secret(state_dir)
        self.nonces = digest.NonceManager(self._secret, clock, a.nonce_lifetime)
        self._opaque = hashlib.sha256(self._secret + b"opaque").hexdigest()[:16]
        self.failures_by_client = RateLimiter(a.login_failures, a.login_window, clock)
        self.failures_by_user = RateLimiter(a.login_failures, a.login_window, clock)
        self.anonymous_role = a.anonymous
        self.users.observe(self._user_changed)

    def login_hint(self):
        """How to log in as admin, for the start-up banner."""
        if self.users.initial_password_file:
            return "user admin, password in %s" % self.users.initial_password_file
        return "user admin with the password you configured"

    # -- principals -----------------------------------------------------

    def principal_for_user(self, name):
        """The Principal of an existing user, or None."""
        role = self.users.role(name)
        return None if role is None else roles.Principal(name=name, role=role)

    def anonymous(self):
        """The principal of a client without credentials (config [auth] anonymous)."""
        return roles.anonymous(self.anonymous_role)

    # -- checks ---------------------------------------------------------

    def _locked(self, username, client):
        wait = max(self.failures_by_user.retry_after(username or ""),
                   self.failures_by_client.retry_after(client or ""))
        if wait:
            raise AuthError("too many failed logins; try again in %d s" % wait,
                            code="RATE_LIMITED", retry_after=wait)

    def _failed(self, username, client):
        self.failures_by_user.hit(username or "")
        self.failures_by_client.hit(client or "")
        log.info("failed login for {user!r} from {client}", user=username, client=client)

    def check_password(self, username, password, client=None):
        """The Principal for correct credentials; AuthError otherwise (and during lockout)."""
        self._locked(username, client)
        if not isinstance(username, str) or not isinstance(password, str) or \
                not self.users.verify(username, password):
            self._failed(username if isinstance(username, str) else "", client)
            raise AuthError("wrong user name or password")
        return self.principal_for_user(username)

    def check_token(self, token):
        """The Principal a bearer/session token belongs to; AuthError if invalid."""
        name = self.tokens.lookup(token)
        principal = self.principal_for_user(name) if name else None
        if principal is None:
            raise AuthError("invalid or expired token")
        return principal

    def authenticate(self, method, uri, authorization=None, token=None, cookie=None,
                     client=None):
        """Who is asking: from an Authorization header, a token or a session cookie."""
        if authorization:
            scheme, _, rest = authorization.strip().partition(" ")
            scheme = scheme.lower()
            if scheme == "basic":
                try:
                    user, _, password = base64.b64decode(rest.strip(), validate=True) \
                        .decode("utf-8").partition(":")
                except (ValueError, UnicodeDecodeError):
                    raise AuthError("malformed Basic credentials") from None
                return self.check_password(user, password, client)
            if scheme == "digest":
                return self._digest(method, rest, client)
            if scheme == "bearer":
                return self.check_token(rest.strip())
            raise AuthError("unsupported authorization scheme")
        if token:
            return self.check_token(token)
        if cookie:
            return self.check_token(cookie)
        return self.anonymous()

    def _digest(self, method, params_text, client):
        try:
            params = digest.parse_params(params_text)
        except digest.DigestError as e:
            raise AuthError(str(e)) from None
        username = params.get("username")
        self._locked(username, client)
        try:
            name = digest.verify(params, method, self.users.ha1, self.nonces)
        except digest.DigestError as e:
            if not e.stale:
                self._failed(username, client)
            raise AuthError(str(e), stale=e.stale) from None
        return self.principal_for_user(name)

    def challenges(self, stale=False):
        """WWW-Authenticate values: Digest SHA-256, Digest MD5, then Basic."""
        nonce = self.nonces.issue()
        out = [digest.challenge(alg, nonce, self._opaque, stale) for alg in digest.ALGORITHMS]
        out.append('Basic realm="%s", charset="UTF-8"' % digest.REALM)
        return out

    # -- sessions -------------------------------------------------------

    def login(self, username, password, client=None):
        """Check credentials and issue a bearer token (also the session cookie value)."""
        principal = self.check_password(username, password, client)
        self.failures_by_user.reset(username)
        token, expires = self.tokens.issue(principal.name)
        return {"token": token, "expires": expires, "csrf": self.csrf_for(token),
                "principal": principal}

    def logout(self, token):
        """Revoke a token or session; True if it was live."""
        return self.tokens.revoke(token)

    def csrf_for(self, session_token):
        """The CSRF token a cookie-authenticated request must echo in X-CSRF-Token."""
        return hmac.new(self._secret, b"csrf:" + session_token.encode(),
                        hashlib.sha256).hexdigest()[:32]

    def _user_changed(self, name, what, password):
        if what in ("deleted", "password"):
            self.tokens.revoke_user(name)
