"""Waiting on a live daemon's own events instead of sleeping: state broadcasts and frames;
and, where another process gives nothing to wait on, polling it with a deadline."""

import json
import time

import av
from websockets.sync.client import connect


class StateWatcher:
    """A WebSocket client that keeps every broadcast key of a daemon and waits on them.

    Open it before the action whose result you wait for, so no broadcast is missed.
    """

    def __init__(self, daemon):
        self.ws = connect(daemon.ws)
        self.state = {}
        self.events = []
        self.ws.send(json.dumps({"get": "*"}))
        self._take(self.ws.recv(timeout=10))

    def _take(self, text):
        msg = json.loads(text)
        if "error" in msg:
            self.events.append(msg)
        else:
            self.state.update({k: v for k, v in msg.items() if k != "info"})

    def wait(self, key, expected, timeout=30):
        """Wait until ``key`` equals ``expected`` (or ``expected(value)`` is true); its value."""
        def ok():
            value = self.state.get(key)
            return expected(value) if callable(expected) else value == expected
        deadline = time.monotonic() + timeout
        while not ok():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("%s is %r after %ss" % (key, self.state.get(key), timeout))
            self._take(self.ws.recv(timeout=left))
        return self.state[key]

    def close(self):
        """Disconnect."""
        self.ws.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def wait_frames(daemon, count, stream="stream1"):
    """Block until ``count`` live frames of ``stream`` were decoded: the camera's own clock."""
    with av.open(daemon.rtsp(stream), options={"rtsp_transport": "tcp"}, timeout=15) as c:
        for n, _ in enumerate(c.decode(video=0), 1):
            if n >= count:
                return n
    raise AssertionError("the stream ended after fewer than %d frames" % count)


def eventually(fetch, done=bool, timeout=15, what="", interval=0.1):
    """``fetch()`` again until ``done(result)``; that result, or AssertionError at the deadline.

    For another process (a daemon, a browser, Prometheus) that offers nothing to wait on but
    its answers. ``what`` (a string, or a function of the last result) names the wait.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = fetch()
        if done(result):
            return result
        if time.monotonic() >= deadline:
            why = what(result) if callable(what) else what
            raise AssertionError("%s: not within %s s (last: %r)" % (why or "no change", timeout,
                                                                     result))
        time.sleep(interval)
