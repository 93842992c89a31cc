"""Video sources behind one interface: built-in test pattern, V4L2 device, looping file.

A source is opened at a size and rate and then ``read()`` returns a new
yuv420p ``av.VideoFrame`` of exactly that size each call. ``paced`` says
whether ``read()`` itself waits for the next frame (a device) or the caller
must pace it (test pattern, file). Sources run in the capture thread only.
"""

import time

import av
import numpy as np
from av.video.frame import VideoFrame

from rotordream.media.font import draw_text


class SourceError(Exception):
    """The source cannot deliver frames (missing device, unreadable file, unplugged)."""


def new_frame(width, height):
    """A new yuv420p frame and writable numpy views (y, u, v) of its visible planes."""
    frame = VideoFrame(width, height, "yuv420p")
    views = []
    for plane, (w, h) in zip(frame.planes, ((width, height), (width // 2, height // 2),
                                            (width // 2, height // 2))):
        buf = np.frombuffer(plane, dtype=np.uint8).reshape(h, plane.line_size)
        views.append(buf[:, :w])
    return frame, views[0], views[1], views[2]


def plane_views(frame):
    """Writable numpy views (y, u, v) of a yuv420p frame's visible planes."""
    w, h = frame.width, frame.height
    out = []
    for plane, (pw, ph) in zip(frame.planes, ((w, h), (w // 2, h // 2), (w // 2, h // 2))):
        out.append(np.frombuffer(plane, dtype=np.uint8).reshape(ph, plane.line_size)[:, :pw])
    return out


# SMPTE-like colour bars in YUV (BT.601, limited range).
_BARS = ((180, 128, 128), (168, 44, 136), (145, 147, 44), (133, 63, 52),
         (63, 193, 204), (51, 109, 212), (28, 212, 120), (16, 128, 128))


class TestPatternSource:
    """The built-in camera: colour bars, a moving bar, a running clock and a frame counter.

    Freezes and latency are visible at a glance: the clock shows the capture
    wall time with milliseconds and the counter increases by one per frame.
    """

    paced = False
    name = "testsrc"

    def __init__(self):
        self._bg = None

    def open(self, width, height, fps):
        """Prepare the background for ``width`` x ``height``."""
        self.width, self.height, self.fps = width, height, fps
        y = np.empty((height, width), np.uint8)
        u = np.empty((height // 2, width // 2), np.uint8)
        v = np.empty_like(u)
        n = len(_BARS)
        for i, (by, bu, bv) in enumerate(_BARS):
            x0, x1 = i * width // n, (i + 1) * width // n
            y[:, x0:x1] = by
            u[:, x0 // 2:x1 // 2] = bu
            v[:, x0 // 2:x1 // 2] = bv
        # A luma ramp along the bottom fifth shows contrast and brightness changes.
        ramp_top = height * 4 // 5
        y[ramp_top:, :] = np.linspace(16, 235, width, dtype=np.float32).astype(np.uint8)
        u[ramp_top // 2:, :] = 128
        v[ramp_top // 2:, :] = 128
        self._bg = (y, u, v)
        self._scale = max(2, height // 80)

    def read(self, number, wall_time):
        """Draw frame ``number`` stamped with ``wall_time``."""
        frame, y, u, v = new_frame(self.width, self.height)
        by, bu, bv = self._bg
        y[:] = by
        u[:] = bu
        v[:] = bv
        w, h = self.width, self.height
        # A bar moving one screen width every 4 seconds.
        bar_w = max(4, w // 40)
        x = int(number * w / (4 * self.fps)) % (w - bar_w)
        y[: h * 4 // 5, x:x + bar_w] = 235
        u[: h * 2 // 5, x // 2:(x + bar_w) // 2] = 128
        v[: h * 2 // 5, x // 2:(x + bar_w) // 2] = 128
        s = self._scale
        stamp = time.strftime("%H:%M:%S", time.localtime(wall_time)) + ".%03d" % (
            int(wall_time * 1000) % 1000)
        draw_text(y, stamp, s * 2, s * 2, s, 235, background=16)
        draw_text(y, "#%d" % number, s * 2, s * 12, s, 235, background=16)
        return frame

    def close(self):
        """Nothing to release."""


class NoSignalSource(TestPatternSource):
    """The card shown while the real source is missing: grey, "NO SIGNAL" and the clock."""

    name = "nosignal"

    def read(self, number, wall_time):
        """A grey card saying NO SIGNAL with the time, so a viewer knows the stream is alive."""
        frame, y, u, v = new_frame(self.width, self.height)
        y[:] = 40
        u[:] = 128
        v[:] = 128
        s = max(1, min(self.height // 40, self.width // 60))
        draw_text(y, "NO SIGNAL", self.width // 2 - 27 * s, self.height // 2 - 4 * s, s, 235)
        stamp = time.strftime("%H:%M:%S", time.localtime(wall_time))
        draw_text(y, stamp, self.width // 2 - 24 * s // 2, self.height // 2 + 6 * s, s // 2 or 1,
                  200)
        return frame


class _DecodingSource:
    """Shared part of sources decoded by PyAV (devices and files)."""

    container = None

    def _scaled(self, frame):
        out = frame.reformat(width=self.width, height=self.height, format="yuv420p")
        if out is frame:
            # reformat returns the same object when nothing changes; we write in place.
            out = frame.reformat(width=self.width, height=self.height, format="yuv420p",
                                 interpolation="FAST_BILINEAR")
        return out

    def close(self):
        """Close the container."""
        if self.container is not None:
            try:
                self.container.close()
            except Exception:
                pass
            self.container = None


class V4L2Source(_DecodingSource):
    """A V4L2 camera (``/dev/videoN``) read with PyAV; the device paces the frames."""

    paced = True
    name = "v4l2"

    def __init__(self, device):
        self.device = device

    def open(self, width, height, fps):
        """Open the device asking for the size and rate (it may deliver others; we scale)."""
        self.width, self.height, self.fps = width, height, fps
        try:
            self.container = av.open(self.device, format="v4l2", options={
                "video_size": "%dx%d" % (width, height), "framerate": str(fps)})
            self._frames = self.container.decode(video=0)
        except (av.FFmpegError, OSError) as e:
            raise SourceError("cannot open %s: %s" % (self.device, e)) from e

    def read(self, number, wall_time):
        """The next frame from the device."""
        try:
            return self._scaled(next(self._frames))
        except (av.FFmpegError, OSError, StopIteration) as e:
            raise SourceError("%s stopped delivering: %s" % (self.device, e)) from e


class FileSource(_DecodingSource):
    """A video file played in a loop at the configured rate (for demos and tests)."""

    paced = False
    name = "file"

    def __init__(self, path):
        self.path = path

    def open(self, width, height, fps):
        """Open the file; fail with SourceError if it has no decodable video."""
        self.width, self.height, self.fps = width, height, fps
        self._reopen()

    def _reopen(self):
        self.close()
        try:
            self.container = av.open(self.path)
            if not self.container.streams.video:
                raise SourceError("%s has no video stream" % self.path)
            self._frames = self.container.decode(video=0)
        except (av.FFmpegError, OSError) as e:
            raise SourceError("cannot open %s: %s" % (self.path, e)) from e

    def read(self, number, wall_time):
        """The next frame of the file, starting over at the end."""
        for attempt in range(2):
            try:
                return self._scaled(next(self._frames))
            except StopIteration:
                self._reopen()
            except (av.FFmpegError, OSError) as e:
                raise SourceError("cannot read %s: %s" % (self.path, e)) from e
        raise SourceError("%s has no frames" % self.path)


def make_source(kind, arg):
    """The source for a parsed ``--source`` spec (see config.parse_source)."""
    if kind == "testsrc":
        return TestPatternSource()
    if kind == "v4l2":
        return V4L2Source(arg)
    if kind == "file":
        return FileSource(arg)
    raise ValueError("unknown source %r" % kind)
