"""HLS packaging on demand: a stream is packaged only while someone asks for it.

The first request for a stream subscribes to its hub (the cached GOP comes
first, so the playlist starts at a keyframe at once); after ``idle_timeout``
seconds without a request it unsubscribes and forgets everything, so an
unwatched camera spends nothing on HLS. Blocking requests (a playlist with
``_HLS_msn``/``_HLS_part``, a preload-hinted part) wait on :meth:`HlsStream.wait`,
bounded in number and time.
"""

from twisted.internet import defer
from twisted.logger import Logger

from rotordream.hls.packager import Init, Packager
from rotordream.hls.playlist import Playlist

log = Logger()


class TooMany(Exception):
    """More blocking requests are waiting than ``max_waiting`` allows."""


class HlsStream:
    """One stream's packager and playlist, alive while requested."""

    def __init__(self, name, hub, clock, config):
        self.name = name
        self.hub = hub
        self.clock = clock
        self.config = config
        self.playlist = None
        self.requests = 0
        self._packager = None
        self._sub = None
        self._waiters = []        # (predicate, Deferred, timer)
        self._idle = None
        self.parts_made = 0

    @property
    def active(self):
        """True while packaging."""
        return self._sub is not None

    def touch(self):
        """A request arrived: package (start if idle) and push the idle deadline back."""
        self.requests += 1
        if self._sub is None:
            self._packager = Packager(self.config.part_duration)
            self.playlist = Playlist(self.config.part_duration, self.config.window)
            self._sub = self.hub.subscribe(self._on_unit, replay=True)
            log.info("HLS packaging of {stream} started", event="hls_start", stream=self.name)
        if self._idle is not None and self._idle.active():
            self._idle.reset(self.config.idle_timeout)
        else:
            self._idle = self.clock.callLater(self.config.idle_timeout, self.stop)

    def stop(self):
        """Stop packaging and forget the playlist; waiting requests get what exists."""
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None
        if self._sub is not None:
            self._sub.cancel()
            self._sub = None
            log.info("HLS packaging of {stream} stopped (idle)", event="hls_stop",
                     stream=self.name)
        if self._packager is not None:
            self._packager.close()
            self._packager = None
        self.playlist = None
        waiters, self._waiters = self._waiters, []
        for _, d, timer in waiters:
            if timer.active():
                timer.cancel()
            d.callback(False)

    def _on_unit(self, au):
        try:
            made = self._packager.add(au)
        except Exception:
            log.failure("HLS packaging of {stream} failed", stream=self.name)
            return
        if not made:
            return
        for item in made:
            if isinstance(item, Init):
                self.playlist.add_init(item)
            else:
                self.playlist.add_part(item)
                self.parts_made += 1
        self._wake()

    def _wake(self):
        still = []
        for predicate, d, timer in self._waiters:
            if predicate():
                if timer.active():
                    timer.cancel()
                d.callback(True)
            else:
                still.append((predicate, d, timer))
        self._waiters = still

    def wait(self, predicate, timeout):
        """A Deferred firing True once ``predicate()`` holds after a new part (at once if it
        does now), False after ``timeout`` seconds or when packaging stops. TooMany when
        ``max_waiting`` requests wait already."""
        if predicate():
            return defer.succeed(True)
        if len(self._waiters) >= self.config.max_waiting:
            raise TooMany("too many blocking requests")
        d = defer.Deferred(canceller=lambda d: self._drop(d))
        entry = None

        def expire():
            self._drop(d)
            d.callback(False)
        timer = self.clock.callLater(timeout, expire)
        entry = (predicate, d, timer)
        self._waiters.append(entry)
        return d

    def _drop(self, d):
        for entry in list(self._waiters):
            if entry[1] is d:
                self._waiters.remove(entry)
                if entry[2].active():
                    entry[2].cancel()

    def status(self):
        """Counters for status and metrics."""
        last = self.playlist.last if self.playlist is not None else None
        return {"active": self.active, "requests": self.requests, "parts": self.parts_made,
                "waiting": len(self._waiters), "last_msn": last.msn if last else None}


class HlsService:
    """The HLS streams by name (stream1, stream2)."""

    def __init__(self, hubs, clock, config):
        """``config`` is the ``[hls]`` section."""
        self.config = config
        self.streams = {name: HlsStream(name, hub, clock, config) for name, hub in hubs.items()}

    def reconfigure(self, config):
        """Apply a reloaded ``[hls]`` section (part duration and window from the next start)."""
        self.config = config
        for stream in self.streams.values():
            stream.config = config

    def stop(self):
        """Stop packaging every stream."""
        for stream in self.streams.values():
            stream.stop()

    def counters(self):
        """Per stream: status dicts, for metrics."""
        return {name: s.status() for name, s in self.streams.items()}
