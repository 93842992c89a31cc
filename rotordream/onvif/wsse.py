"""WS-Security UsernameToken checking (ONVIF Core 5.12.2), without I/O.

PasswordDigest = Base64(SHA1(nonce + Created as sent + password)). Nonce
and Created are required; Created must be within ``window`` seconds of our
clock and not before this run of the daemon started (the nonce cache is not
persisted: a token captured before a restart must not pass after it), and a
nonce is accepted once while it could still be fresh. PasswordText is
accepted only when the configuration allows it; its check is the caller's
(a password hash: see :func:`read_token`).
"""

import base64
import binascii
import calendar
import hashlib
import hmac
import math
import re
from dataclasses import dataclass

from rotordream.onvif import soap

WSSE = soap.NSMAP["wsse"]
WSU = soap.NSMAP["wsu"]
_TOKEN_PROFILE = ("http://docs.oasis-open.org/wss/2004/01/"
                  "oasis-200401-wss-username-token-profile-1.0")
PASSWORD_DIGEST = _TOKEN_PROFILE + "#PasswordDigest"
PASSWORD_TEXT = _TOKEN_PROFILE + "#PasswordText"

_CREATED = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?"
                      r"(Z|[+-]\d\d:\d\d)?$")


class WsseError(Exception):
    """Refused WS-Security credentials; ``username`` when the token named one.

    ``counts`` is False for refusals that say nothing about the password (a stale
    Created, a password type turned off): they do not count towards a lockout.
    """

    def __init__(self, message, username=None, counts=True):
        super().__init__(message)
        self.message = message
        self.username = username
        self.counts = counts


def parse_created(text):
    """Seconds since the epoch of an xs:dateTime (no zone means UTC), or raise WsseError."""
    m = _CREATED.match(text or "")
    if not m:
        raise WsseError("Created is not an xs:dateTime")
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    try:
        t = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
    except (ValueError, OverflowError):
        raise WsseError("Created is not a valid time") from None
    if m.group(7):
        t += float(m.group(7))
    zone = m.group(8)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        t -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return t


def password_digest(nonce, created, password):
    """The PasswordDigest value for raw ``nonce`` bytes, ``created`` text and ``password``."""
    return base64.b64encode(hashlib.sha1(nonce + created.encode("utf-8") +
                                         password.encode("utf-8")).digest()).decode("ascii")


class NonceCache:
    """Nonces seen recently, each kept until it could no longer pass the Created check."""

    def __init__(self, clock, ttl, max_entries=100000):
        self.clock = clock
        self.ttl = ttl
        self.max_entries = max_entries
        self._seen = {}  # nonce -> expiry

    def _purge(self, now):
        if len(self._seen) > 1000 or len(self._seen) >= self.max_entries:
            for nonce in [n for n, exp in self._seen.items() if exp <= now]:
                del self._seen[nonce]

    def check_and_add(self, nonce):
        """True (and remember it) for a nonce not seen within ``ttl``; False for a replay."""
        now = self.clock.seconds()
        self._purge(now)
        exp = self._seen.get(nonce)
        if exp is not None and exp > now:
            return False
        if len(self._seen) >= self.max_entries:
            # Full of live nonces: refuse rather than forget one (a flood cannot enable replay).
            return False
        self._seen[nonce] = now + self.ttl
        return True

    def dump(self):
        """The live nonces and their expiry times (for the next run of the daemon)."""
        now = self.clock.seconds()
        return {n: exp for n, exp in self._seen.items() if exp > now}

    def load(self, seen):
        """Remember ``seen`` (a :meth:`dump` of an earlier run); bad entries are skipped."""
        now = self.clock.seconds()
        for nonce, exp in list(seen.items())[:self.max_entries]:
            if isinstance(nonce, str) and isinstance(exp, (int, float)) and exp > now:
                self._seen[nonce] = float(exp)


def find_token(header):
    """The wsse:UsernameToken element in a SOAP Header, or None."""
    if header is None:
        return None
    security = header.find("{%s}Security" % WSSE)
    if security is None:
        return None
    return security.find("{%s}UsernameToken" % WSSE)


@dataclass
class UsernameToken:
    """The parts of a wsse:UsernameToken, as sent."""

    username: str
    text: bool                   # PasswordText (else PasswordDigest)
    password: str                # the password (text) or the digest
    nonce_text: str = ""
    nonce: bytes = b""
    created: str = None


