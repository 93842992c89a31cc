"""The recorder service: stream1's access units remuxed into MP4 segments, never re-encoded.

It subscribes to the stream1 hub with the cached GOP replayed, so a
recording starts at the keyframe before the command. Segments are cut at
the first keyframe after ``segment_seconds`` (and whenever the encoder is
re-opened with a new size), so no frame is lost or written twice at a
seam. All file work runs in one writer thread, in order; the reactor
thread only decides. ``record`` in the camera state is the single switch:
REST, WebSocket and ONVIF all end up here.

Why it is long: the recorder's one state machine (idle, recording, paused)
with its segment cutting, writer-thread hand-off and storage failures; the
parts act on the same segment and mode, so they stay together.
"""

import errno
import os
import time

from twisted.application import service
from twisted.internet import defer, threads
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python import threadpool
from zope.interface import implementer

from rotordream.interfaces import IRecorder
from rotordream.recording import RecorderError, mp4
from rotordream.recording.playback import RecordingPlayback
from rotordream.recording.store import RecordingStore

log = Logger()

IDLE, RECORDING, PAUSED = "idle", "recording", "paused"
STORAGE_CHECK_SECONDS = 5.0
MAX_BACKLOG_SECONDS = 10.0
# Room (bytes) a new segment needs beyond [recording] min_free_mb (that setting is the reserve).
SEGMENT_RESERVE = 0


class Segment:
    """One file being written: counters kept by the reactor side."""

    def __init__(self, rid, path, au, session, number):
        self.id = rid
        self.path = path
        self.session = session
        self.number = number
        self.generation = au.generation
        self.offset = au.pts          # capture pts of the file's time zero
        self.frame_ticks = max(1, int(round(90000 / (au.fps or 30))))
        self.next_pts = 0             # file pts the next frame gets after a pause
        self.last_pts = -1
        self.frames = 0
        self.writer = None            # mp4.SegmentWriter, touched only in the writer thread
        self.failed = None            # the OSError that stopped it (writer thread sets it)

    @property
    def duration(self):
        """Seconds written so far."""
        return (self.last_pts + self.frame_ticks) / 90000.0 if self.frames else 0.0


