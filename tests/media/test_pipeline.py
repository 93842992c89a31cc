"""The capture/encode pipeline: real libx264 output decoded by PyAV."""

import av
import numpy as np
import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from rotordream.auth.roles import Principal
from rotordream.media.pipeline import VideoPipeline
from rotordream.media.sources import FileSource, V4L2Source
from rotordream.media.sources import TestPatternSource as PatternSource
from rotordream.state import CameraState

OPERATOR = Principal("op", "operator")


def make_pipeline(source=None, **settings):
    state = CameraState()
    base = {"resolution": "320x240", "fps": 30, "stream2-resolution": "320x180",
            "stream2-fps": 15, "stream1-gop": 10, "stream2-gop": 5}
    base.update(settings)
    state.set(base, OPERATOR)
    pipeline = VideoPipeline(reactor, state, source or PatternSource(),
                             reactor.getThreadPool())
    return state, pipeline


class Collector:
    """Collects access units of a hub until ``count`` arrived."""

    def __init__(self, hub, count, where=lambda au: True):
        self.units = []
        self.count = count
        self.where = where
        self.done = defer.Deferred()
        self.sub = hub.subscribe(self._got, replay=False)

    def _got(self, au):
        if not self.where(au) or self.done.called:
            return
        self.units.append(au)
        if len(self.units) >= self.count:
            self.sub.cancel()
            self.done.callback(self.units)

    def wait(self, timeout=20):
        return self.done.addTimeout(timeout, reactor)


def decode(units):
    """Decode access units with FFmpeg's H.264 decoder; return frames."""
    codec = av.CodecContext.create("h264", "r")
    frames = []
    for au in units:
        frames.extend(codec.decode(av.Packet(au.annexb)))
    frames.extend(codec.decode(None))
    return frames


@pytest_twisted.inlineCallbacks
def test_both_streams_decode_at_configured_size_and_rate():
    state, pipeline = make_pipeline()
    pipeline.startService()
    try:
        c1 = Collector(pipeline.hubs["stream1"], 31, where=lambda au: au.keyframe or c1.units)
        c2 = Collector(pipeline.hubs["stream2"], 16, where=lambda au: au.keyframe or c2.units)
        units1, units2 = yield defer.gatherResults([c1.wait(), c2.wait()])
    finally:
        yield pipeline.stopService()
    frames1 = decode(units1)
    frames2 = decode(units2)
    assert len(frames1) == 31 and len(frames2) == 16
    assert {(f.width, f.height) for f in frames1} == {(320, 240)}
    assert {(f.width, f.height) for f in frames2} == {(320, 180)}
    # Rates from the capture clock: 30 units span ~1 s on stream1, 15 on stream2.
    span1 = (units1[-1].pts - units1[0].pts) / 90000
    span2 = (units2[-1].pts - units2[0].pts) / 90000
    assert 0.85 < span1 < 1.3, span1
    assert 0.85 < span2 < 1.3, span2
    # Keyframe interval as configured (gop 10), SPS/PPS before each IDR.
    keys = [i for i, au in enumerate(units1) if au.keyframe]
    assert keys[:3] == [0, 10, 20]
    for au in units1:
        if au.keyframe:
            assert [n[0] & 0x1F for n in au.nals[:2]] == [7, 8]
    assert units1[0].sps and units1[0].pps


@pytest_twisted.inlineCallbacks
def test_brightness_change_raises_decoded_luma():
    state, pipeline = make_pipeline(brightness=20)
    pipeline.startService()
    dark_c = Collector(pipeline.hubs["stream1"], 10, where=lambda au: au.keyframe or dark_c.units)
    try:
        dark_units = yield dark_c.wait()
        state.set({"brightness": 80}, OPERATOR)
        # Wait for frames captured after the change: from the next keyframe on.
        gen_c = Collector(pipeline.hubs["stream1"], 10,
                          where=lambda au: au.keyframe or gen_c.units)
        yield gen_c.wait()
        bright_c = Collector(pipeline.hubs["stream1"], 10,
                             where=lambda au: au.keyframe or bright_c.units)
        bright_units = yield bright_c.wait()
    finally:
        yield pipeline.stopService()
    dark_luma = np.mean([f.to_ndarray(format="gray").mean() for f in decode(dark_units)])
    bright_luma = np.mean([f.to_ndarray(format="gray").mean() for f in decode(bright_units)])
    assert bright_luma > dark_luma + 40, (dark_luma, bright_luma)


@pytest_twisted.inlineCallbacks
def test_live_resolution_change_reaches_a_subscriber():
    state, pipeline = make_pipeline()
    pipeline.startService()
    seen = []
    sub = pipeline.hubs["stream1"].subscribe(seen.append)
    try:
        first = yield Collector(pipeline.hubs["stream1"], 5).wait()
        state.set({"resolution": "640x360"}, OPERATOR)
        after = Collector(pipeline.hubs["stream1"], 10,
                          where=lambda au: au.width == 640 and (au.keyframe or after.units))
        yield after.wait()
    finally:
        sub.cancel()
        yield pipeline.stopService()
    # One subscriber, one continuous stream: old size, then new SPS and the new size.
    start = next(i for i, au in enumerate(seen) if au.keyframe)
    frames = decode(seen[start:])
    sizes = [(f.width, f.height) for f in frames]
    assert sizes[0] == (320, 240) and sizes[-1] == (640, 360)
    assert set(sizes) == {(320, 240), (640, 360)}
    switch = next(au for au in seen if au.width == 640)
    assert switch.keyframe and switch.generation == first[0].generation + 1


