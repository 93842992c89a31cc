"""The video pipeline service: the one capture/encode producer behind every video consumer.

It assembles the parts and carries frames between threads: the capture
loop (:mod:`rotordream.media.capture`) runs in its own thread with the
source supervisor (:mod:`rotordream.media.supervisor`); its access units
reach the stream hubs in the reactor thread with ``callFromThread``;
snapshots and snaps (:mod:`rotordream.media.snapshot`) are encoded in a
thread pool. Settings reach the capture thread as an immutable
:class:`CaptureSettings`, handed over whenever a key it uses changes.
"""

import collections
import threading
import time

from twisted.application import service
from twisted.internet import defer, threads
from twisted.logger import Logger
from zope.interface import implementer

from rotordream.interfaces import IVideoPipeline
from rotordream.media.capture import (WATCHED, Buckets, CaptureLoop, CaptureSettings,
                                      SettingsMailbox, StreamCounters)
from rotordream.media.hub import StreamHub
from rotordream.media.snapshot import SnapshotCache, SnapStore
from rotordream.media.supervisor import RETRY_MAX, RETRY_MIN, SourceSupervisor

log = Logger()

__all__ = ["VideoPipeline", "StreamCounters", "RETRY_MIN", "RETRY_MAX"]


@implementer(IVideoPipeline)
class VideoPipeline(service.Service):
    """The one capture/encode producer behind every video consumer.

    ``reactor`` receives access units via callFromThread; ``threadpool``
    encodes snapshots; ``state`` gives the settings and receives
    ``cam1-exists``/``cam2-exists``.
    """

    name = "pipeline"
    MAX_SNAPS = 10

    def __init__(self, reactor, state, source, threadpool, threads=1):
        self.reactor = reactor
        self.state = state
        self.source = source
        self.hubs = {"stream1": StreamHub("stream1"), "stream2": StreamHub("stream2")}
        self.snapshots = SnapshotCache(reactor, threadpool, self.latest_frame,
                                       lambda: state.get("jpeg-quality"))
        self.snaps = SnapStore(self.snapshot, self.MAX_SNAPS)
        self._threads = threads
        self._mailbox = SettingsMailbox(self._settings())
        self.supervisor = SourceSupervisor(source, on_signal=self._set_signal)
        self.capture = CaptureLoop(self.supervisor, self._mailbox, self)
        self._thread = None
        self._latest = None          # (seq, VideoFrame) of stream1, for snapshots
        self._frame_waiters = []
        self.frame_observers = []
        self.latency_ms = collections.deque(maxlen=1000)  # capture -> hub, ms
        self.capture_to_hub = Buckets()  # the same, as seconds, since the start
        self.signal = False
        self.started = None
        self._unsubscribe = None

    # -- service --------------------------------------------------------

    def startService(self):
        """Start the capture thread."""
        service.Service.startService(self)
        self.started = time.time()
        self._unsubscribe = self.state.subscribe(self._state_changed)
        self.state.set_command("snap", self._snap_command)
        self._mailbox.put(self._settings())
        self.capture.stopping.clear()
        self._thread = threading.Thread(target=self.capture.run, name="capture", daemon=True)
        self._thread.start()

    def stopService(self):
        """Stop the capture thread; the Deferred fires once it has ended."""
        service.Service.stopService(self)
        if self._unsubscribe:
            self._unsubscribe()
        if self._thread is None:
            return defer.succeed(None)
        self.capture.stopping.set()
        thread, self._thread = self._thread, None
        # Join off the reactor thread so delivery of its last units cannot deadlock.
        return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                                         thread.join, 5.0)

    def _settings(self):
        return CaptureSettings.from_state(self.state, self._threads)

    def _state_changed(self, changes, origin):
        if WATCHED.intersection(changes):
            self._mailbox.put(self._settings())

    # -- consumer API ---------------------------------------------------

    def latest_frame(self):
        """(seq, av.VideoFrame) of the latest stream1 frame, or None before the first."""
        return self._latest

    def next_frame(self):
        """Deferred firing with (seq, frame) of the next captured frame."""
        d = defer.Deferred()
        self._frame_waiters.append(d)
        return d

    def snapshot(self, quality=None):
        """Deferred firing with a JPEG of the latest full-resolution frame."""
        if self._latest is None:
            return self.next_frame().addCallback(lambda _: self.snapshots.get(quality))
        return self.snapshots.get(quality)

    def _snap_command(self, values, origin):
        # A trigger: nothing is stored; the writer is told where the JPEG is.
        if not values["snap"]:
            return None
        snap_id = self.take_snap()
        return {"snap": {"id": snap_id, "url": "/api/snapshot?snap=%s" % snap_id}}

    def take_snap(self):
        """Keep a JPEG of the current frame under a new id (the ``snap`` key); return the id.

        The last ``MAX_SNAPS`` stay fetchable with :meth:`snap`.
        """
        return self.snaps.take()

    def snap(self, snap_id):
        """Deferred firing with the JPEG taken as ``snap_id``; KeyError if unknown or expired."""
        return self.snaps.get(snap_id)

    def observe_frames(self, fn):
        """Call ``fn(luma, capture_time)`` in the capture thread for every stream2 frame."""
        self.frame_observers.append(fn)

    @property
    def counters(self):
        """Per-stream :class:`StreamCounters`."""
        return self.capture.counters

    def stats(self):
        """Counters for the status API."""
        lat = sorted(self.latency_ms)
        return {
            "source": self.source.name,
            "signal": self.signal,
            "captured": self.capture.captured,
            "dropped": self.capture.dropped,
            "source_failures": self.supervisor.failures,
            "uptime": round(time.time() - self.started, 3) if self.started else 0,
            "latency_ms_p50": round(lat[len(lat) // 2], 2) if lat else None,
            "latency_ms_p99": round(lat[int(len(lat) * 0.99)], 2) if lat else None,
            "streams": {name: dict(self.counters[name].as_dict(), **hub.stats())
                        for name, hub in self.hubs.items()},
        }

    def histograms(self):
        """Latency histograms (:class:`rotordream.media.capture.Buckets`) since the start."""
        return {"encode_seconds": {name: self.counters[name].encode_seconds
                                   for name in self.hubs},
                "capture_to_hub_seconds": self.capture_to_hub}

    # -- the capture loop's sink (capture thread) -------------------------

    def unit(self, name, au, mono):
        """An encoded access unit: to its hub in the reactor thread."""
        self.reactor.callFromThread(self._publish, self.hubs[name], au, mono)

    def frame(self, number, frame):
        """A captured stream1 frame: kept for snapshots, handed to frame waiters."""
        self._latest = (number, frame)
        if self._frame_waiters:
            self.reactor.callFromThread(self._wake_frame_waiters, (number, frame))

    def keyframe_wanted(self, name):
        """True once after a keyframe request on ``name``'s hub (capture thread)."""
        return self.hubs[name].take_keyframe_request()

    def small_frame(self, luma, wall):
        """A stream2-size frame's luma plane: to the frame observers (motion detection)."""
        for fn in list(self.frame_observers):
            try:
                fn(luma, wall)
            except Exception:
                log.failure("frame observer failed")

    def _publish(self, hub, au, mono):
        hub.publish(au)
        if hub.name == "stream1":
            took = time.monotonic() - mono
            self.latency_ms.append(took * 1000)
            self.capture_to_hub.observe(took)

    def _wake_frame_waiters(self, latest):
        waiters, self._frame_waiters = self._frame_waiters, []
        for d in waiters:
            d.callback(latest)

    def _set_signal(self, ok):
        if ok != self.signal:
            self.signal = ok
            self.reactor.callFromThread(self.state.update, {"cam1-exists": ok}, "pipeline")