def read_token(token):
    """A :class:`UsernameToken` from its element, or raise WsseError when malformed."""
    username = (token.findtext("{%s}Username" % WSSE) or "").strip()
    if not username:
        raise WsseError("the UsernameToken has no Username")
    pw_el = token.find("{%s}Password" % WSSE)
    if pw_el is None:
        raise WsseError("the UsernameToken has no Password", username)
    ptype = (pw_el.get("Type") or PASSWORD_TEXT).strip()
    if ptype == PASSWORD_TEXT:
        return UsernameToken(username, True, pw_el.text or "")
    if ptype != PASSWORD_DIGEST:
        raise WsseError("unknown password type", username)
    nonce_text = (token.findtext("{%s}Nonce" % WSSE) or "").strip()
    created = token.findtext("{%s}Created" % WSU)
    if created is None:
        created = token.findtext("{%s}Created" % WSSE)  # some clients use wsse:Created
    if not nonce_text or created is None:
        raise WsseError("PasswordDigest needs a Nonce and a Created time", username)
    try:
        nonce = base64.b64decode(nonce_text, validate=True)
    except (binascii.Error, ValueError):
        raise WsseError("the Nonce is not Base64", username) from None
    if not 1 <= len(nonce) <= 256:
        raise WsseError("bad Nonce length", username)
    return UsernameToken(username, False, (pw_el.text or "").strip(), nonce_text, nonce,
                         created.strip())


class Verifier:
    """Checks UsernameTokens against ``password_for(name) -> str or None``.

    ``clock`` is an IReactorTime; ``window`` the allowed skew of Created in seconds.
    Tokens Created before ``not_before`` (default: now, i.e. this run's start) are
    refused. ``digest_refusal``, when set, refuses every PasswordDigest with that
    message (no recoverable password copies are kept).
    """

    def __init__(self, password_for, clock, window=300, allow_text=False, check_text=None,
                 not_before=None, digest_refusal=None):
        self.password_for = password_for
        self.clock = clock
        self.window = window
        self.allow_text = allow_text
        # PasswordText can be checked against the scrypt hash without the cleartext.
        self.check_text = check_text
        self.digest_refusal = digest_refusal
        # Whole seconds: Created is often sent without fractions. A token of the start
        # second could come from the run before; the nonces that run saw are handed over
        # (NonceCache.dump/load) so it cannot pass twice either.
        self.not_before = math.floor(clock.seconds() if not_before is None else not_before)
        # Nonces are remembered past the whole Created window, so none passes twice.
        self.nonces = NonceCache(clock, 2 * window + 60)

    def verify(self, token):
        """The user name a UsernameToken element authenticates, or raise WsseError.

        PasswordText goes to ``check_text`` here; the daemon checks it through the
        auth service instead (a password hash, off the event loop).
        """
        tok = read_token(token)
        if tok.text:
            self.refuse_text_unless_allowed(tok)
            ok = self.check_text(tok.username, tok.password) if self.check_text else \
                hmac.compare_digest((self.password_for(tok.username) or "\0").encode(),
                                    tok.password.encode())
            if not ok:
                raise WsseError("wrong user name or password", tok.username)
            return tok.username
        return self.verify_digest(tok)

    def refuse_text_unless_allowed(self, tok):
        """Raise WsseError for PasswordText when the configuration does not accept it."""
        if not self.allow_text:
            raise WsseError("PasswordText is not accepted; use PasswordDigest", tok.username,
                            counts=False)

    def verify_digest(self, tok):
        """The user name a PasswordDigest :class:`UsernameToken` authenticates, or WsseError."""
        username = tok.username
        if self.digest_refusal:
            raise WsseError(self.digest_refusal, username, counts=False)
        created = parse_created(tok.created)
        now = self.clock.seconds()
        if abs(created - now) > self.window:
            raise WsseError("Created is %d s away from the device clock (allowed %d s)"
                            % (abs(created - now), self.window), username, counts=False)
        if created < self.not_before:
            raise WsseError("Created is before the device started; make a new token",
                            username, counts=False)
        password = self.password_for(username)
        # Compute a digest even for unknown users so timing does not reveal names.
        expected = password_digest(tok.nonce, tok.created, password if password is not None
                                   else "\0unknown")
        if password is None or not hmac.compare_digest(
                expected.encode(), tok.password.encode("utf-8", "surrogatepass")):
            raise WsseError("wrong user name or password", username)
        # Only a correct token burns its nonce: a forger cannot block a real client's nonce.
        if not self.nonces.check_and_add(tok.nonce_text):
            raise WsseError("the Nonce was already used", username)
        return username
