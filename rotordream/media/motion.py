"""A cheap motion detector: frame differences on a coarse grid of the stream2 luma plane.

:meth:`MotionDetector.feed` runs in the capture thread for every stream2 frame
(``IVideoPipeline.observe_frames``). It samples every ``STEP``-th pixel of the
luma plane, counts the samples whose brightness moved by more than
``PIXEL_THRESHOLD`` since the previous frame (after taking out the median shift
of all samples, so a global brightness step is no motion), and calls the frame "moving" when
more than ``AREA_THRESHOLD`` of them did. A debounce turns those per-frame
verdicts into a steady on/off state: on after ``ON_FRAMES`` moving frames in a
row, off after ``HOLD_SECONDS`` without one. Only changes of that state cross
to the reactor thread, through ``reactor.callFromThread``.

The cost is a strided copy, a subtraction and a median of about 15 000
samples at 640x360: a fraction of a millisecond, well inside a frame.
"""

import threading

import numpy as np

STEP = 4                 # sample every 4th pixel in both directions
PIXEL_THRESHOLD = 24     # luma levels (of 219) a sample must move to count as changed;
                         # above sensor noise, below a real object's edge
AREA_THRESHOLD = 0.01    # fraction of samples that must change for a moving frame
ON_FRAMES = 2            # consecutive moving frames before motion starts (one-frame flicker)
HOLD_SECONDS = 2.0       # quiet time before motion ends (no on/off chatter)


class MotionDetector:
    """Frame-difference motion detection with debounce; reports changes on the reactor.

    ``on_change(is_motion, capture_time)`` is called in the reactor thread.
    ``enabled`` may be flipped from any thread; a disabled detector forgets its
    previous frame so a re-enabled one does not compare across the gap.
    """

    def __init__(self, reactor, on_change, step=STEP, pixel_threshold=PIXEL_THRESHOLD,
                 area_threshold=AREA_THRESHOLD, on_frames=ON_FRAMES,
                 hold_seconds=HOLD_SECONDS):
        self.reactor = reactor
        self.on_change = on_change
        self.step = step
        self.pixel_threshold = pixel_threshold
        self.area_threshold = area_threshold
        self.on_frames = on_frames
        self.hold_seconds = hold_seconds
        self.enabled = True
        self.moving = False          # the debounced state (capture thread's view)
        self.last_fraction = 0.0     # changed fraction of the last frame, for diagnostics
        self._previous = None
        self._streak = 0
        self._last_motion = None
        # feed() is meant for one capture thread; the lock keeps a second caller
        # (a pipeline restart overlapping the old thread) from corrupting the state.
        self._lock = threading.Lock()

    def feed(self, luma, capture_time):
        """Look at one luma plane (numpy uint8 HxW) captured at ``capture_time`` (epoch s)."""
        if not self.enabled:
            self._previous = None
            return
        # A copy: the pipeline reuses the frame's memory once we return.
        sample = luma[::self.step, ::self.step].astype(np.int16)
        with self._lock:
            previous, self._previous = self._previous, sample
            if previous is None or previous.shape != sample.shape:
                return
            diff = sample - previous
            # A light switched on or an exposure step shifts every sample alike: take the
            # median shift out, so only what moved against the rest of the scene counts.
            diff -= np.int16(np.median(diff))
            changed = np.count_nonzero(np.abs(diff) > self.pixel_threshold)
            self.last_fraction = fraction = changed / sample.size
            report = self._debounce(fraction > self.area_threshold, capture_time)
        if report is not None:
            self.reactor.callFromThread(self.on_change, report, capture_time)

    def _debounce(self, moving_frame, now):
        """The new debounced state if it changed, else None."""
        if moving_frame:
            self._streak += 1
            self._last_motion = now
            if not self.moving and self._streak >= self.on_frames:
                self.moving = True
                return True
            return None
        self._streak = 0
        if self.moving and (self._last_motion is None
                            or now - self._last_motion >= self.hold_seconds):
            self.moving = False
            return False
        return None


def attach(pipeline, reactor, on_change, **kw):
    """A :class:`MotionDetector` fed by ``pipeline``'s stream2 frames (None without a pipeline)."""
    if pipeline is None:
        return None
    detector = MotionDetector(reactor, on_change, **kw)
    pipeline.observe_frames(detector.feed)
    return detector
