"""JPEG snapshots of the latest frame, encoded off the reactor thread, cached per frame;
snaps kept under an id for later fetching.

However many clients ask at once, each (frame, quality) is encoded once:
concurrent requests share the in-flight Deferred, later ones the cached bytes.
"""

import time
from fractions import Fraction

import av
from av.video.reformatter import VideoReformatter
from twisted.internet import defer, threads
from twisted.python.failure import Failure


def jpeg_qscale(quality):
    """Map a 1-100 quality to the MJPEG quantiser (31 worst .. 2 best)."""
    quality = max(1, min(100, int(quality)))
    return int(round(31 - (quality - 1) * 29 / 99))


def encode_jpeg(frame, quality):
    """Encode an av.VideoFrame as JPEG bytes at ``quality`` (1-100)."""
    ctx = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height = frame.width, frame.height
    ctx.pix_fmt = "yuvj420p"
    ctx.time_base = Fraction(1, 30)
    q = str(jpeg_qscale(quality))
    ctx.options = {"qmin": q, "qmax": q}
    ctx.open()
    # The frame belongs to the capture thread, which is reformatting it for stream2 at the
    # same time: frame.reformat() would share the frame's cached SwsContext across threads
    # (seen deadlocked). A private reformatter has its own.
    src = VideoReformatter().reformat(frame, format="yuvj420p")
    src.pts = None
    packets = list(ctx.encode(src)) + list(ctx.encode(None))
    return b"".join(bytes(p) for p in packets)


class SnapshotCache:
    """Encodes and caches JPEGs of ``latest()`` -> (seq, frame) in a thread pool."""

    def __init__(self, reactor, threadpool, latest, default_quality):
        self._reactor = reactor
        self._pool = threadpool
        self._latest = latest
        self._default_quality = default_quality
        self._cache = {}      # (seq, quality) -> bytes, only for the newest seq
        self._inflight = {}   # (seq, quality) -> [Deferred waiting]
        self.encodes = 0

    def get(self, quality=None):
        """Deferred firing with JPEG bytes of the latest frame at ``quality``."""
        latest = self._latest()
        if latest is None:
            return defer.fail(LookupError("no frame captured yet"))
        seq, frame = latest
        quality = self._default_quality() if quality is None else quality
        key = (seq, quality)
        if key in self._cache:
            return defer.succeed(self._cache[key])
        waiting = self._inflight.get(key)
        d = defer.Deferred()
        if waiting is not None:
            waiting.append(d)
            return d
        self._inflight[key] = [d]
        self.encodes += 1
        work = threads.deferToThreadPool(self._reactor, self._pool, encode_jpeg, frame, quality)
        work.addBoth(self._done, key)
        return d

    def _done(self, result, key):
        waiters = self._inflight.pop(key, [])
        if not isinstance(result, Failure):
            # Keep only the newest frame's JPEGs: older ones are never asked again.
            self._cache = {k: v for k, v in self._cache.items() if k[0] == key[0]}
            self._cache[key] = result
        for d in waiters:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(result)


class SnapStore:
    """JPEGs kept under an id (the ``snap`` command) until ``limit`` newer ones are taken.

    ``take_jpeg()`` returns a Deferred firing with the JPEG of the current
    frame; ``wall`` gives the time used in ids.
    """

    def __init__(self, take_jpeg, limit=10, wall=time.time):
        self._take_jpeg = take_jpeg
        self.limit = limit
        self._wall = wall
        self._snaps = {}
        self._count = 0

    def take(self):
        """Keep a JPEG of the current frame under a new id; return the id."""
        self._count += 1
        snap_id = "%d-%d" % (int(self._wall()), self._count)
        d = self._snaps[snap_id] = self._take_jpeg()
        d.addErrback(lambda f: None)
        while len(self._snaps) > self.limit:
            self._snaps.pop(next(iter(self._snaps)))
        return snap_id

    def get(self, snap_id):
        """Deferred firing with the JPEG taken as ``snap_id``; KeyError if unknown or expired."""
        d = self._snaps[snap_id]
        out = defer.Deferred()
        d.addCallback(lambda jpeg: (out.callback(jpeg), jpeg)[1])
        return out
