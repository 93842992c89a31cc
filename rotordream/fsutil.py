"""Crash-safe file writes shared by every part that persists something."""

import os
import tempfile


def atomic_write(path, data, mode=0o644):
    """Replace ``path`` with ``data`` (bytes) so a crash leaves old or new, never half.

    Writes a temp file in the same directory, fsyncs it, renames it over the
    target and fsyncs the directory so the rename itself is durable.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_directory(directory)


def fsync_directory(directory):
    """Make the entries of ``directory`` (a new or renamed file) durable."""
    dirfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


def keep_corrupt_copy(path, log=None):
    """Rename a file that failed to load aside (``.corrupt-N``) and return the new name."""
    n = 0
    while True:
        target = "%s.corrupt-%d" % (path, n)
        if not os.path.exists(target):
            break
        n += 1
    os.replace(path, target)
    if log is not None:
        log.warn("kept unreadable {path} as {target}", path=path, target=target)
    return target
