"""The capture/encode producer: one thread captures, adjusts and encodes both streams.

Each frame is captured once, adjusted once (numpy), encoded once per stream
and handed to the reactor thread with ``callFromThread`` into the stream
hubs, which fan it out to every consumer. Settings changes from the state
are picked up between frames; a size or rate change re-opens the encoder
(consumers see new SPS/PPS on the next keyframe) without a restart. A
failing source never stops the daemon: a NO SIGNAL card is encoded instead
and the source is retried with backoff.
"""

import collections
import threading
import time

from twisted.application import service
from twisted.internet import defer, threads
from twisted.logger import Logger
from zope.interface import implementer

from rotordream.interfaces import IVideoPipeline
from rotordream.media.encoder import EncoderSettings, H264Encoder
from rotordream.media.hub import AccessUnit, StreamHub
from rotordream.media.processing import IMAGE_KEYS, ImageProcessor, ImageSettings
from rotordream.media.snapshot import SnapshotCache
from rotordream.media.sources import NoSignalSource, SourceError, plane_views

log = Logger()

STREAM_KEYS = {
    "stream1": ("resolution", "fps", "stream1-bitrate", "stream1-gop"),
    "stream2": ("stream2-resolution", "stream2-fps", "stream2-bitrate", "stream2-gop"),
}
_WATCHED = set(IMAGE_KEYS) | {k for keys in STREAM_KEYS.values() for k in keys}
RETRY_MIN, RETRY_MAX = 1.0, 30.0


def _size(resolution):
    w, h = resolution.split("x")
    return int(w), int(h)


class StreamCounters:
    """Per-stream counters, written by the capture thread, read by the reactor."""

    def __init__(self):
        self.encoded = 0
        self.keyframes = 0
        self.encode_ms = collections.deque(maxlen=300)
        self.bytes = 0

    def as_dict(self):
        """The counters as plain numbers."""
        ms = sorted(self.encode_ms)
        return {
            "encoded": self.encoded,
            "keyframes": self.keyframes,
            "bytes": self.bytes,
            "encode_ms_avg": round(sum(ms) / len(ms), 2) if ms else None,
            "encode_ms_p99": round(ms[int(len(ms) * 0.99)], 2) if ms else None,
        }


