"""AuthService: the one authentication every API (REST, WebSocket, RTSP, ONVIF) uses.

API (every answer that may need a password hash is a Deferred; call these through
``defer.maybeDeferred`` and always pass ``client``, the source IP address):
    auth.authenticate(method, uri, authorization=None, token=None, cookie=None, client=None)
        -> Deferred of a Principal (anonymous when no credentials); errback AuthError.
    auth.check_password(username, password, client=None) -> Deferred of a Principal
    auth.login(username, password, client) -> Deferred of dict(token, expires, csrf, principal)
    auth.challenges(stale=False) -> WWW-Authenticate values (Digest SHA-256, Digest MD5, Basic)
    auth.check_token(token) -> Principal (no hashing: synchronous)
    auth.logout(token)
    auth.csrf_for(session_token) -> the CSRF token that goes with a session cookie

Limits, all from ``[auth]``: failed logins lock one user name at one address
(``login_failures`` per ``login_window``, doubling on repeat up to
``lockout_max``), so a guesser never locks the real user out from elsewhere;
``user_failures`` per ``login_window`` caps one user name over all addresses;
``attempts_per_address`` per ``attempts_window`` caps the password hashes one
address may make us compute. Tokens, cookies, Digest and a password verified
within ``cache_seconds`` never wait for the pool.
"""

import base64
import hashlib
import hmac
import os
import secrets

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from rotordream.auth import digest, roles
from rotordream.auth.checker import CHANGED, PasswordChecker
from rotordream.auth.ratelimit import Lockout, RateLimiter
from rotordream.auth.tokens import TokenStore
from rotordream.auth.users import UserStore
from rotordream.fsutil import atomic_write
from rotordream.interfaces import ICredentialChecker

log = Logger()

SECRET_FILE = "auth-secret"
SESSION_COOKIE = "rotordream_session"
_LOGGED_NAME = 64


# What credentials come over; wrong ones are counted by it (rotordream_auth_failures_total).
PROTOCOLS = ("http", "rtsp", "websocket", "onvif")


