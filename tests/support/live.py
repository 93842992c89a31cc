"""Waiting on a live daemon's own events instead of sleeping: state broadcasts and frames."""

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
