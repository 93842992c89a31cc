"""Shared by the auth tests: AuthService on a Clock, fired Deferreds, Digest headers."""

import hashlib
import json
import os

from cryptography.fernet import Fernet, InvalidToken
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from rotordream.auth import digest
from rotordream.auth.service import AuthService
from rotordream.config import from_dict

PASSWORD = "first-password"
NOW = 1_800_000_000


def make_auth(tmp_path, pool=None, clock=None, onvif=None, **auth):
    """An AuthService over ``tmp_path/state`` (key file beside it) and its clock."""
    if clock is None:
        clock = Clock()
        clock.advance(NOW)
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    auth = dict({"initial_admin_password": PASSWORD, "secret_file": str(tmp_path / "secret.key")},
                **auth)
    cfg = from_dict({"auth": auth, "onvif": dict(onvif or {})})
    return AuthService(cfg, str(state), clock, pool=pool), clock


def result(d):
    """What a Deferred that has fired holds; its exception raised if it failed."""
    out = []
    d.addBoth(out.append)
    assert out, "the Deferred has not fired"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]


def pending(d):
    """Assert that ``d`` has not fired; return a list its result will be appended to."""
    out = []
    d.addBoth(out.append)
    assert not out, "the Deferred fired already: %r" % (out,)
    return out


def digest_header(auth, method, uri, user, password, algorithm="SHA-256", nc="00000001",
                  nonce=None, cnonce="abcdef"):
    """(Authorization value, nonce) a client would send for ``method uri``."""
    if nonce is None:
        offer = [c for c in auth.challenges() if algorithm in c][0]
        nonce = digest.parse_params(offer[len("Digest "):])["nonce"]
    return digest_value(method, uri, user, password, nonce, algorithm, nc, cnonce), nonce


def digest_value(method, uri, user, password, nonce, algorithm="SHA-256", nc="00000001",
                 cnonce="abcdef"):
    """The Digest Authorization value for ``nonce``, as RFC 7616 computes it."""
    h = hashlib.sha256 if algorithm == "SHA-256" else hashlib.md5
    H = lambda s: h(s.encode()).hexdigest()
    ha1 = H("%s:RotorDream:%s" % (user, password))
    ha2 = H("%s:%s" % (method, uri))
    response = H(":".join((ha1, nonce, nc, cnonce, "auth", ha2)))
    return ('Digest username="%s", realm="RotorDream", nonce="%s", uri="%s", '
            'algorithm=%s, qop=auth, nc=%s, cnonce="%s", response="%s"'
            % (user, nonce, uri, algorithm, nc, cnonce, response))


def reveals_password(state_dir, passwords):
    """True when the files of ``state_dir`` alone reveal one of ``passwords``."""
    blobs = {}
    for root, _, files in os.walk(state_dir):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                blobs[name] = f.read()
    if any(p.encode() in blob for p in passwords for blob in blobs.values()):
        return True
    keys = []
    for blob in blobs.values():
        for word in blob.split():
            try:
                keys.append(Fernet(word.strip(b'"')))
            except ValueError:
                pass
    copies = [rec.get("secret") for rec in json.loads(blobs["users.json"])["users"].values()]
    for key in keys:
        for copy in filter(None, copies):
            try:
                key.decrypt(copy.encode())
                return True
            except InvalidToken:
                pass
    return False
