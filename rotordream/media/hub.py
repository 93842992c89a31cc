"""The stream hub: fan-out of encoded H.264 access units to every consumer.

Encode once, fan out: the capture thread hands each access unit to the
reactor thread (``reactor.callFromThread(hub.publish, au)``); the hub keeps
the current GOP so that a new subscriber (an RTSP client, the recorder, a
WebRTC peer) starts at a keyframe at once instead of waiting for the next.
Everything here runs in the reactor thread, except the keyframe request flag
(:meth:`StreamHub.request_keyframe`), which the capture thread reads.
"""

import collections
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from rotordream.h264 import join_annexb
from rotordream.interfaces import IStreamHub

log = Logger()


@dataclass(frozen=True)
class AccessUnit:
    """One encoded picture of one stream, as every consumer receives it."""

    stream: str             # "stream1" | "stream2"
    seq: int                # running count of access units of this stream
    nals: tuple             # NAL units without start codes, SPS/PPS first on keyframes
    keyframe: bool          # True for an IDR access unit
    pts: int                # presentation time, 90 kHz ticks of the capture clock
    capture_time: float     # wall clock (time.time()) when the frame was captured
    width: int
    height: int
    fps: float
    sps: bytes              # current sequence parameter set
    pps: bytes              # current picture parameter set
    generation: int = 0     # bumps when the encoder is re-opened (new size or rate)
    published: float = field(default=0.0, compare=False)  # monotonic time reached the hub

    @cached_property
    def annexb(self):
        """The access unit as an Annex B byte string (start codes); joined once, however
        many consumers (recorder, WebRTC viewers) ask."""
        return join_annexb(self.nals)

    @property
    def size(self):
        """Payload bytes (NAL units only)."""
        return sum(len(n) for n in self.nals)


class Subscription:
    """A consumer's place on a hub; ``cancel()`` stops delivery."""

    def __init__(self, hub, callback):
        self.hub = hub
        self.callback = callback
        self.active = True

    def cancel(self):
        """Stop delivering access units to this subscriber."""
        if self.active:
            self.active = False
            self.hub._remove(self)


@implementer(IStreamHub)
class StreamHub:
    """Fan-out of one encoded stream, keeping the current GOP for late joiners."""

    MAX_GOP = 1200  # access units kept at most, whatever the keyframe interval

    def __init__(self, name, monotonic=time.monotonic):
        self.name = name
        self._monotonic = monotonic
        self._subs = []
        self._gop = []
        self._waiting = []
        self._count_observers = []
        self.latest = None
        self.units = 0
        self.keyframes = 0
        self.bytes = 0
        self._window = collections.deque()  # (monotonic, bytes) over the last seconds
        self._keyframe_wanted = threading.Event()
        self.keyframe_requests = 0

    # -- forced keyframes -------------------------------------------------

    def request_keyframe(self):
        """Ask the encoder for an IDR as this stream's next picture (any thread).

        Requests until the encoder takes the flag count as one. Rate limits are the
        caller's (a forced IDR costs every consumer of the stream its bitrate).
        """
        self.keyframe_requests += 1
        self._keyframe_wanted.set()

    def take_keyframe_request(self):
        """True once after :meth:`request_keyframe` (the encoding thread, per picture)."""
        if not self._keyframe_wanted.is_set():
            return False
        self._keyframe_wanted.clear()
        return True

    # -- producer side --------------------------------------------------

    def publish(self, au):
        """Deliver one access unit to every subscriber (reactor thread)."""
        object.__setattr__(au, "published", self._monotonic())
        if au.keyframe:
            self._gop = [au]
            self.keyframes += 1
        elif self._gop:
            if len(self._gop) < self.MAX_GOP:
                self._gop.append(au)
            else:
                self._gop = []
        self.latest = au
        self.units += 1
        size = au.size
        self.bytes += size
        now = au.published
        self._window.append((now, size))
        while self._window and now - self._window[0][0] > 2.0:
            self._window.popleft()
        if au.keyframe and self._waiting:
            waiting, self._waiting = self._waiting, []
            for d in waiting:
                d.callback(au)
        for sub in list(self._subs):
            if not sub.active:
                continue
            try:
                sub.callback(au)
            except Exception:
                log.failure("subscriber of {hub} failed; dropping it", hub=self.name)
                sub.cancel()

    # -- consumer side --------------------------------------------------

    def subscribe(self, callback, replay=True):
        """Call ``callback(au)`` for every access unit from now on.

        With ``replay`` the current GOP (from its keyframe) is delivered first,
        synchronously, so the subscriber can decode at once.
        """
        sub = Subscription(self, callback)
        if replay:
            for au in list(self._gop):
                callback(au)
        self._subs.append(sub)
        self._counts_changed()
        return sub

    def _remove(self, sub):
        if sub in self._subs:
            self._subs.remove(sub)
            self._counts_changed()

    def gop(self):
        """The access units since the last keyframe (empty before the first)."""
        return list(self._gop)

    def keyframe(self):
        """A Deferred firing with a keyframe access unit: the cached one, or the next."""
        if self._gop:
            return defer.succeed(self._gop[0])
        d = defer.Deferred(lambda d: self._waiting.remove(d) if d in self._waiting else None)
        self._waiting.append(d)
        return d

    @property
    def subscribers(self):
        """How many consumers are subscribed now."""
        return len(self._subs)

    def observe_subscribers(self, fn):
        """Call ``fn(count)`` whenever the number of subscribers changes."""
        self._count_observers.append(fn)

    def _counts_changed(self):
        for fn in list(self._count_observers):
            fn(len(self._subs))

    # -- counters -------------------------------------------------------

    @property
    def bitrate(self):
        """Measured bitrate over the last two seconds, bit/s."""
        if len(self._window) < 2:
            return 0
        span = self._window[-1][0] - self._window[0][0]
        if span <= 0:
            return 0
        total = sum(s for _, s in list(self._window)[1:])
        return int(total * 8 / span)

    def stats(self):
        """Counters for the status APIs."""
        au = self.latest
        return {
            "units": self.units,
            "keyframes": self.keyframes,
            "bytes": self.bytes,
            "bitrate": self.bitrate,
            "subscribers": len(self._subs),
            "keyframe_requests": self.keyframe_requests,
            "width": au.width if au else None,
            "height": au.height if au else None,
            "fps": au.fps if au else None,
        }
