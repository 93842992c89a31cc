"""The user store: names, roles, password hashes, persisted atomically in the state dir.

WS-Security PasswordDigest (ONVIF) hashes the password itself with a client
nonce, so no one-way hash can check it: unless ``[onvif] password_digest`` is
false, each record also keeps the password encrypted (Fernet, AES-128-CBC +
HMAC) under the key in ``[auth] secret_file``, which lives outside the state
directory (rotordream/auth/secretkey.py): a copy of the state directory alone
reveals no password. Without a usable key no copy is made and PasswordDigest is
refused. Records written before a copy existed get one at the next successful
password check.

Earlier versions kept the key beside the data (``<state_dir>/onvif-key``); at
start it is used once to move the copies under the new key (or to drop them)
and is then deleted.
"""

import json
import os
import re
import secrets

from twisted.logger import Logger

from rotordream.auth import roles
from rotordream.auth.passwords import digest_ha1, hash_password, verify_password
from rotordream.auth.secretkey import KeyUnusable, load_key
from rotordream.fsutil import atomic_write, keep_corrupt_copy

log = Logger()

USERS_FILE = "users.json"
INITIAL_PASSWORD_FILE = "initial-admin-password"
LEGACY_KEY_FILE = "onvif-key"  # the key as earlier versions kept it, in the state dir
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,32}$")


class UserError(Exception):
    """A refused user operation; ``code`` is the API error code."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def check_name(name):
    """Raise UserError unless ``name`` is a safe user name (no ':', spaces or control chars)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise UserError("BAD_REQUEST", "user names are 1-32 letters, digits, '_', '.', '@' "
                                       "or '-'")


def check_password(password):
    """Raise UserError unless ``password`` is acceptable."""
    if not isinstance(password, str) or not 8 <= len(password) <= 128 or \
            any(ord(c) < 32 for c in password):
        raise UserError("BAD_REQUEST", "passwords are 8-128 printable characters")


def check_role(role):
    """Raise UserError unless ``role`` names a role."""
    if role not in roles.ROLES:
        raise UserError("BAD_REQUEST", "role must be one of %s" % ", ".join(roles.ROLES))


