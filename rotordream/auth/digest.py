"""HTTP/RTSP Digest authentication (RFC 7616, RFC 2617), without I/O.

Nonces are stateless: a timestamp signed with a server secret, so they
expire (``stale=true``) without a table; only the highest nonce count seen
per live nonce is remembered, to refuse replays. The secret is made anew at
each start, so nonces (and captured headers) from an earlier run are unknown.
A response is bound to its request target: the ``uri`` parameter must name it
(RFC 7616 section 3.4.6).
"""

import base64
import hashlib
import hmac
import re
import struct
from urllib.parse import urlsplit

from rotordream.auth.passwords import REALM

ALGORITHMS = ("SHA-256", "MD5")
_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*,?')


class DigestError(Exception):
    """Digest credentials that are malformed or wrong; ``stale`` for an expired nonce."""

    def __init__(self, message, stale=False):
        super().__init__(message)
        self.stale = stale


def parse_params(text):
    """Parse ``k=v, k="quoted"`` pairs into a dict with lower-case keys."""
    params = {}
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _PARAM.match(text, pos)
        if not m or m.end() == pos:
            raise DigestError("malformed Digest parameters")
        value = m.group(2) if m.group(2) is not None else m.group(3)
        if m.group(2) is not None:
            value = re.sub(r"\\(.)", r"\1", value)
        params[m.group(1).lower()] = value
        pos = m.end()
    return params


def _h(algorithm, text):
    fn = hashlib.sha256 if "256" in algorithm else hashlib.md5
    return fn(text.encode("utf-8")).hexdigest()


def expected_response(ha1, method, params, algorithm):
    """The response a client knowing ``ha1`` would send for ``params``."""
    ha2 = _h(algorithm, "%s:%s" % (method, params["uri"]))
    if params.get("qop"):
        return _h(algorithm, ":".join((ha1, params["nonce"], params["nc"], params["cnonce"],
                                       params["qop"], ha2)))
    return _h(algorithm, "%s:%s:%s" % (ha1, params["nonce"], ha2))


class NonceManager:
    """Issues signed, expiring nonces and refuses replayed nonce counts."""

    def __init__(self, secret, clock, lifetime=300):
        self._secret = secret
        self._clock = clock
        self.lifetime = lifetime
        self._counts = {}  # nonce -> highest nc seen

    def issue(self):
        """A new nonce."""
        stamp = struct.pack(">d", self._clock.seconds())
        mac = hmac.new(self._secret, stamp, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(stamp + mac).decode().rstrip("=")

    def check(self, nonce, nc=None):
        """Raise DigestError unless ``nonce`` is ours, fresh and ``nc`` not seen before."""
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (ValueError, TypeError):
            raise DigestError("unknown nonce") from None
        if len(raw) != 24 or not hmac.compare_digest(
                raw[8:], hmac.new(self._secret, raw[:8], hashlib.sha256).digest()[:16]):
            raise DigestError("unknown nonce")
        age = self._clock.seconds() - struct.unpack(">d", raw[:8])[0]
        if age > self.lifetime or age < -5:
            raise DigestError("nonce expired", stale=True)
        if nc is not None:
            try:
                count = int(nc, 16)
            except ValueError:
                raise DigestError("bad nonce count") from None
            if count <= self._counts.get(nonce, 0):
                raise DigestError("replayed nonce count")
            self._counts[nonce] = count
            if len(self._counts) > 10000:
                self._prune()

    def _prune(self):
        for nonce in list(self._counts):
            try:
                self.check(nonce)
            except DigestError:
                del self._counts[nonce]


def challenge(algorithm, nonce, opaque, stale=False, realm=REALM):
    """A ``WWW-Authenticate`` value offering Digest with ``algorithm`` and qop=auth."""
    value = 'Digest realm="%s", qop="auth", algorithm=%s, nonce="%s", opaque="%s"' % (
        realm, algorithm, nonce, opaque)
    return value + (", stale=true" if stale else "")


def _path_and_query(uri):
    """``/path?query`` of a request target in origin or absolute form; None for others."""
    if uri.startswith("/"):
        return uri
    if "://" not in uri:
        return None  # "*" or an authority: only an exact match names them
    try:
        parts = urlsplit(uri)
    except ValueError:
        return None
    return (parts.path or "/") + ("?" + parts.query if parts.query else "")


def uri_matches(param_uri, target):
    """True when a Digest ``uri`` parameter names the request target ``target``.

    The same text, or the same path and query where either is an absolute URI (a
    client may send ``http://host/path`` for ``/path``; RTSP requests carry the
    full ``rtsp://`` URL).
    """
    if param_uri == target:
        return True
    mine, theirs = _path_and_query(param_uri), _path_and_query(target)
    return mine is not None and mine == theirs


def verify(header_params, method, uri, lookup_ha1, nonces, realm=REALM):
    """Check parsed Digest params for a request to ``uri``; return the user name.

    Raise DigestError otherwise. ``lookup_ha1(username, algorithm)`` returns the
    stored HA1 or None. A right response on an expired, unknown or earlier run's
    nonce is ``stale`` (the client knows the password: it retries on a fresh nonce).
    """
    p = header_params
    for key in ("username", "nonce", "uri", "response"):
        if key not in p:
            raise DigestError("Digest credentials lack %s" % key)
    if p.get("realm", realm) != realm:
        raise DigestError("wrong realm")
    algorithm = p.get("algorithm", "MD5")
    if algorithm.upper() not in ("MD5", "SHA-256"):
        raise DigestError("unsupported algorithm %s" % algorithm)
    if p.get("qop") not in (None, "auth"):
        raise DigestError("unsupported qop")
    if p.get("qop") and not (p.get("nc") and p.get("cnonce")):
        raise DigestError("qop=auth needs nc and cnonce")
    if uri is None or not uri_matches(p["uri"], uri):
        raise DigestError("the Digest uri is not this request's target")
    try:
        nonces.check(p["nonce"])
        nonce_error = None
    except DigestError as e:
        nonce_error = e
    ha1 = lookup_ha1(p["username"], algorithm)
    if ha1 is None or not hmac.compare_digest(
            expected_response(ha1, method, p, algorithm).encode(),
            p["response"].lower().encode("utf-8", "surrogatepass")):
        raise DigestError("wrong credentials")
    if nonce_error is not None:
        raise DigestError(str(nonce_error), stale=True)
    nonces.check(p["nonce"], p.get("nc") or "%x" % (1 << 60))
    return p["username"]
