"""The recordings directory: safe ids, the index, listing, deletion and retention.

The index (``index.json``, written atomically) is a cache of what the files
say: it is rebuilt from the ``.mp4`` files when it is missing or corrupt,
and entries left "in progress" by a crash are measured again at start.
Blocking work (probing files) is done by the caller in a worker thread.
"""

import json
import os
import re
import shutil
import time

from twisted.logger import Logger

from rotordream.fsutil import atomic_write, keep_corrupt_copy
from rotordream.recording import mp4

log = Logger()

INDEX = "index.json"
SUFFIX = ".mp4"
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


class UnknownRecording(KeyError):
    """No recording has this id (or the id could never name one)."""


def valid_id(rid):
    """True when ``rid`` can name a file in the recordings directory (no paths, no dots)."""
    return isinstance(rid, str) and bool(ID_RE.match(rid))


def slug(name):
    """A name reduced to what may appear in a file name ("" for none)."""
    return _NAME_UNSAFE.sub("_", name or "").strip("_")[:40]


def iso(ts):
    """UTC ISO 8601 with milliseconds for a POSIX time (None stays None)."""
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + ".%03dZ" % (int(ts * 1000) % 1000)


class RecordingStore:
    """The recordings in one directory and their index."""

    def __init__(self, directory, max_total_mb=0, min_free_mb=0):
        self.directory = os.path.abspath(directory)
        self.max_total = max_total_mb * 1024 * 1024
        self.min_free = min_free_mb * 1024 * 1024
        os.makedirs(self.directory, exist_ok=True)
        self.entries = {}
        self.deleted = {"user": 0, "space": 0}  # recordings deleted, by reason (metrics)

    def set_limits(self, max_total_mb, min_free_mb):
        """New retention limits (a reload); they apply at the next check."""
        self.max_total = max_total_mb * 1024 * 1024
        self.min_free = min_free_mb * 1024 * 1024

    def take_over(self, other):
        """Become ``other``, a store loaded for another directory (a reload moved the
        recordings directory): listings and new recordings go there from now on."""
        self.directory = other.directory
        self.entries = other.entries

    # -- paths ----------------------------------------------------------

    def path(self, rid):
        """The file of recording ``rid``; UnknownRecording for an id that is not one of ours."""
        if not valid_id(rid):
            raise UnknownRecording(rid)
        path = os.path.join(self.directory, rid + SUFFIX)
        # Belt and braces: the id pattern already excludes separators and dots.
        if os.path.dirname(path) != self.directory:
            raise UnknownRecording(rid)
        return path

    @staticmethod
    def session_id(start, name=None):
        """The id stem of a recording session started at ``start``: [name_]YYYYmmdd-HHMMSS."""
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(start))
        return "%s_%s" % (slug(name), stamp) if slug(name) else stamp

    def new_id(self, session, segment):
        """A fresh id for segment number ``segment`` of ``session``: <session>-NNN[_n]."""
        base = rid = "%s-%03d" % (session, segment)
        n = 1
        while rid in self.entries or os.path.exists(os.path.join(self.directory, rid + SUFFIX)):
            n += 1
            rid = "%s_%d" % (base, n)
        return rid

    # -- index ----------------------------------------------------------

    def load(self):
        """Read the index and reconcile it with the files (blocking: worker thread).

        Returns the ids that had to be measured again (crashed or unindexed).
        """
        index_path = os.path.join(self.directory, INDEX)
        entries = {}
        try:
            with open(index_path, "rb") as f:
                data = json.loads(f.read().decode("utf-8"))
            for e in data["recordings"]:
                if valid_id(e.get("id")):
                    entries[e["id"]] = e
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            log.error("recordings index {path} is unreadable ({e}); rebuilding it from the files",
                      path=index_path, e=e)
            keep_corrupt_copy(index_path, log)
        files = {f[:-len(SUFFIX)] for f in os.listdir(self.directory)
                 if f.endswith(SUFFIX) and valid_id(f[:-len(SUFFIX)])}
        measured = []
        for rid in list(entries):
            if rid not in files:
                del entries[rid]  # deleted behind our back
        for rid in files:
            e = entries.get(rid)
            if e is None or e.get("recording"):
                entries[rid] = self._measure(rid, e)
                measured.append(rid)
            else:
                e["size"] = os.path.getsize(self.path(rid))
        self.entries = entries
        if measured or not os.path.exists(index_path):
            self.save()
        return measured

    def _measure(self, rid, entry):
        path = self.path(rid)
        if entry is not None and entry.get("recording"):
            mp4.trim_torn_tail(path)  # a crash may have left half a fragment
        info = mp4.probe(path) or {"duration": 0.0, "frames": 0, "width": None,
                                   "height": None, "fps": None}
        st = os.stat(path)
        e = dict(entry or {})
        start = e.get("start_ts") or (st.st_mtime - info["duration"])
        e.update({"id": rid, "name": e.get("name") or "", "start_ts": start,
                  "end_ts": start + info["duration"], "duration": info["duration"],
                  "frames": info["frames"], "size": st.st_size, "width": info["width"],
                  "height": info["height"], "fps": info["fps"], "recording": False})
        if entry is not None and entry.get("recording"):
            e["recovered"] = True  # cut short by a crash; plays up to its last fragment
        return e

    def save(self):
        """Write the index atomically."""
        items = sorted(self.entries.values(), key=lambda e: (e["start_ts"], e["id"]))
        atomic_write(os.path.join(self.directory, INDEX),
                     json.dumps({"version": 1, "recordings": items}, indent=1).encode())

    def add(self, entry):
        """Index a new (in-progress) recording."""
        self.entries[entry["id"]] = entry
        self.save()

    def update(self, rid, save=True, **fields):
        """Change an entry's fields (e.g. at the end of a segment)."""
        self.entries[rid].update(fields)
        if save:
            self.save()

    # -- queries --------------------------------------------------------

    def get(self, rid):
        """The entry of ``rid``; UnknownRecording if there is none."""
        if not valid_id(rid) or rid not in self.entries:
            raise UnknownRecording(rid)
        return self.entries[rid]

    def latest(self):
        """The newest entry, or None."""
        if not self.entries:
            return None
        return max(self.entries.values(), key=lambda e: (e["start_ts"], e["id"]))

    def listing(self, since=None, until=None, offset=0, limit=100):
        """(total, page) of public entries, newest first, overlapping [since, until]."""
        items = sorted(self.entries.values(), key=lambda e: (e["start_ts"], e["id"]), reverse=True)
        if since is not None:
            items = [e for e in items if (e.get("end_ts") or time.time()) >= since]
        if until is not None:
            items = [e for e in items if e["start_ts"] <= until]
        return len(items), [public(e) for e in items[offset:offset + limit]]

    def total_bytes(self):
        """Bytes taken by every indexed recording."""
        return sum(e.get("size") or 0 for e in self.entries.values())

    def free_bytes(self):
        """Free bytes on the recordings' filesystem."""
        return shutil.disk_usage(self.directory).free

    # -- deletion and retention -------------------------------------------

    def delete(self, rid):
        """Delete a finished recording (its file and entry)."""
        e = self.get(rid)
        if e.get("recording"):
            raise ValueError("recording %s is being written" % rid)
        try:
            os.unlink(self.path(rid))
        except FileNotFoundError:
            pass
        del self.entries[rid]
        self.deleted["user"] += 1
        self.save()
        log.info("deleted recording {id}", event="recording_deleted", id=rid, reason="user")

    def make_room(self, incoming=0):
        """Delete the oldest finished recordings until the limits hold; True if they do.

        Limits: at least ``min_free`` bytes free after ``incoming`` more, and
        the total under ``max_total``.
        """
        def short():
            if self.free_bytes() - incoming < self.min_free:
                return True
            return bool(self.max_total) and self.total_bytes() + incoming > self.max_total
        deleted = False
        while short():
            done = [e for e in self.entries.values() if not e.get("recording")]
            if not done:
                break
            oldest = min(done, key=lambda e: (e["start_ts"], e["id"]))
            log.info("deleting recording {id} to make room", event="recording_deleted",
                     id=oldest["id"], reason="space")
            try:
                os.unlink(self.path(oldest["id"]))
            except FileNotFoundError:
                pass
            del self.entries[oldest["id"]]
            self.deleted["space"] += 1
            deleted = True
        if deleted:
            self.save()
        return not short()


def public(entry):
    """The API view of an index entry."""
    return {"id": entry["id"], "name": entry.get("name") or "",
            "start": iso(entry["start_ts"]), "end": iso(entry.get("end_ts")),
            "duration": entry.get("duration") or 0.0, "size": entry.get("size") or 0,
            "resolution": ("%dx%d" % (entry["width"], entry["height"])
                           if entry.get("width") else None),
            "fps": entry.get("fps"), "frames": entry.get("frames") or 0,
            "session": entry.get("session"), "segment": entry.get("segment"),
            "recording": bool(entry.get("recording")),
            "recovered": bool(entry.get("recovered"))}
