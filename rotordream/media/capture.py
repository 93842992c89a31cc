"""The capture loop: one thread captures, adjusts and encodes both streams.

Each frame is captured once (through the :class:`SourceSupervisor`),
adjusted once (numpy), encoded once per stream and handed to a sink, which
takes it to the reactor thread. The thread never reads the camera state:
the reactor hands it an immutable :class:`CaptureSettings` through a
:class:`SettingsMailbox` whenever a setting it uses changes, and it picks
that up between frames. A size or rate change re-opens the encoder
(consumers see new SPS/PPS on the next keyframe) without a restart.
"""

import bisect
import collections
import threading
import time
from dataclasses import dataclass

from av.video.reformatter import VideoReformatter
from twisted.logger import Logger

from rotordream.media.encoder import EncoderSettings, H264Encoder
from rotordream.media.hub import AccessUnit
from rotordream.media.processing import IMAGE_KEYS, ImageProcessor, ImageSettings
from rotordream.media.sources import plane_views

log = Logger()

STREAM_KEYS = {
    "stream1": ("resolution", "fps", "stream1-bitrate", "stream1-gop"),
    "stream2": ("stream2-resolution", "stream2-fps", "stream2-bitrate", "stream2-gop"),
}
WATCHED = frozenset(IMAGE_KEYS) | {k for keys in STREAM_KEYS.values() for k in keys} | \
    {"profile"}


def _size(resolution):
    w, h = resolution.split("x")
    return int(w), int(h)


@dataclass(frozen=True)
class CaptureSettings:
    """Everything the capture thread needs from the state, frozen at one moment."""

    stream1: EncoderSettings
    stream2: EncoderSettings
    image: ImageSettings

    @classmethod
    def from_state(cls, state, threads=1):
        """Read the stream and image keys (in the reactor thread)."""
        streams = {}
        profile = state.get("profile")
        for name, (res_key, fps_key, rate_key, gop_key) in STREAM_KEYS.items():
            w, h = _size(state.get(res_key))
            streams[name] = EncoderSettings(w, h, state.get(fps_key), state.get(rate_key),
                                            state.get(gop_key), profile, threads)
        return cls(image=ImageSettings.from_state(state), **streams)

    def stream(self, name):
        """The EncoderSettings of ``name`` ('stream1' or 'stream2')."""
        return getattr(self, name)


class SettingsMailbox:
    """Hands the newest :class:`CaptureSettings` from the reactor to the capture thread."""

    def __init__(self, settings):
        self._lock = threading.Lock()
        self._settings = settings
        self._new = True

    def put(self, settings):
        """Replace the settings (reactor thread)."""
        with self._lock:
            self._settings, self._new = settings, True

    def take(self):
        """The settings if they changed since the last take, else None (capture thread)."""
        with self._lock:
            if not self._new:
                return None
            self._new = False
            return self._settings


# Upper bounds (seconds) of the encode and capture-to-hub histograms: a 30 fps frame
# has 33 ms, so the buckets are finest below that.
LATENCY_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.033, 0.05, 0.1, 0.25, 0.5, 1.0)


