"""A video track that hands aiortc the hub's encoded access units, not frames.

aiortc packs an ``av.Packet`` returned by ``recv()`` into RTP (STAP-A/FU-A)
without encoding it, so every WebRTC viewer shares the one encode.
"""

import asyncio
from fractions import Fraction

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

TIME_BASE = Fraction(1, 90000)


def packet_for(au):
    """The ``av.Packet`` aiortc sends for one access unit (Annex B, 90 kHz pts)."""
    packet = av.Packet(au.annexb)
    packet.pts = packet.dts = au.pts
    packet.time_base = TIME_BASE
    packet.is_keyframe = au.keyframe
    return packet


class HubTrack(MediaStreamTrack):
    """The live stream of one hub as an aiortc video track.

    Starts at the hub's cached keyframe, so a browser shows a picture at once.
    A viewer whose sender falls ``max_queue`` access units or ``max_lag`` seconds
    behind skips to the next keyframe instead of draining a backlog (counted in
    ``skipped``); :meth:`resync` does the same on the viewer's request (PLI).
    """

    kind = "video"

    def __init__(self, hub, max_queue=90, max_lag=1.0):
        super().__init__()
        self.max_queue = max_queue
        self.max_lag = max_lag
        self.resyncs = 0
        self.skipped = 0
        self.sent = 0
        self.hub = hub
        self._queue = asyncio.Queue()
        self._waiting_keyframe = False
        self._last_pts = None
        self._next = None   # the subscription to a hub being switched to
        # The cached GOP is old by design: its units count as taken when the newest was.
        self._stamp = hub.latest.published if hub.latest is not None else 0.0
        self._sub = hub.subscribe(self._take, replay=True)
        self._stamp = None

    def switch(self, hub, cut=False):
        """Go on with ``hub`` from its next keyframe; the old hub feeds until then.

        No renegotiation: the keyframe carries the new SPS/PPS in-band, and the
        two streams share one capture clock, so their timestamps follow on.
        ``cut``: the old stream stops at once (a congested link: its frames would
        only delay the new keyframe, and the picture is broken already).
        """
        if self._next is not None:
            self._next.cancel()
            self._next = None
        if self._sub is None or hub is self.hub:
            return
        if cut:
            self._sub.cancel()
            self._drain()
            self._waiting_keyframe = True
            self.hub = hub
            self._sub = hub.subscribe(self._take, replay=False)
            return

        switched = False

        def deliver(au):
            nonlocal switched
            if not switched:
                if not au.keyframe or self._sub is None:
                    return
                switched = True
                self._sub.cancel()
                self._sub, self._next, self.hub = nxt, None, hub
                # The old stream's frames still queued go first: they are older.
                self._waiting_keyframe = False
            self._take(au)
        nxt = self._next = hub.subscribe(deliver, replay=False)

    def resync(self, alternative=None, on_switch=None):
        """Drop what is queued and go on from the next keyframe (the viewer lost its
        picture: the frames in between cannot be decoded anyway).

        ``alternative``: another hub whose keyframe may be taken instead, whichever
        comes first; ``on_switch(name)`` is called if it was (the viewer is on it now).
        Not while a switch is pending (that one's keyframe may be taken already).
        """
        self.resyncs += 1
        self._drain()
        self._waiting_keyframe = True
        if alternative is None or alternative is self.hub or self._next is not None \
                or self._sub is None:
            return

        def deliver(au):
            if not self._waiting_keyframe:     # this stream's keyframe came first
                nxt.cancel()
                self._next = None
            elif au.keyframe:                  # the other's came first: move over
                self._sub.cancel()
                self._sub, self._next, self.hub = nxt, None, alternative
                nxt.callback = self._take
                self._take(au)
                if on_switch is not None:
                    on_switch(alternative.name)
        nxt = self._next = alternative.subscribe(deliver, replay=False)

    def _behind(self, au):
        if self._queue.qsize() >= self.max_queue:
            return True
        if self._queue.empty():
            return False
        oldest = self._queue._queue[0]   # asyncio.Queue keeps a deque
        return oldest is not None and au.published - oldest[1] > self.max_lag

    def _take(self, au):
        # Called in the reactor thread, which is the asyncio loop's thread.
        if self._behind(au):
            self._drain()
            self._waiting_keyframe = True
        if self._waiting_keyframe:
            if not au.keyframe:
                self.skipped += 1
                return
            self._waiting_keyframe = False
        self._queue.put_nowait((au, au.published if self._stamp is None else self._stamp))

    def _drain(self):
        while not self._queue.empty():
            self._queue.get_nowait()
            self.skipped += 1

    async def recv(self):
        """The next access unit as a packet; MediaStreamError once stopped."""
        if self.readyState != "live":
            raise MediaStreamError
        item = await self._queue.get()
        if item is None:
            raise MediaStreamError
        au = item[0]
        self.sent += 1
        packet = packet_for(au)
        # Strictly increasing: after a switch the new stream's keyframe may carry the
        # time of a picture already sent from the old one.
        if self._last_pts is not None and packet.pts <= self._last_pts:
            packet.pts = packet.dts = self._last_pts + 1
        self._last_pts = packet.pts
        return packet

    def stop(self):
        """Leave the hub and end ``recv``."""
        if self._next is not None:
            self._next.cancel()
            self._next = None
        if self._sub is not None:
            self._sub.cancel()
            self._sub = None
            self._drain()
            self._queue.put_nowait(None)
        super().stop()
