"""The frame-difference motion detector: verdicts, debounce, thread hand-off, cost."""

import threading
import time

import numpy as np
import pytest

from rotordream.media import motion
from rotordream.testing import FakePipeline


class ThreadReactor:
    """Records callFromThread calls (with the calling thread) and runs them."""

    def __init__(self):
        self.calls = []
        self.threads = []

    def callFromThread(self, fn, *args):
        self.threads.append(threading.current_thread())
        self.calls.append(args)
        fn(*args)


def frame(block_x=None, h=360, w=640, noise=None, rng=None):
    """A flat grey luma plane, with a bright 64x64 block at ``block_x`` and optional noise."""
    y = np.full((h, w), 100, np.uint8)
    if block_x is not None:
        y[100:164, block_x:block_x + 64] = 235
    if noise:
        y = np.clip(y.astype(np.int16) + rng.integers(-noise, noise + 1, y.shape),
                    0, 255).astype(np.uint8)
    return y


@pytest.fixture
def det():
    reactor = ThreadReactor()
    changes = []
    d = motion.MotionDetector(reactor, lambda moving, t: changes.append((moving, t)))
    return d, reactor, changes


def test_still_frames_are_no_motion(det):
    d, _, changes = det
    for i in range(30):
        d.feed(frame(), 1000 + i / 15)
    assert changes == [] and not d.moving and d.last_fraction == 0


def test_sensor_noise_below_the_threshold_is_ignored(det):
    d, _, changes = det
    rng = np.random.default_rng(1)
    for i in range(30):
        # Independent noise of +-n on both frames differs by up to 2n.
        d.feed(frame(noise=motion.PIXEL_THRESHOLD // 2 - 1, rng=rng), 1000 + i / 15)
    assert changes == []


def test_moving_block_starts_motion_after_on_frames_then_holds_and_ends(det):
    d, reactor, changes = det
    t = 1000.0
    d.feed(frame(0), t)
    for i in range(1, motion.ON_FRAMES):
        d.feed(frame(40 * i), t + i / 15)
    assert changes == []  # one moving frame is not motion yet (debounce)
    d.feed(frame(40 * motion.ON_FRAMES), t + motion.ON_FRAMES / 15)
    assert changes == [(True, t + motion.ON_FRAMES / 15)]
    last = t + motion.ON_FRAMES / 15
    # The block stops: motion holds for HOLD_SECONDS, then ends once.
    still = frame(40 * motion.ON_FRAMES)
    n = 1
    while last + n / 15 - last < motion.HOLD_SECONDS - 0.01:
        d.feed(still, last + n / 15)
        n += 1
    assert changes == [(True, last)]
    d.feed(still, last + motion.HOLD_SECONDS)
    d.feed(still, last + motion.HOLD_SECONDS + 0.1)
    assert changes == [(True, last), (False, last + motion.HOLD_SECONDS)]
    assert len(reactor.calls) == 2  # only changes cross to the reactor


def test_feeding_from_another_thread_hands_results_to_the_reactor(det):
    d, reactor, changes = det

    def capture():
        for i in range(6):
            d.feed(frame(50 * i), 1000 + i / 15)
    worker = threading.Thread(target=capture)
    worker.start()
    worker.join()
    assert changes and changes[0][0] is True
    assert reactor.threads == [worker]


def test_disabled_detector_forgets_its_previous_frame(det):
    d, _, changes = det
    d.feed(frame(0), 1000)
    d.enabled = False
    d.feed(frame(300), 1001)
    d.enabled = True
    d.feed(frame(300), 1002)   # compared with nothing, not with the old frame
    d.feed(frame(300), 1003)
    assert changes == []


def test_a_size_change_is_not_motion(det):
    d, _, changes = det
    for i in range(4):
        d.feed(frame(h=360, w=640), 1000 + i)
        d.feed(frame(h=180, w=320), 1000 + i + 0.5)
    assert changes == []


def test_strided_views_like_the_pipeline_gives(det):
    # The pipeline passes a view whose rows are wider than the picture (line_size padding).
    d, _, changes = det
    for i in range(4):
        padded = np.zeros((360, 704), np.uint8)
        padded[:, :640] = frame(60 * i)
        d.feed(padded[:, :640], 1000 + i / 15)
    assert changes and changes[0][0] is True


def test_feed_is_cheap():
    d = motion.MotionDetector(ThreadReactor(), lambda *a: None)
    frames = [frame(10 * i) for i in range(20)]
    start = time.perf_counter()
    for i in range(200):
        d.feed(frames[i % 20], 1000 + i / 15)
    per_frame_ms = (time.perf_counter() - start) / 200 * 1000
    assert per_frame_ms < 2.0, per_frame_ms  # a 15 fps stream2 frame has 66 ms


def test_attach_observes_the_pipeline_frames():
    pipeline = FakePipeline()
    changes = []
    d = motion.attach(pipeline, ThreadReactor(), lambda moving, t: changes.append(moving))
    assert pipeline.frame_observers == [d.feed]
    for i in range(4):
        for fn in pipeline.frame_observers:
            fn(frame(80 * i), 1000 + i / 15)
    assert changes == [True]
    assert motion.attach(None, ThreadReactor(), lambda *a: None) is None


def frame_lit(level, block_x=None):
    """The grey frame at another brightness (a light switched, an exposure step)."""
    y = frame(block_x).astype(np.int16) + (level - 100)
    return np.clip(y, 0, 255).astype(np.uint8)


def test_a_global_brightness_step_is_not_motion_but_motion_under_it_is(det):
    d, _, changes = det
    t = 1000.0
    for i in range(5):
        d.feed(frame(), t + i / 15)
    # The lights go on: every sample jumps by 60 levels, for good.
    for i in range(5, 30):
        d.feed(frame_lit(160), t + i / 15)
        assert d.last_fraction == 0, i
    assert changes == []
    # Something moves in the brighter scene: still seen.
    for i, x in enumerate(range(0, 400, 40), 30):
        d.feed(frame_lit(160, block_x=x), t + i / 15)
    assert changes and changes[0][0] is True