@pytest_twisted.inlineCallbacks
def test_snapshot_is_a_jpeg_of_full_size_and_shared_by_concurrent_requests():
    state, pipeline = make_pipeline(resolution="640x480")
    pipeline.startService()
    try:
        yield Collector(pipeline.hubs["stream1"], 2).wait()
        # Hold the frame still: ask 20 times in the same reactor turn.
        results = yield defer.gatherResults([pipeline.snapshot() for _ in range(20)])
        low = yield pipeline.snapshot(quality=5)
    finally:
        yield pipeline.stopService()
    # The capture thread may publish a new frame while the 20 are asked: at most two
    # distinct frames, each encoded once, however many asked.
    assert len(set(results)) <= 2
    assert pipeline.snapshots.encodes <= 3
    jpeg = results[0]
    assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
    with av.open(__import__("io").BytesIO(jpeg)) as c:
        frame = next(c.decode(video=0))
    assert (frame.width, frame.height) == (640, 480)
    assert len(low) < len(jpeg)


@pytest_twisted.inlineCallbacks
def test_missing_device_shows_no_signal_and_keeps_streaming(tmp_path):
    state, pipeline = make_pipeline(V4L2Source(str(tmp_path / "video9")))
    pipeline.startService()
    try:
        units_c = Collector(pipeline.hubs["stream1"], 5,
                            where=lambda au: au.keyframe or units_c.units)
        units = yield units_c.wait()
    finally:
        yield pipeline.stopService()
    assert state.get("cam1-exists") is False
    assert pipeline.stats()["signal"] is False and pipeline.stats()["source_failures"] >= 1
    frames = decode(units)
    assert (frames[0].width, frames[0].height) == (320, 240)
    # The NO SIGNAL card is grey with white letters: mostly luma 40.
    luma = frames[0].to_ndarray()[:240]  # the raw Y plane
    assert abs(np.median(luma) - 40) < 6 and luma.max() > 150


@pytest_twisted.inlineCallbacks
def test_file_source_loops(tmp_path):
    path = str(tmp_path / "clip.mp4")
    with av.open(path, "w") as out:
        s = out.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 160, 120, "yuv420p"
        for i in range(5):
            f = av.VideoFrame.from_ndarray(np.full((120, 160, 3), i * 40, np.uint8), "rgb24")
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    state, pipeline = make_pipeline(FileSource(path))
    pipeline.startService()
    try:
        c = Collector(pipeline.hubs["stream1"], 15, where=lambda au: au.keyframe or c.units)
        units = yield c.wait()
    finally:
        yield pipeline.stopService()
    assert state.get("cam1-exists") is True
    assert len(decode(units)) == 15  # more frames than the file has: it looped


@pytest_twisted.inlineCallbacks
def test_snap_key_keeps_a_jpeg_to_fetch_later():
    state, pipeline = make_pipeline()
    pipeline.startService()
    try:
        yield Collector(pipeline.hubs["stream1"], 2).wait()
        result = state.set({"snap": True}, OPERATOR)
        info = result.info["snap"]
        assert info["url"] == "/api/snapshot?snap=" + info["id"]
        jpeg = yield pipeline.snap(info["id"])
        again = yield pipeline.snap(info["id"])
    finally:
        yield pipeline.stopService()
    assert jpeg[:2] == b"\xff\xd8" and again == jpeg
    with pytest.raises(KeyError):
        pipeline.snap("0-0")


@pytest_twisted.inlineCallbacks
def test_a_source_that_appears_later_is_picked_up(tmp_path):
    path = tmp_path / "late.mp4"
    state, pipeline = make_pipeline(FileSource(str(path)))
    back = defer.Deferred()
    state.subscribe(lambda changes, origin: changes.get("cam1-exists") and not back.called
                    and back.callback(True))
    pipeline.startService()
    try:
        yield Collector(pipeline.hubs["stream1"], 3).wait()
        assert state.get("cam1-exists") is False
        with av.open(str(tmp_path / "tmp.mp4"), "w") as out:
            s = out.add_stream("mpeg4", rate=10)
            s.width, s.height, s.pix_fmt = 160, 120, "yuv420p"
            for i in range(3):
                f = av.VideoFrame.from_ndarray(np.full((120, 160, 3), 200, np.uint8), "rgb24")
                for p in s.encode(f):
                    out.mux(p)
            for p in s.encode(None):
                out.mux(p)
        (tmp_path / "tmp.mp4").rename(path)
        yield back.addTimeout(15, reactor)  # retried with backoff, starting at 1 s
    finally:
        yield pipeline.stopService()
    assert pipeline.stats()["signal"] is True


@pytest_twisted.inlineCallbacks
def test_snapshots_of_every_frame_while_stream2_is_scaled_do_not_deadlock():
    # Regression: frame.reformat() in the snapshot thread shared the frame's scaler with
    # the capture thread and deadlocked the daemon under a snapshot load.
    state, pipeline = make_pipeline(resolution="640x480", fps=30, **{"stream2-fps": 30})
    pipeline.startService()
    try:
        for _ in range(60):
            yield pipeline.next_frame().addTimeout(5, reactor)
            jpeg = yield pipeline.snapshot().addTimeout(5, reactor)
            assert jpeg[:2] == b"\xff\xd8"
    finally:
        yield pipeline.stopService().addTimeout(10, reactor)
    assert pipeline.snapshots.encodes >= 30
