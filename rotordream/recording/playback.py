"""RTSP playback of recordings: one paced RTP source per session, reading MP4 in a worker thread.

The RTSP server asks :class:`RecordingPlayback` to describe a recording
(``/recording`` = the latest, ``/recording/<id>``) and for a
:class:`FilePlayer` per session. A player seeks to the keyframe at or
before the requested npt, then sends access units in real time from a
small read-ahead queue; PAUSE keeps its place; the end of the file sends
RTCP BYE so clients finish cleanly.

In ONVIF replay (the core's :class:`~rotordream.rtsp.effects.Replay`) every
packet carries the ONVIF RTP header extension: the access unit's absolute
NTP time (the recording's start plus its file time), C on keyframes, E on
the last unit of the file, and the low byte of the PLAY's CSeq; without rate
control a TCP client is sent units as fast as its connection drains.
"""

import collections
import struct
import time
from dataclasses import dataclass

from twisted.internet import defer, threads
from twisted.logger import Logger

from rotordream.h264 import first_parameter_sets
from rotordream.recording import mp4
from rotordream.recording.store import UnknownRecording
from rotordream.rtp.clock import ntp_timestamp
from rotordream.rtp.sender import RtpSource

log = Logger()

READ_AHEAD = 2.0   # seconds of access units read per worker call
LOW_WATER = 1.0    # read more when less than this is queued
REPLAY_PROFILE = 0xABAC      # "defined by profile" value of the ONVIF replay extension
_EXTENSION = struct.Struct("!HHQBBH")
EXTENSION_BYTES = _EXTENSION.size    # 16: the extension header and its 3 words
UNPACED_RETRY = 0.01         # seconds before looking again at a full TCP connection


def replay_extension(ntp, clean=False, end=False, discontinuity=False, cseq=0):
    """The ONVIF replay RTP header extension (ONVIF Streaming Specification): profile
    0xABAC, length 3, the 64-bit NTP time, then C, E, D flags, the CSeq byte and padding."""
    flags = (clean << 7) | (end << 6) | (discontinuity << 5)
    return _EXTENSION.pack(REPLAY_PROFILE, 3, ntp, flags, cseq & 0xFF, 0)


def with_extension(packet, extension):
    """An RTP packet (12-byte header, no CSRCs) with ``extension`` and the X bit added."""
    return bytes((packet[0] | 0x10,)) + packet[1:12] + extension + packet[12:]


@dataclass(frozen=True)
class Unit:
    """What an RTP target needs of an access unit read from a file."""

    keyframe: bool
    capture_time: float


class RecordingPlayback:
    """Finds recordings for RTSP and makes players for sessions."""

    def __init__(self, store, reactor, pool, clock=None, wall=time.time):
        self.store = store
        self.reactor = reactor
        self.pool = pool
        self.clock = clock or reactor
        self.wall = wall

    def resolve(self, rid):
        """The index entry for ``rid`` (None: the latest); UnknownRecording if none."""
        if rid is None:
            entry = self.store.latest()
            if entry is None:
                raise UnknownRecording("no recordings yet")
            return entry
        return self.store.get(rid)

    def describe(self, rid):
        """Deferred of a dict: id, sps, pps, width, height, fps, duration."""
        entry = self.resolve(rid)
        path = self.store.path(entry["id"])

        def read():
            reader = mp4.Reader(path)
            try:
                sps, pps = reader.sps, reader.pps
                if not sps:  # no avcC yet: take them from the first keyframe
                    reader.seek(0)
                    for _, key, nals in reader.read(0):
                        sps, pps = first_parameter_sets(nals)
                return {"id": entry["id"], "sps": sps, "pps": pps, "width": reader.width,
                        "height": reader.height, "fps": reader.fps,
                        "duration": entry.get("duration") or 0.0}
            finally:
                reader.close()
        return threads.deferToThreadPool(self.reactor, self.pool, read)

    def player(self, rid, mtu):
        """A new :class:`FilePlayer` for one session."""
        entry = self.resolve(rid)
        return FilePlayer(entry["id"], self.store.path(entry["id"]), self, mtu,
                          entry.get("duration") or 0.0, entry["start_ts"])


