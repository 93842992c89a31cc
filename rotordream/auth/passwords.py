"""Password hashing: salted scrypt for checking, plus the Digest HA1 values HTTP/RTSP need."""

import base64
import hashlib
import hmac
import os

REALM = "RotorDream"
_N, _R, _P = 2 ** 14, 8, 1


def hash_password(password):
    """A salted scrypt hash of ``password`` as one self-describing string."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return "scrypt$%d$%d$%d$%s$%s" % (_N, _R, _P, base64.b64encode(salt).decode(),
                                      base64.b64encode(digest).decode())


def verify_password(password, stored):
    """True when ``password`` matches a :func:`hash_password` string (constant time)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt),
                             n=int(n), r=int(r), p=int(p), dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


def digest_ha1(username, password, algorithm="MD5", realm=REALM):
    """HA1 = H(username:realm:password) for HTTP/RTSP Digest (MD5 or SHA-256)."""
    h = hashlib.md5 if algorithm.upper().startswith("MD5") else hashlib.sha256
    return h(("%s:%s:%s" % (username, realm, password)).encode("utf-8")).hexdigest()