class Buckets:
    """A cumulative histogram kept as counts per bucket (one writer thread; readers copy).

    ``counts[i]`` counts values ``<= bounds[i]`` and above the bound before it; the last
    count is the values above every bound. ``sum`` is the total of every value.
    """

    def __init__(self, bounds=LATENCY_BOUNDS):
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value):
        """Count one value."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value


class StreamCounters:
    """Per-stream counters, written by the capture thread, read by the reactor."""

    def __init__(self):
        self.encoded = 0
        self.keyframes = 0
        self.encode_ms = collections.deque(maxlen=300)
        self.bytes = 0
        self.encode_seconds = Buckets()

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


class CaptureLoop:
    """The loop run by the capture thread (see module docstring).

    ``sink`` receives, in the capture thread: ``unit(name, au, mono)`` for
    every access unit, ``frame(number, frame)`` for every stream1 frame and
    ``small_frame(luma, wall)`` for every stream2-size frame; it is asked
    ``keyframe_wanted(name)`` before each picture of a stream is encoded (True:
    encode it as an IDR).
    """

    def __init__(self, supervisor, mailbox, sink):
        self.supervisor = supervisor
        self.mailbox = mailbox
        self.sink = sink
        self.stopping = threading.Event()
        self.captured = 0
        self.dropped = 0
        self.counters = {"stream1": StreamCounters(), "stream2": StreamCounters()}
        self._encoders = {}
        self._generation = {"stream1": 0, "stream2": 0}
        self._seqs = {"stream1": 0, "stream2": 0}
        self._settings = None
        self._processor = ImageProcessor()
        # One scaler for stream2, kept: frame.reformat() makes a new one per frame and,
        # with threads on auto, starts and stops its threads each time.
        self._scaler = VideoReformatter()

    def run(self):
        """Capture until :attr:`stopping` is set; the source is closed at the end."""
        # Each run starts afresh (a restarted service opens the source again).
        self._settings, self._encoders = None, {}
        self._generation = {"stream1": 0, "stream2": 0}
        self._seqs = {"stream1": 0, "stream2": 0}
        try:
            self._loop()
        except Exception:
            log.failure("capture thread crashed")
        finally:
            self.supervisor.close()

    def _apply(self, new):
        old = self._settings
        for name in ("stream1", "stream2"):
            if old is None or old.stream(name) != new.stream(name):
                self._encoders[name] = H264Encoder(new.stream(name))
                self._generation[name] += 1
        if old is None or old.image != new.image:
            # Built here, not in the reactor: the lookup tables take a while.
            self._processor = ImageProcessor(new.image)
        s1 = new.stream1
        if old is None or (s1.width, s1.height, s1.fps) != (old.stream1.width,
                                                          old.stream1.height, old.stream1.fps):
            self.supervisor.open(s1.width, s1.height, s1.fps)
        self._settings = new

    def _loop(self):
        t0 = time.monotonic()
        next_due = next2_due = t0
        number = 0
        while not self.stopping.is_set():
            new = self.mailbox.take()
            if new is not None:
                self._apply(new)
            s1, s2 = self._settings.stream1, self._settings.stream2
            period = 1.0 / s1.fps
            if not self.supervisor.paced:
                now = time.monotonic()
                if next_due - now > 0:
                    if self.stopping.wait(next_due - now):
                        break
                elif now - next_due > 2 * period:
                    # Fell behind (machine busy): skip the missed slots, count them.
                    missed = int((now - next_due) / period)
                    self.dropped += missed
                    next_due += missed * period
                next_due += period
            # Retry a missing source with backoff while the card is shown.
            self.supervisor.retry_if_due()
            wall = time.time()
            mono = time.monotonic()
            frame = self.supervisor.read(number, wall)
            if frame is None:
                next_due = time.monotonic()
                continue
            number += 1
            self.captured += 1
            if not self._processor.neutral:
                self._processor.apply(*plane_views(frame))
            pts = int((mono - t0) * 90000)
            self._encode("stream1", frame, pts, wall, mono, s1)
            self.sink.frame(number, frame)
            if mono >= next2_due:
                next2_due = max(next2_due + 1.0 / s2.fps, mono - 1.0 / s2.fps)
                small = self._scaler.reformat(frame, width=s2.width, height=s2.height,
                                              interpolation="FAST_BILINEAR", threads=1)
                if small is frame:
                    small = self._scaler.reformat(frame, width=s2.width, height=s2.height,
                                                  format="yuv420p", interpolation="BILINEAR",
                                                  threads=1)
                self._encode("stream2", small, pts, wall, mono, s2)
                self.sink.small_frame(plane_views(small)[0], wall)

    def _encode(self, name, frame, pts, wall, mono, settings):
        encoder = self._encoders[name]
        counters = self.counters[name]
        forced = self.sink.keyframe_wanted(name)
        t = time.perf_counter()
        units = encoder.encode(frame, pts, keyframe=forced)
        took = time.perf_counter() - t
        counters.encode_ms.append(took * 1000)
        counters.encode_seconds.observe(took)
        for unit in units:
            self._seqs[name] += 1
            counters.encoded += 1
            counters.keyframes += unit.keyframe
            au = AccessUnit(stream=name, seq=self._seqs[name], nals=tuple(unit.nals),
                            keyframe=unit.keyframe, pts=unit.pts, capture_time=wall,
                            width=settings.width, height=settings.height, fps=settings.fps,
                            sps=encoder.sps, pps=encoder.pps,
                            generation=self._generation[name])
            counters.bytes += au.size
            self.sink.unit(name, au, mono)
