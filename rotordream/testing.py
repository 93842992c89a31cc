"""Test doubles shared by every test, checked against the interfaces they stand for."""

from twisted.internet import defer
from zope.interface import implementer

from rotordream.interfaces import IVideoPipeline
from rotordream.media.hub import StreamHub

# A minimal valid JPEG (1x1 grey), so snapshot consumers can be tested without encoding.
TINY_JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c140d0c0b"
    "0b0c1912130f141d1a1f1e1d1a1c1c20242e2720222c231c1c2837292c30313434341f27393d38323c2e3334"
    "32ffc0000b080001000101011100ffc4001f0000010501010101010100000000000000000102030405060708"
    "090a0bffc400b5100002010303020403050504040000017d01020300041105122131410613516107227114"
    "328191a1082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a434445464748"
    "494a535455565758595a636465666768696a737475767778797a838485868788898a92939495969798999a"
    "a2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7"
    "e8e9eaf1f2f3f4f5f6f7f8f9faffda0008010100003f00fbd3ffd9")


@implementer(IVideoPipeline)
class FakePipeline:
    """Hubs you publish into yourself, a fixed snapshot, counters you can set."""

    def __init__(self, jpeg=TINY_JPEG):
        self.hubs = {"stream1": StreamHub("stream1"), "stream2": StreamHub("stream2")}
        self.jpeg = jpeg
        self.frame_observers = []
        self.snapshots_taken = 0

    def snapshot(self, quality=None):
        """The fixed JPEG."""
        self.snapshots_taken += 1
        return defer.succeed(self.jpeg)

    def stats(self):
        """Counters shaped like the real pipeline's."""
        return {"source": "fake", "signal": True, "captured": 0, "dropped": 0,
                "source_failures": 0, "uptime": 0, "latency_ms_p50": None,
                "latency_ms_p99": None,
                "streams": {n: h.stats() for n, h in self.hubs.items()}}

    def observe_frames(self, fn):
        """Remember ``fn``; tests call it with frames they make."""
        self.frame_observers.append(fn)


class SyncThreadPool:
    """A thread pool that runs work at once in the calling thread (for unit tests).

    Pair it with a reactor whose ``callFromThread`` calls at once (see
    :class:`ImmediateReactor`) so ``deferToThreadPool`` results arrive synchronously.
    """

    def __init__(self):
        self.started = False
        self.calls = 0

    def start(self):
        """Nothing to start."""
        self.started = True

    def stop(self):
        """Nothing to stop."""
        self.started = False

    def callInThread(self, fn, *args, **kwargs):
        """Run ``fn`` now."""
        self.calls += 1
        fn(*args, **kwargs)

    def callInThreadWithCallback(self, on_result, fn, *args, **kwargs):
        """Run ``fn`` now and report ``(success, result)`` like twisted's ThreadPool."""
        self.calls += 1
        _run_and_report(on_result, fn, args, kwargs)


class QueuedThreadPool:
    """A thread pool whose work waits until the test runs it (:meth:`run_next`).

    For code that must behave while work is still "in the thread".
    """

    def __init__(self):
        self.queue = []

    def callInThreadWithCallback(self, on_result, fn, *args, **kwargs):
        """Queue ``fn``; report ``(success, result)`` like twisted's ThreadPool once run."""
        self.queue.append((on_result, fn, args, kwargs))

    def run_next(self):
        """Run the oldest queued work now."""
        _run_and_report(*self.queue.pop(0))


def _run_and_report(on_result, fn, args, kwargs):
    from twisted.python.failure import Failure
    try:
        result = fn(*args, **kwargs)
    except BaseException:
        on_result(False, Failure())
    else:
        on_result(True, result)


class ImmediateReactor:
    """A task.Clock-based reactor stand-in whose callFromThread runs at once."""

    def __init__(self, clock=None):
        from twisted.internet.task import Clock
        self.clock = clock or Clock()

    def callFromThread(self, fn, *args, **kwargs):
        """Call now (the 'thread' is the test itself)."""
        fn(*args, **kwargs)

    def callLater(self, delay, fn, *args, **kwargs):
        """Schedule on the clock."""
        return self.clock.callLater(delay, fn, *args, **kwargs)

    def seconds(self):
        """The clock's time."""
        return self.clock.seconds()