@implementer(IRecorder)
class Recorder(service.Service):
    """Records ``hub`` (stream1) into ``store`` (see module docstring).

    ``reactor`` runs the writer pool's results; ``clock`` (default: the
    reactor) times durations and storage checks; ``state`` carries ``record``.
    """

    def __init__(self, reactor, state, hub, store, writer_pool, segment_seconds, clock=None,
                 wall=time.time):
        self.reactor = reactor
        self.state = state
        self.hub = hub
        self.store = store
        self.pool = writer_pool
        self.clock = clock or reactor
        self.wall = wall
        self.segment_seconds = segment_seconds
        self.mode = IDLE
        self.segment = None
        self.session = None
        self.name = ""
        self._sub = None
        self._last_seq = None
        self._need_keyframe = True
        self._resync = False
        self._stop_timer = None
        self._queued = 0
        self._done = 0
        self._closing = []
        self._next_number = 1
        self.session_bytes = 0
        self.session_duration = 0.0
        self.written = 0  # bytes of the segments finished since the start (metrics)
        self.ready = defer.Deferred()
        self._next_directory = None   # a reloaded [recording] directory not in use yet
        self._moving = None           # Deferred while the store moves to it
        self._space_loop = LoopingCall(self._check_space)
        self._space_loop.clock = self.clock

    # -- lifecycle ------------------------------------------------------

    def startService(self):
        service.Service.startService(self)
        self.pool.start()
        self.state.set_command("record", self._record_command)
        self.state.update({"record": False}, origin="recorder")
        d = threads.deferToThreadPool(self.reactor, self.pool, self.store.load)
        d.addCallback(self._loaded)
        d.addErrback(lambda f: log.failure("could not read the recordings index", f))
        d.addBoth(lambda _: self.ready.callback(None) if not self.ready.called else None)

    def reconfigure(self, section, directory):
        """Apply a reloaded ``[recording]`` section; ``directory`` is the resolved one.

        Segment length and retention apply at once (the segment being written is cut
        by the new length). A new directory is loaded in the writer thread and used
        from the next recording on: a recording running now finishes where it began.
        """
        self.segment_seconds = section.segment_seconds
        self.store.set_limits(section.max_total_mb, section.min_free_mb)
        directory = os.path.abspath(directory)
        if directory == self.store.directory and self._moving is None:
            self._next_directory = None
            return
        self._next_directory = directory
        if self.mode == IDLE:
            self._move()

    def _move(self):
        """Load the pending recordings directory, then use it (nothing starts meanwhile)."""
        if self.mode != IDLE or self._moving is not None:
            return  # the next stop (or the move under way) comes back here
        directory, self._next_directory = self._next_directory, None
        if directory is None:
            return
        store = self.store

        def load():
            other = RecordingStore(directory, 0, 0)
            other.load()
            return other

        def loaded(other):
            store.take_over(other)
            log.info("recordings directory is now {directory}", event="config_applied",
                     key="recording.directory", directory=directory)

        def done(result):
            self._moving = None
            self._move()  # a later reload may have named yet another directory
            return result

        d = self._moving = threads.deferToThreadPool(self.reactor, self.pool, load)
        d.addCallback(loaded)
        d.addErrback(lambda f: log.failure("could not use recordings directory {directory}",
                                           f, directory=directory))
        d.addBoth(done)

    def _loaded(self, measured):
        for rid in measured:
            log.info("recording {id} indexed from its file", id=rid)

    def stopService(self):
        service.Service.stopService(self)
        if self.mode != IDLE:
            self.stop(origin="shutdown")
        d = self.closed()
        d.addBoth(lambda _: self.pool.stop())
        return d

    # -- IRecorder ------------------------------------------------------

    def start(self, name=None, duration=None, origin="recorder"):
        """Start recording (stream1 from its last keyframe); return the status."""
        if self.mode != IDLE:
            raise RecorderError("CONFLICT", "already recording")
        if self._moving is not None:
            raise RecorderError("CONFLICT", "the recordings directory is changing; try again")
        if duration is not None and duration <= 0:
            raise RecorderError("BAD_REQUEST", "duration must be positive seconds", 400)
        if not self.store.make_room(SEGMENT_RESERVE):
            self._refused("not enough free space in %s" % self.store.directory)
        self.mode = RECORDING
        self.name = name or ""
        self.session = None
        self.session_bytes = 0
        self.session_duration = 0.0
        self._need_keyframe = True
        self._last_seq = None
        self._subscribe()
        if duration:
            self._stop_timer = self.clock.callLater(duration, self._duration_reached)
        if not self._space_loop.running:
            self._space_loop.start(STORAGE_CHECK_SECONDS, now=False)
        self.state.update({"record": True}, origin=origin)
        log.info("recording started", event="recording_started", name=name or "",
                 duration=duration or "", directory=self.store.directory)
        return self.status()

    def _refused(self, why):
        self.state.update({"record": False}, origin="recorder")
        raise RecorderError("INSUFFICIENT_STORAGE", why, 507)

    def stop(self, origin="recorder"):
        """Stop recording and finish the file; return the status."""
        if self.mode == IDLE:
            return self.status()
        self._unsubscribe()
        self.mode = IDLE
        if self._stop_timer is not None and self._stop_timer.active():
            self._stop_timer.cancel()
        self._stop_timer = None
        if self._space_loop.running:
            self._space_loop.stop()
        self._close_segment()
        self.state.update({"record": False}, origin=origin)
        log.info("recording stopped", event="recording_stopped", origin=origin,
                 seconds=round(self.session_duration, 1))
        if self._next_directory is not None:
            self.closed().addCallback(lambda _: self._move())
        return self.status()

    def closed(self):
        """A Deferred firing once every finished file is closed and indexed."""
        return defer.DeferredList(list(self._closing)).addCallback(lambda _: None)

    def pause(self, origin="recorder"):
        """Stop writing frames; the file stays open for resume."""
        if self.mode != RECORDING:
            raise RecorderError("CONFLICT", "not recording")
        self._unsubscribe()
        self.mode = PAUSED
        self.state.update({"record": "paused"}, origin=origin)
        return self.status()

    def resume(self, origin="recorder"):
        """Write frames again, continuing the file's timeline without a gap."""
        if self.mode != PAUSED:
            raise RecorderError("CONFLICT", "not paused")
        self.mode = RECORDING
        self._resync = True
        self._subscribe()
        self.state.update({"record": True}, origin=origin)
        return self.status()

    def status(self):
        """What REST /api/recording/status and /api/status report."""
        seg = self.segment
        try:
            free = self.store.free_bytes()
        except OSError:
            free = None
        return {"recording": self.mode != IDLE, "paused": self.mode == PAUSED,
                "state": self.mode, "id": seg.id if seg else None, "session": self.session,
                "name": self.name if self.mode != IDLE else None,
                "duration": round(self.session_duration + (seg.duration if seg else 0.0), 3),
                "bytes": self.session_bytes + self.segment_size(),
                "free": free, "directory": self.store.directory,
                "segment_seconds": self.segment_seconds}

    def segment_size(self):
        """Bytes of the file being written now (0 when none)."""
        seg = self.segment
        if seg is None:
            return 0
        try:
            return os.path.getsize(seg.path)
        except OSError:
            return 0

    # -- the record key -------------------------------------------------

    def _record_command(self, values, origin):
        """``record`` written through the state (REST settings, WebSocket, ONVIF).

        A command: the recorder acts, and start/stop/pause/resume report the
        new mode into ``record``. Success needs no info: the confirmation
        carries the key's new value. A refusal leaves the key as it was, is
        broadcast as an error event and is answered as info to the writer.
        """
        value = values["record"]
        try:
            if value is True:
                if self.mode == PAUSED:
                    self.resume(origin=origin)
                elif self.mode == IDLE:
                    self.start(origin=origin)
            elif value is False:
                if self.mode != IDLE:
                    self.stop(origin=origin)
            elif value == "paused":
                if self.mode == RECORDING:
                    self.pause(origin=origin)
        except RecorderError as e:
            self.state.update({"record": self._mode_value()}, origin="recorder")
            self.state.publish_event({"error": e.message, "key": "record", "code": e.code})
            return {"record": {"error": e.message, "code": e.code}}
        return None

    def _mode_value(self):
        return {IDLE: False, RECORDING: True, PAUSED: "paused"}[self.mode]

    # -- access units ---------------------------------------------------

    def _subscribe(self):
        # The replayed GOP may repeat units written before a pause: _on_unit skips them.
        self._sub = self.hub.subscribe(self._on_unit, replay=True)

    def _unsubscribe(self):
        if self._sub is not None:
            self._sub.cancel()
            self._sub = None

    def _on_unit(self, au):
        if self.mode != RECORDING:
            return
        last = self._last_seq
        if last is not None and au.seq <= last:
            return  # already written (GOP replayed on resume)
        contiguous = last is not None and au.seq == last + 1
        seg = self.segment
        if seg is not None and au.generation != seg.generation:
            self._close_segment()  # new size or rate: a new file
            seg = None
            contiguous = False
        if seg is not None and au.keyframe and seg.duration >= self.segment_seconds:
            self._close_segment()
            seg = None
        if seg is None or (self._need_keyframe and not contiguous):
            if not au.keyframe:
                self._need_keyframe = True
                return
            if seg is None:
                seg = self._open_segment(au)
                if seg is None:
                    return
        self._need_keyframe = False
        if self._resync:
            seg.offset = au.pts - seg.next_pts
            self._resync = False
        pts = au.pts - seg.offset
        if pts <= seg.last_pts:
            pts = seg.last_pts + 1  # capture clock jitter must never reorder samples
        seg.last_pts = pts
        seg.next_pts = pts + seg.frame_ticks
        seg.frames += 1
        self._last_seq = au.seq
        self._queue(self._write, seg, au.annexb, pts, au.keyframe, seg.frame_ticks)
        entry = self.store.entries.get(seg.id)
        if entry is not None:  # live figures for listings and RTSP DESCRIBE
            entry["duration"] = round(seg.duration, 3)
            entry["frames"] = seg.frames
        backlog = self._queued - self._done
        if backlog > MAX_BACKLOG_SECONDS * (au.fps or 30):
            self._storage_failed(seg, OSError(errno.EIO, "storage too slow (%d frames behind)"
                                              % backlog), code="STORAGE_TOO_SLOW")

    def _duration_reached(self):
        self._stop_timer = None
        self.stop(origin="recorder")

    # -- segments -------------------------------------------------------

    def _open_segment(self, au):
        if self.session is None:
            self.session = self.store.session_id(au.capture_time, self.name)
            self._next_number = 1
        number = self._next_number
        if not self.store.make_room(SEGMENT_RESERVE):
            self._storage_failed(None, OSError(errno.ENOSPC, "not enough free space"))
            return None
        rid = self.store.new_id(self.session, number)
        path = self.store.path(rid)
        seg = Segment(rid, path, au, self.session, number)
        self.store.add({"id": rid, "name": self.name, "session": self.session,
                        "segment": number, "start_ts": au.capture_time, "end_ts": None,
                        "duration": 0.0, "frames": 0, "size": 0, "width": au.width,
                        "height": au.height, "fps": au.fps, "recording": True})
        self.segment = seg
        self._next_number = number + 1
        self._queue(self._open_file, seg, au.width, au.height, au.fps)
        return seg

    def _close_segment(self):
        seg, self.segment = self.segment, None
        if seg is None:
            return
        self.session_duration += seg.duration
        d = threads.deferToThreadPool(self.reactor, self.pool, self._close_file, seg)
        self._queued += 1
        d.addCallback(self._segment_closed, seg)
        d.addErrback(lambda f: log.failure("closing {id} failed", f, id=seg.id))
        self._closing.append(d)
        d.addBoth(self._forget_closing, d)

    def _forget_closing(self, result, d):
        if d in self._closing:
            self._closing.remove(d)
        return result

    def _segment_closed(self, info, seg):
        size, measured = info
        fields = {"size": size, "recording": False}
        if measured is not None:  # cut short by a storage error: what the file really holds
            fields.update(duration=measured["duration"], frames=measured["frames"])
        else:
            fields.update(duration=round(seg.duration, 3), frames=seg.frames)
        entry = self.store.entries.get(seg.id)
        if entry is None:
            return
        fields["end_ts"] = entry["start_ts"] + fields["duration"]
        self.session_bytes += size
        self.written += size
        self.store.update(seg.id, **fields)

    # -- the writer thread ----------------------------------------------

    def _queue(self, fn, *args):
        self._queued += 1
        self.pool.callInThread(fn, *args)

    def _open_file(self, seg, width, height, fps):
        try:
            seg.writer = mp4.SegmentWriter(seg.path, width, height, fps)
        except OSError as e:
            seg.failed = e
            self.reactor.callFromThread(self._storage_failed, seg, e)
        finally:
            self._done += 1

    def _write(self, seg, annexb, pts, keyframe, ticks):
        try:
            if seg.failed is None and seg.writer is not None:
                seg.writer.write(annexb, pts, keyframe, ticks)
        except OSError as e:
            seg.failed = e
            self.reactor.callFromThread(self._storage_failed, seg, e)
        finally:
            self._done += 1

    def _close_file(self, seg):
        try:
            if seg.writer is not None:
                try:
                    seg.writer.close()
                except OSError as e:
                    seg.failed = seg.failed or e
            measured = None
            if seg.failed is not None:  # keep only whole fragments, then say what is left
                mp4.trim_torn_tail(seg.path)
                measured = mp4.probe(seg.path)
            try:
                size = os.path.getsize(seg.path)
            except OSError:
                size = 0
            return size, measured
        finally:
            self._done += 1

    # -- storage --------------------------------------------------------

    def _check_space(self):
        """Every few seconds while recording: apply retention, stop before the disk is full."""
        if self.mode == IDLE:
            return
        if not self.store.make_room(0):
            self._storage_failed(self.segment, OSError(errno.ENOSPC, "free space below the "
                                                       "configured minimum"))

    def _storage_failed(self, seg, error, code="INSUFFICIENT_STORAGE"):
        """The disk is full or failing: stop cleanly, keep what is written, tell everyone."""
        if seg is not None and seg is not self.segment:
            return  # an old segment's late error; it is already closed
        if self.mode == IDLE:
            return
        why = error.strerror or str(error)
        if error.errno == errno.ENOSPC:
            why = "disk full: %s" % why
        log.error("recording stopped: {reason}", event="recording_failed", reason=why)
        self.stop(origin="recorder")
        # Told once the file is closed and indexed, so what a client then reads (the
        # listing, the file) is what the disk kept.
        self.closed().addCallback(lambda _: self.state.publish_event(
            {"error": "recording stopped: %s" % why, "key": "record", "code": code}))


def build_recorder(reactor, state, hubs, config, file_pool):
    """``(recorder, playback)`` recording stream1 into ``[recording] directory`` (playback
    reads files in ``file_pool``); ``(None, None)`` without a stream1."""
    if "stream1" not in hubs:
        return None, None
    cfg = config.recording
    store = RecordingStore(config.recording_dir, cfg.max_total_mb, cfg.min_free_mb)
    pool = threadpool.ThreadPool(minthreads=1, maxthreads=1, name="recorder")
    recorder = Recorder(reactor, state, hubs["stream1"], store, pool, cfg.segment_seconds)
    return recorder, RecordingPlayback(store, reactor, file_pool)
