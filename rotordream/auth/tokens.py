"""Bearer tokens and session cookies: random, expiring, revocable, stored only hashed."""

import hashlib
import json
import os
import secrets

from twisted.logger import Logger

from rotordream.fsutil import atomic_write, keep_corrupt_copy

log = Logger()

TOKENS_FILE = "tokens.json"


def _digest(token):
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    """Tokens persisted in ``<state_dir>/tokens.json`` as SHA-256 hashes (mode 0600)."""

    def __init__(self, state_dir, clock, lifetime):
        self.path = os.path.join(state_dir, TOKENS_FILE)
        self._clock = clock
        self.lifetime = lifetime
        self._tokens = {}  # sha256 -> {"user", "expires", "kind"}
        try:
            with open(self.path, "rb") as f:
                self._tokens = json.loads(f.read().decode())["tokens"]
        except FileNotFoundError:
            pass
        except Exception as e:
            log.error("tokens file unreadable ({e}); all sessions are logged out", e=e)
            keep_corrupt_copy(self.path, log)

    def issue(self, user, kind="bearer"):
        """A new token for ``user``; return (token, expires_at)."""
        token = secrets.token_urlsafe(32)
        expires = self._clock.seconds() + self.lifetime
        self._expire()
        self._tokens[_digest(token)] = {"user": user, "expires": expires, "kind": kind}
        self._save()
        return token, expires

    def lookup(self, token):
        """The user name ``token`` belongs to, or None if unknown, revoked or expired."""
        if not token:
            return None
        rec = self._tokens.get(_digest(token))
        if rec is None or rec["expires"] <= self._clock.seconds():
            return None
        return rec["user"]

    def revoke(self, token):
        """Revoke one token; True if it existed."""
        found = self._tokens.pop(_digest(token), None) is not None
        if found:
            self._save()
        return found

    def revoke_user(self, user):
        """Revoke every token of ``user`` (deleted user, changed password)."""
        before = len(self._tokens)
        self._tokens = {k: v for k, v in self._tokens.items() if v["user"] != user}
        if len(self._tokens) != before:
            self._save()

    def _expire(self):
        now = self._clock.seconds()
        self._tokens = {k: v for k, v in self._tokens.items() if v["expires"] > now}

    def _save(self):
        atomic_write(self.path, json.dumps({"version": 1, "tokens": self._tokens}).encode(),
                     mode=0o600)