class UserStore:
    """Users persisted in ``<state_dir>/users.json`` (mode 0600).

    Each record keeps the scrypt hash, the Digest HA1 values (MD5 and SHA-256)
    and, when ``key_file`` is usable and ``keep_copies`` true, the password
    encrypted under that key. On first start with no users, ``admin`` is
    created as contract.md says.
    """

    def __init__(self, state_dir, initial_password="", environ=os.environ, key_file=None,
                 keep_copies=True):
        self.path = os.path.join(state_dir, USERS_FILE)
        self.state_dir = state_dir
        self._users = {}
        self._observers = []
        self.initial_password_file = None
        self._fernet, self.copies_refused = self._open_key(key_file, keep_copies)
        self._load()
        self._migrate(keep_copies)
        if not self._users:
            self._create_first_admin(initial_password, environ)

    # -- persistence ----------------------------------------------------

    def _load(self):
        try:
            with open(self.path, "rb") as f:
                data = json.loads(f.read().decode("utf-8"))
            users = data["users"]
            assert isinstance(users, dict)
            for name, rec in users.items():
                assert rec["role"] in roles.ROLES and rec["hash"]
            self._users = users
        except FileNotFoundError:
            return
        except Exception as e:
            log.error("users file {path} is unreadable ({e}); starting with a new admin",
                      path=self.path, e=e)
            keep_corrupt_copy(self.path, log)
            self._users = {}

    def _save(self):
        atomic_write(self.path, json.dumps({"version": 1, "users": self._users},
                                           indent=1).encode("utf-8"), mode=0o600)

    def _create_first_admin(self, initial_password, environ):
        password = environ.get("ROTORDREAM_ADMIN_PASSWORD") or initial_password
        if not password:
            password = secrets.token_urlsafe(12)
            self.initial_password_file = os.path.join(self.state_dir, INITIAL_PASSWORD_FILE)
            atomic_write(self.initial_password_file, (password + "\n").encode(), mode=0o600)
            log.warn("created user admin with a random password, stored in {path}",
                     path=self.initial_password_file)
        self._users["admin"] = self._record("admin", password, "admin")
        self._save()

    def _record(self, name, password, role):
        return {"role": role, "hash": hash_password(password),
                "ha1_md5": digest_ha1(name, password, "MD5"),
                "ha1_sha256": digest_ha1(name, password, "SHA-256"),
                "secret": self._encrypt(password)}  # None: no copy kept

    # -- the reversible copy WS-Security needs ----------------------------

    def _open_key(self, key_file, keep_copies):
        """(Fernet or None, why PasswordDigest is refused or None)."""
        if not keep_copies:
            return None, ("PasswordDigest is off on this device ([onvif] password_digest = "
                          "false); use HTTP Digest, or PasswordText over TLS")
        try:
            return load_key(key_file, self.state_dir), None
        except KeyUnusable as e:
            log.warn("no recoverable password copies, so WS-Security PasswordDigest is off: "
                     "{why}", why=str(e))
            return None, ("PasswordDigest is unavailable: the device has no usable key file "
                          "(see its log); use HTTP Digest, or PasswordText over TLS")

    def _migrate(self, keep_copies):
        """Move copies from a state-dir key under the key file (or drop them); delete it.

        Copies are dropped as well when ``keep_copies`` is false. Copies under a key
        file that is only unusable for now are kept: they reveal nothing without it.
        """
        legacy_path = os.path.join(self.state_dir, LEGACY_KEY_FILE)
        legacy = _legacy_fernet(legacy_path)
        moved = dropped = 0
        for rec in self._users.values():
            token = rec.get("secret")
            if not token:
                continue
            if not keep_copies:
                password = None
            elif self._fernet is not None and _decrypt(self._fernet, token) is not None:
                continue  # already under the key file (an earlier start moved it)
            elif legacy is not None:
                password = _decrypt(legacy, token)
            elif self._fernet is None:
                continue
            else:
                password = None  # under a key nobody has any more: useless
            rec["secret"] = self._encrypt(password) if password is not None else None
            moved += rec["secret"] is not None
            dropped += rec["secret"] is None
        if moved or dropped:
            self._save()  # before the old key goes: a crash in between loses nothing
        if os.path.lexists(legacy_path):
            try:
                os.unlink(legacy_path)
            except OSError as e:
                log.error("cannot delete the old password key {path} ({e}): delete it, a copy "
                          "of the state directory reveals passwords while it is there",
                          path=legacy_path, e=e.strerror)
                return
            log.warn("moved {moved} password copies under the key file and dropped {dropped}; "
                     "deleted the old key {path}", moved=moved, dropped=dropped,
                     path=legacy_path)
        elif dropped:
            log.info("dropped {n} recoverable password copies", n=dropped)

    def _encrypt(self, password):
        if self._fernet is None:
            return None
        return self._fernet.encrypt(password.encode("utf-8")).decode("ascii")

    def secret(self, name):
        """The password of ``name`` for WS-Security PasswordDigest, or None if unknown."""
        rec = self._users.get(name)
        if rec is None or not rec.get("secret") or self._fernet is None:
            return None
        # None for a copy under a replaced key: useless until the password is set again.
        return _decrypt(self._fernet, rec["secret"])

    def remember_copy(self, name, password):
        """Keep the copy of a password just verified, when it is missing or stale."""
        rec = self._users.get(name)
        if rec is None or self._fernet is None or self.secret(name) == password:
            return
        rec["secret"] = self._encrypt(password)
        self._save()

    # -- queries --------------------------------------------------------

    def get(self, name):
        """The public record of ``name`` ({"username", "role"}) or None."""
        rec = self._users.get(name)
        return None if rec is None else {"username": name, "role": rec["role"]}

    def names(self):
        """All user names, sorted."""
        return sorted(self._users)

    def role(self, name):
        """The role of ``name`` or None."""
        rec = self._users.get(name)
        return rec["role"] if rec else None

    def password_hash(self, name):
        """The stored scrypt hash of ``name``, or a dummy one for unknown names.

        Checking against the dummy costs the same time, so names cannot be probed
        by timing.
        """
        rec = self._users.get(name)
        return DUMMY_HASH if rec is None else rec["hash"]

    def verify(self, name, password):
        """True when ``password`` is ``name``'s password (scrypt, here: not on the reactor)."""
        known = name in self._users
        ok = verify_password(password, self.password_hash(name)) and known
        if ok:
            self.remember_copy(name, password)
        return ok

    def ha1(self, name, algorithm):
        """The Digest HA1 of ``name`` for ``algorithm`` (MD5 or SHA-256), or None."""
        rec = self._users.get(name)
        if rec is None:
            return None
        return rec["ha1_sha256" if "256" in algorithm else "ha1_md5"]

    # -- changes --------------------------------------------------------

    def add(self, name, password, role):
        """Create a user; UserError CONFLICT if it exists."""
        check_name(name)
        check_password(password)
        check_role(role)
        if name in self._users:
            raise UserError("CONFLICT", "user %s already exists" % name)
        self._users[name] = self._record(name, password, role)
        self._save()
        self._changed(name, "added", password)

    def set_role(self, name, role):
        """Change a user's role; the last admin cannot be demoted."""
        check_role(role)
        rec = self._require(name)
        if rec["role"] == "admin" and role != "admin" and self._admins() == 1:
            raise UserError("CONFLICT", "cannot demote the last admin")
        rec["role"] = role
        self._save()
        self._changed(name, "changed", None)

    def set_password(self, name, password):
        """Change a user's password."""
        check_password(password)
        rec = self._require(name)
        rec.update(self._record(name, password, rec["role"]))
        self._save()
        self._changed(name, "password", password)

    def delete(self, name):
        """Delete a user; the last admin cannot be deleted."""
        rec = self._require(name)
        if rec["role"] == "admin" and self._admins() == 1:
            raise UserError("CONFLICT", "cannot delete the last admin")
        del self._users[name]
        self._save()
        self._changed(name, "deleted", None)

    def observe(self, fn):
        """Call ``fn(name, what, password_or_None)`` after every change (e.g. ONVIF credentials)."""
        self._observers.append(fn)

    def _changed(self, name, what, password):
        for fn in list(self._observers):
            fn(name, what, password)

    def _require(self, name):
        rec = self._users.get(name)
        if rec is None:
            raise UserError("NOT_FOUND", "no user %s" % name)
        return rec

    def _admins(self):
        return sum(1 for r in self._users.values() if r["role"] == "admin")


def _legacy_fernet(path):
    try:
        with open(path, "rb") as f:
            from cryptography.fernet import Fernet
            return Fernet(f.read(4096).strip())
    except (OSError, ValueError):
        return None


def _decrypt(fernet, token):
    try:
        return fernet.decrypt(token.encode("ascii")).decode("utf-8")
    except Exception:  # InvalidToken, or a damaged record
        return None


DUMMY_HASH = hash_password("not a real password")