@implementer(IVideoPipeline)
class VideoPipeline(service.Service):
    """The one capture/encode producer behind every video consumer.

    ``reactor`` receives access units via callFromThread; ``threadpool``
    encodes snapshots; ``state`` gives the settings and receives
    ``cam1-exists``/``cam2-exists``.
    """

    name = "pipeline"
    MAX_SNAPS = 10

    def __init__(self, reactor, state, source, threadpool, profile="baseline", threads=1):
        self.reactor = reactor
        self.state = state
        self.source = source
        self.hubs = {"stream1": StreamHub("stream1"), "stream2": StreamHub("stream2")}
        self.snapshots = SnapshotCache(reactor, threadpool, self.latest_frame,
                                       lambda: state.get("jpeg-quality"))
        self._profile = profile
        self._threads = threads
        self._stop = threading.Event()
        self._thread = None
        self._stopped = None
        self._latest = None          # (seq, VideoFrame) of stream1, for snapshots
        self._frame_waiters = []
        self._frame_observers = []
        self._settings_changed = True
        self._snaps = {}
        self._snap_count = 0
        self.captured = 0
        self.dropped = 0
        self.source_failures = 0
        self.latency_ms = collections.deque(maxlen=1000)  # capture -> hub, ms
        self.counters = {name: StreamCounters() for name in self.hubs}
        self.signal = False
        self.started = None
        self._unsubscribe = None
        self._image = ImageSettings.from_state(state)
        self._processor = ImageProcessor(self._image)

    # -- service --------------------------------------------------------

    def startService(self):
        """Start the capture thread."""
        service.Service.startService(self)
        self.started = time.time()
        self._unsubscribe = self.state.subscribe(self._state_changed)
        self.state.set_command("snap", self._snap_command)
        self._stop.clear()
        self._stopped = defer.Deferred()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._thread.start()

    def stopService(self):
        """Stop the capture thread; the Deferred fires once it has ended."""
        service.Service.stopService(self)
        if self._unsubscribe:
            self._unsubscribe()
        if self._thread is None:
            return defer.succeed(None)
        self._stop.set()
        thread, self._thread = self._thread, None
        # Join off the reactor thread so delivery of its last units cannot deadlock.
        return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                                         thread.join, 5.0)

    def _state_changed(self, changes, origin):
        if _WATCHED.intersection(changes):
            if set(IMAGE_KEYS).intersection(changes):
                # Only the settings here: the capture thread builds the lookup tables,
                # which would otherwise hold up the reactor on every image change.
                self._image = ImageSettings.from_state(self.state)
            self._settings_changed = True

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
        self._snap_count += 1
        snap_id = "%d-%d" % (int(time.time()), self._snap_count)
        self._snaps[snap_id] = self.snapshot()
        self._snaps[snap_id].addErrback(lambda f: None)
        while len(self._snaps) > self.MAX_SNAPS:
            self._snaps.pop(next(iter(self._snaps)))
        return snap_id

    def snap(self, snap_id):
        """Deferred firing with the JPEG taken as ``snap_id``; KeyError if unknown or expired."""
        d = self._snaps[snap_id]
        out = defer.Deferred()
        d.addCallback(lambda jpeg: (out.callback(jpeg), jpeg)[1])
        return out

    def observe_frames(self, fn):
        """Call ``fn(luma, capture_time)`` in the capture thread for every stream2 frame."""
        self._frame_observers.append(fn)

    def stats(self):
        """Counters for the status API."""
        lat = sorted(self.latency_ms)
        return {
            "source": self.source.name,
            "signal": self.signal,
            "captured": self.captured,
            "dropped": self.dropped,
            "source_failures": self.source_failures,
            "uptime": round(time.time() - self.started, 3) if self.started else 0,
            "latency_ms_p50": round(lat[len(lat) // 2], 2) if lat else None,
            "latency_ms_p99": round(lat[int(len(lat) * 0.99)], 2) if lat else None,
            "streams": {name: dict(self.counters[name].as_dict(), **hub.stats())
                        for name, hub in self.hubs.items()},
        }

    # -- capture thread -------------------------------------------------

    def _settings(self):
        out = {}
        for name, (res_key, fps_key, rate_key, gop_key) in STREAM_KEYS.items():
            w, h = _size(self.state.get(res_key))
            out[name] = EncoderSettings(w, h, self.state.get(fps_key),
                                        self.state.get(rate_key), self.state.get(gop_key),
                                        self._profile, self._threads)
        return out

    def _open_source(self, settings):
        s = settings["stream1"]
        try:
            self.source.open(s.width, s.height, s.fps)
            return self.source
        except SourceError as e:
            log.error("video source failed: {e}; showing NO SIGNAL", e=e)
            self.source_failures += 1
            card = NoSignalSource()
            card.open(s.width, s.height, s.fps)
            return card

    def _run(self):
        try:
            self._loop()
        except Exception:
            log.failure("capture thread crashed")
        finally:
            try:
                self.source.close()
            except Exception:
                pass

    def _loop(self):
        encoders = {}
        generation = {"stream1": 0, "stream2": 0}
        seqs = {"stream1": 0, "stream2": 0}
        settings = None
        active = None
        retry_at, backoff = 0.0, RETRY_MIN
        t0 = time.monotonic()
        next_due = t0
        next2_due = t0
        number = 0
        while not self._stop.is_set():
            if self._settings_changed or settings is None:
                self._settings_changed = False
                new = self._settings()
                for name, s in new.items():
                    if settings is None or settings[name] != s:
                        encoders[name] = H264Encoder(s)
                        generation[name] += 1
                geometry = (new["stream1"].width, new["stream1"].height, new["stream1"].fps)
                if settings is None or geometry != (settings["stream1"].width,
                                                    settings["stream1"].height,
                                                    settings["stream1"].fps):
                    if active is not None:
                        active.close()
                    active = self._open_source(new)
                    self._set_signal(active is self.source)
                    if active is not self.source:
                        retry_at = time.monotonic() + backoff
                settings = new
            s1, s2 = settings["stream1"], settings["stream2"]
            period = 1.0 / s1.fps
            if not active.paced:
                now = time.monotonic()
                if next_due - now > 0:
                    if self._stop.wait(next_due - now):
                        break
                elif now - next_due > 2 * period:
                    # Fell behind (machine busy): skip the missed slots, count them.
                    missed = int((now - next_due) / period)
                    self.dropped += missed
                    next_due += missed * period
                next_due += period
            # Retry a missing source with backoff while the card is shown.
            if active is not self.source and time.monotonic() >= retry_at:
                try:
                    self.source.open(s1.width, s1.height, s1.fps)
                    active.close()
                    active = self.source
                    backoff = RETRY_MIN
                    self._set_signal(True)
                    log.info("video source {name} is back", name=self.source.name)
                except SourceError as e:
                    backoff = min(backoff * 2, RETRY_MAX)
                    retry_at = time.monotonic() + backoff
                    log.debug("video source still failing: {e}", e=e)
            wall = time.time()
            mono = time.monotonic()
            try:
                frame = active.read(number, wall)
            except SourceError as e:
                log.error("video source failed: {e}; showing NO SIGNAL", e=e)
                self.source_failures += 1
                active.close()
                active = NoSignalSource()
                active.open(s1.width, s1.height, s1.fps)
                self._set_signal(False)
                retry_at, backoff = time.monotonic() + RETRY_MIN, RETRY_MIN
                next_due = time.monotonic()
                continue
            number += 1
            self.captured += 1
            processor = self._processor
            if processor.settings != self._image:
                processor = self._processor = ImageProcessor(self._image)
            if not processor.neutral:
                processor.apply(*plane_views(frame))
            pts = int((mono - t0) * 90000)
            self._encode("stream1", encoders["stream1"], frame, pts, wall, mono, s1,
                         generation, seqs)
            self._latest = (number, frame)
            if self._frame_waiters:
                self.reactor.callFromThread(self._wake_frame_waiters, (number, frame))
            if mono >= next2_due:
                next2_due = max(next2_due + 1.0 / s2.fps, mono - 1.0 / s2.fps)
                small = frame.reformat(width=s2.width, height=s2.height,
                                       interpolation="FAST_BILINEAR")
                if small is frame:
                    small = frame.reformat(width=s2.width, height=s2.height, format="yuv420p",
                                           interpolation="BILINEAR")
                self._encode("stream2", encoders["stream2"], small, pts, wall, mono, s2,
                             generation, seqs)
                if self._frame_observers:
                    luma = plane_views(small)[0]
                    for fn in list(self._frame_observers):
                        try:
                            fn(luma, wall)
                        except Exception:
                            log.failure("frame observer failed")

    def _encode(self, name, encoder, frame, pts, wall, mono, settings, generation, seqs):
        counters = self.counters[name]
        t = time.perf_counter()
        units = encoder.encode(frame, pts)
        counters.encode_ms.append((time.perf_counter() - t) * 1000)
        for unit in units:
            seqs[name] += 1
            counters.encoded += 1
            counters.keyframes += unit.keyframe
            au = AccessUnit(stream=name, seq=seqs[name], nals=tuple(unit.nals),
                            keyframe=unit.keyframe, pts=unit.pts, capture_time=wall,
                            width=settings.width, height=settings.height, fps=settings.fps,
                            sps=encoder.sps, pps=encoder.pps, generation=generation[name])
            counters.bytes += au.size
            self.reactor.callFromThread(self._publish, self.hubs[name], au, mono)

    def _publish(self, hub, au, mono):
        hub.publish(au)
        if hub.name == "stream1":
            self.latency_ms.append((time.monotonic() - mono) * 1000)

    def _wake_frame_waiters(self, latest):
        waiters, self._frame_waiters = self._frame_waiters, []
        for d in waiters:
            d.callback(latest)

    def _set_signal(self, ok):
        if ok != self.signal:
            self.signal = ok
            self.reactor.callFromThread(self.state.update, {"cam1-exists": ok}, "pipeline")
