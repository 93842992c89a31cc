"""The key of the recoverable password copies: one file kept outside the state directory.

``[auth] secret_file`` (``--secret-file``, default /etc/rotordream/secret.key, made
by the Debian postinst) holds a Fernet key: 44 characters of URL-safe Base64 on one
line, mode 0600. Kept apart from ``<state_dir>``, a backup or support bundle of the
state directory holds only ciphertexts it cannot open.
"""

import os
import secrets

from cryptography.fernet import Fernet

from rotordream.fsutil import fsync_directory


class KeyUnusable(Exception):
    """The key file cannot be used; the message says why, in one line."""


def _inside(path, directory):
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def load_key(path, state_dir):
    """A Fernet for the key in ``path``, creating the file (0600) if it is missing.

    Raise :class:`KeyUnusable` when there is no path, it lies inside ``state_dir``,
    it is missing and cannot be made, others may read it, or it holds no key.
    """
    if not path:
        raise KeyUnusable("no [auth] secret_file is set")
    if _inside(path, state_dir):
        raise KeyUnusable("%s is inside the state directory %s, where a copy of that "
                          "directory would reveal every password" % (path, state_dir))
    for _ in range(3):
        try:
            with open(path, "rb") as f:
                mode = os.fstat(f.fileno()).st_mode
                data = f.read(4096)
            break
        except FileNotFoundError:
            key = _create(path)
            if key is not None:
                return Fernet(key)
        except OSError as e:
            raise KeyUnusable("cannot read %s (%s)" % (path, e.strerror)) from None
    else:
        raise KeyUnusable("%s keeps vanishing" % path)
    if mode & 0o077:
        raise KeyUnusable("%s may be read by other users (mode %o); chmod 600 it"
                          % (path, mode & 0o777))
    try:
        return Fernet(data.strip())
    except ValueError:
        raise KeyUnusable("%s holds no key (44 characters of URL-safe Base64); delete it "
                          "to have a new one made" % path) from None


def _create(path):
    """Write a new key to ``path`` (0600); the key, or None if another process made one first."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise KeyUnusable("%s is missing and its directory %s does not exist"
                          % (path, directory))
    key = Fernet.generate_key()
    tmp = os.path.join(directory, ".%s.%s" % (os.path.basename(path), secrets.token_hex(4)))
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, key + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, path)  # never replaces a key another process made meanwhile
        fsync_directory(directory)
    except FileExistsError:
        return None
    except OSError as e:
        raise KeyUnusable("%s is missing and cannot be created (%s)"
                          % (path, e.strerror)) from None
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    return key