class AuthError(Exception):
    """Refused credentials. ``code``: UNAUTHORIZED or RATE_LIMITED (with ``retry_after``,
    and the ``limit`` of attempts per ``period`` seconds that refused, when one did)."""

    def __init__(self, message, code="UNAUTHORIZED", stale=False, retry_after=None,
                 limit=None, period=None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.stale = stale
        self.retry_after = retry_after
        self.limit = limit
        self.period = period


def loggable_name(name):
    """A user name as a log line may show it: quoted, escaped, at most 64 characters."""
    if not isinstance(name, str):
        return "<%s>" % type(name).__name__
    if len(name) <= _LOGGED_NAME:
        return repr(name)
    return "%r... (%d characters)" % (name[:_LOGGED_NAME], len(name))


def short_name(name):
    """A user name cut for a log field: at most 64 characters (then its length)."""
    if not isinstance(name, str):
        return "<%s>" % type(name).__name__
    if len(name) <= _LOGGED_NAME:
        return name
    return "%s...(%d characters)" % (name[:_LOGGED_NAME], len(name))


def _name_key(name):
    """The key limits count a user name under: long (never valid) names are hashed."""
    name = name if isinstance(name, str) else ""
    if len(name) <= _LOGGED_NAME:
        return name
    return "#" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()


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


@implementer(ICredentialChecker)
class AuthService:
    """Users, tokens, Digest nonces and login limits, shared by every API.

    ``clock`` is the reactor (``seconds``, ``callLater``, ``callFromThread``); ``pool`` a
    started ThreadPool for password hashes (None: hash in the caller, for unit tests).
    """

    def __init__(self, config, state_dir, clock, pool=None):
        a = config.auth
        self.config = config
        self.clock = clock
        self.users = UserStore(state_dir, a.initial_admin_password, key_file=a.secret_file,
                               keep_copies=config.onvif.password_digest)
        self.tokens = TokenStore(state_dir, clock, a.token_lifetime)
        # Persisted: CSRF tokens belong to session tokens, which survive a restart.
        self._secret = _secret(state_dir)
        # Not persisted: a Digest nonce, and so any captured Digest header, dies with
        # the run that issued it.
        self.nonces = digest.NonceManager(secrets.token_bytes(32), clock, a.nonce_lifetime)
        self._opaque = hashlib.sha256(self._secret + b"opaque").hexdigest()[:16]
        self.lockouts = Lockout(a.login_failures, a.login_window, a.lockout_max, clock)
        self.user_failures = RateLimiter(a.user_failures, a.login_window, clock)
        self.attempts = RateLimiter(a.attempts_per_address, a.attempts_window, clock)
        self.checker = PasswordChecker(self.users, clock, pool, a.hash_threads, a.hash_queue,
                                       a.cache_seconds)
        self.anonymous_role = a.anonymous
        self.users.observe(self._user_changed)
        # Read by metrics: wrong credentials by the protocol they came over, and logins
        # refused while locked out.
        self.failures = dict.fromkeys(PROTOCOLS, 0)
        self.locked_out = 0

    def reconfigure(self, config):
        """Apply a reloaded configuration: login limits, lockouts, the anonymous role,
        token, nonce and cache lifetimes, the hash queue. Tokens already issued keep
        their expiry; ``initial_admin_password`` and ``secret_file`` are read at start."""
        a = config.auth
        self.config = config
        self.lockouts.configure(a.login_failures, a.login_window, a.lockout_max)
        self.user_failures.configure(a.user_failures, a.login_window)
        self.attempts.configure(a.attempts_per_address, a.attempts_window)
        self.anonymous_role = a.anonymous
        self.tokens.lifetime = a.token_lifetime
        self.nonces.lifetime = a.nonce_lifetime
        self.checker.reconfigure(a.hash_threads, a.hash_queue, a.cache_seconds)

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

    # -- failed logins ----------------------------------------------------

    def refuse_if_locked(self, username, client):
        """Raise AuthError RATE_LIMITED while ``username`` is locked at ``client``."""
        key = _name_key(username)
        here = self.lockouts.retry_after((key, client or ""))
        a = self.config.auth
        if here:
            self.locked_out += 1
            raise AuthError("too many failed logins; try again in %d s" % here,
                            code="RATE_LIMITED", retry_after=here, limit=a.login_failures,
                            period=a.login_window)
        everywhere = self.user_failures.retry_after(key)
        if everywhere:
            self.locked_out += 1
            raise AuthError("too many failed logins for this user; try again in %d s"
                            % everywhere, code="RATE_LIMITED", retry_after=everywhere,
                            limit=a.user_failures, period=a.login_window)

    def count_failure(self, username, client, protocol="http", how="password"):
        """Count a wrong password (``how``: or a Digest/WS-Security response) for ``username``
        at ``client``, over ``protocol`` (one of :data:`PROTOCOLS`)."""
        key = _name_key(username)
        self.failures[protocol] = self.failures.get(protocol, 0) + 1
        locked = self.lockouts.failed((key, client or ""))
        self.user_failures.hit(key)
        # The name as typed is user input: at most 64 characters reach the log.
        log.info("failed login over {protocol} ({how}) for {user} from {client}",
                 event="login_failed", protocol=protocol, how=how, user=short_name(username),
                 client=client)
        if locked:
            log.warn("{user} locked out at {client} for {seconds} s", event="lockout",
                     user=short_name(username), client=client, seconds=locked)

    def count_success(self, username, client):
        """A correct password at ``client`` clears that address's failures for ``username``."""
        self.lockouts.reset((_name_key(username), client or ""))

    # -- checks ---------------------------------------------------------

    def check_password(self, username, password, client=None, protocol="http"):
        """Deferred of the Principal for correct credentials; errback AuthError.

        Refused at once (RATE_LIMITED) while the name is locked at ``client``, while
        ``client`` has used up its password checks, or when the hashing pool is full
        (retry_after 1). A password verified within ``cache_seconds`` skips the pool.
        """
        try:
            if not isinstance(username, str) or not isinstance(password, str):
                self.count_failure(username, client, protocol)
                raise AuthError("wrong user name or password")
            self.refuse_if_locked(username, client)
            if self.checker.cached(username, password):
                return defer.succeed(self._verified(True, username, client, protocol))
            if not self.checker.joinable(username, password):
                if self.checker.full:
                    raise AuthError("too many logins at once; try again in 1 s",
                                    code="RATE_LIMITED", retry_after=1)
                wait = self.attempts.hit(client or "")
                if wait:
                    raise AuthError("too many password checks from this address; try again "
                                    "in %d s" % wait, code="RATE_LIMITED", retry_after=wait,
                                    limit=self.config.auth.attempts_per_address,
                                    period=self.config.auth.attempts_window)
        except AuthError:
            return defer.fail()
        d = self.checker.check(username, password)
        d.addCallback(self._verified, username, client, protocol, password)
        return d

    def _verified(self, outcome, username, client, protocol, password=None):
        if outcome == CHANGED:
            raise AuthError("the password changed during the check; try again")
        principal = self.principal_for_user(username) if outcome else None
        if principal is None:
            self.count_failure(username, client, protocol)
            raise AuthError("wrong user name or password")
        self.count_success(username, client)
        if password is not None:
            self.users.remember_copy(username, password)
        return principal

    def check_token(self, token):
        """The Principal a bearer/session token belongs to; AuthError if invalid."""
        name = self.tokens.lookup(token)
        principal = self.principal_for_user(name) if name else None
        if principal is None:
            raise AuthError("invalid or expired token")
        return principal

    def authenticate(self, method, uri, authorization=None, token=None, cookie=None,
                     client=None, protocol="http"):
        """Deferred of who is asking: from an Authorization header, a token or a cookie.

        ``uri`` is the request target as sent (Digest responses are bound to it);
        ``protocol`` (one of :data:`PROTOCOLS`) is what wrong credentials count under.
        """
        return defer.maybeDeferred(self._authenticate, method, uri, authorization, token,
                                   cookie, client, protocol)

    def _authenticate(self, method, uri, authorization, token, cookie, client, protocol):
        if authorization:
            scheme, _, rest = authorization.strip().partition(" ")
            scheme = scheme.lower()
            if scheme == "basic":
                try:
                    user, _, password = base64.b64decode(rest.strip(), validate=True) \
                        .decode("utf-8").partition(":")
                except (ValueError, UnicodeDecodeError):
                    raise AuthError("malformed Basic credentials") from None
                return self.check_password(user, password, client, protocol)
            if scheme == "digest":
                return self._digest(method, uri, rest, client, protocol)
            if scheme == "bearer":
                return self.check_token(rest.strip())
            raise AuthError("unsupported authorization scheme")
        if token:
            return self.check_token(token)
        if cookie:
            return self.check_token(cookie)
        return self.anonymous()

    def _digest(self, method, uri, params_text, client, protocol):
        try:
            params = digest.parse_params(params_text)
        except digest.DigestError as e:
            raise AuthError(str(e)) from None
        try:
            return self.verify_response(
                params.get("username"), client, protocol, "Digest",
                lambda: digest.verify(params, method, uri, self.users.ha1, self.nonces),
                digest.DigestError, lambda e: not e.stale)
        except digest.DigestError as e:
            raise AuthError(str(e), stale=e.stale) from None

    def verify_response(self, username, client, protocol, how, verify, refusal, counts):
        """The Principal for a challenge-response (Digest, WS-Security) ``verify()`` accepts.

        One lockout for every way a password is proved: refused while ``username`` is
        locked at ``client``; ``verify()`` returns the user name or raises ``refusal``,
        which is counted as a wrong password when ``counts(error)`` says it is one
        (a stale nonce or Created is not) and raised again.
        """
        self.refuse_if_locked(username, client)
        try:
            name = verify()
        except refusal as e:
            if counts(e):
                self.count_failure(username, client, protocol, how)
            raise
        principal = self.principal_for_user(name)
        if principal is None:
            raise AuthError("wrong user name or password")
        self.count_success(name, client)
        return principal

    def challenges(self, stale=False):
        """WWW-Authenticate values: Digest SHA-256, Digest MD5, then Basic."""
        nonce = self.nonces.issue()
        out = [digest.challenge(alg, nonce, self._opaque, stale) for alg in digest.ALGORITHMS]
        out.append('Basic realm="%s", charset="UTF-8"' % digest.REALM)
        return out

    # -- sessions -------------------------------------------------------

    def login(self, username, password, client=None):
        """Deferred of a new bearer token (also the session cookie value) for these credentials."""
        d = self.check_password(username, password, client)
        d.addCallback(self._issue)
        return d

    def _issue(self, principal):
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
            self.checker.forget(name)