class FilePlayer(RtpSource):
    """One session's RTP from one file (the same interface as a live StreamFanout)."""

    def __init__(self, rid, path, playback, mtu, duration, start=0.0):
        super().__init__("recording-%s" % rid, mtu)
        self.id = rid
        self.duration = duration
        self.start = start    # POSIX time of the file's time zero (the first frame's capture)
        self.replay = None    # rotordream.rtsp.effects.Replay while ONVIF replay is asked
        self.path = path
        self.playback = playback
        self.clock = playback.clock
        self.reader = None
        self.queue = collections.deque()
        self.eof = False
        self.target = None
        self._reading = None
        self._timer = None
        self._origin = None   # (clock seconds, pts) of the unit that set the pace
        self._epoch = 0       # bumps on every seek: reads started before it are stale
        self._lock = defer.DeferredLock()
        self.finished = False

    def _run(self, fn, *args):
        # One worker call at a time per player: the reader is not thread-safe.
        return self._lock.run(threads.deferToThreadPool, self.playback.reactor,
                              self.playback.pool, fn, *args)

    def prepare(self, npt, replay=None):
        """Seek (``npt`` seconds, None to resume where paused); Deferred of (npt, seq, rtptime).

        ``npt`` in the answer is the keyframe's time, where playback really starts;
        ``replay`` (a Replay, or None) says how to send from there.
        """
        self.replay = replay
        if npt is None and self.reader is not None and (self.queue or self.eof):
            return defer.succeed(self._head_info())

        self._epoch += 1
        epoch = self._epoch

        def seek():
            if self.reader is None:
                self.reader = mp4.Reader(self.path)
            self.reader.seek(max(0.0, npt or 0.0))
            return self.reader.read(READ_AHEAD)

        d = self._run(seek)

        def loaded(units):
            if epoch != self._epoch:
                return self._head_info()  # a newer seek won
            self.queue = collections.deque(units)
            self.eof = not units
            self.finished = False
            return self._head_info()
        return d.addCallback(loaded)

    def _head_info(self):
        pts = self.queue[0][0] if self.queue else 0
        return pts / 90000.0, self.seq, (self.ts_base + pts) & 0xFFFFFFFF

    def add(self, target):
        """Start sending to ``target`` in real time from the head of the queue."""
        self.target = target
        self._origin = None
        self._pump()

    def remove(self, target):
        """Stop sending (PAUSE or TEARDOWN); the queue keeps the place."""
        if target is self.target:
            self.target = None
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _send(self, pts, keyframe, nals, wall):
        ts, packets = self._packetize(nals, pts)
        octets = None
        if self.replay is not None:
            last = self.eof and not self.queue and self._reading is None
            ext = replay_extension(ntp_timestamp(self.start + pts / 90000.0), keyframe, last,
                                   False, self.replay.cseq)
            packets = [with_extension(p, ext) for p in packets]
            octets = sum(len(p) - 12 - EXTENSION_BYTES for p in packets)
        self.target.deliver(Unit(keyframe, wall), ts, packets, octets)

    def _unpaced(self):
        """Replay without rate control on TCP: as fast as the connection drains."""
        return self.replay is not None and not self.replay.paced and \
            hasattr(self.target, "backlog")

    def _pump(self):
        self._timer = None
        if self.target is None:
            return
        now = self.clock.seconds()
        if self._unpaced():
            self._pump_unpaced(now)
            return
        while self.queue:
            pts, keyframe, nals = self.queue[0]
            if self._origin is None:
                self._origin = (now, pts)
            due = self._origin[0] + (pts - self._origin[1]) / 90000.0
            if due > now:
                break
            self.queue.popleft()
            self._send(pts, keyframe, nals, self.playback.wall() - (now - due))
        queued = (self.queue[-1][0] - self.queue[0][0]) / 90000.0 if self.queue else 0.0
        if not self.eof and self._reading is None and queued < LOW_WATER:
            self._read_more()
        if self.queue:
            pts = self.queue[0][0]
            delay = self._origin[0] + (pts - self._origin[1]) / 90000.0 - now
            self._timer = self.clock.callLater(max(0.0, delay), self._pump)
        elif self.eof and self._reading is None:
            self._finish()

    def _pump_unpaced(self, now):
        target = self.target
        # Half the connection's queue at most: TcpTarget skips units past its limit. The
        # last unit waits until the file is known to end there (its E flag).
        while self.queue and (len(self.queue) > 1 or self.eof) and \
                target.backlog() <= target.limit // 2:
            pts, keyframe, nals = self.queue.popleft()
            self._send(pts, keyframe, nals, self.playback.wall())
        if not self.eof and self._reading is None and len(self.queue) < 2:
            self._read_more()
        if self.queue:
            self._timer = self.clock.callLater(UNPACED_RETRY, self._pump)
        elif self.eof and self._reading is None:
            self._finish()

    def _read_more(self):
        epoch = self._epoch
        self._reading = self._run(self.reader.read, READ_AHEAD)

        def got(units):
            self._reading = None
            if epoch != self._epoch:
                return
            last = self.queue[-1][0] if self.queue else -1
            units = [u for u in units if u[0] > last]
            if not units:
                self.eof = True
            self.queue.extend(units)
            if self.target is not None and self._timer is None:
                self._pump()

        def failed(f):
            self._reading = None
            self.eof = True
            log.failure("reading recording {id} failed", f, id=self.id)
            if self.target is not None and self._timer is None:
                self._pump()
        self._reading.addCallbacks(got, failed)

    def _finish(self):
        """End of the recording: tell the client with RTCP BYE."""
        if self.finished or self.target is None:
            return
        self.finished = True
        try:
            self.target.send_rtcp(self.bye(self.target))
        except Exception:
            pass

    def close(self):
        """Release the file (after TEARDOWN)."""
        self.remove(self.target)
        reader, self.reader = self.reader, None
        if reader is not None:
            self._run(reader.close)
