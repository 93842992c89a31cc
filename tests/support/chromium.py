"""Drive headless Chromium (Debian's /usr/bin/chromium) over the DevTools protocol."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request

from websockets.sync.client import connect

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-port=0",  # Chromium picks a free port and prints it on stderr
    "--allow-loopback-in-peer-connection",  # WebRTC may gather 127.0.0.1 (see Page too)
    "--disable-features=WebRtcHideLocalIpsWithMdns",  # raw IPs, not unresolvable .local names
    "--autoplay-policy=no-user-gesture-required",  # <video> plays with no click
]
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # ignore *_proxy vars


class DevToolsError(Exception):
    """A DevTools command failed, or the evaluated script threw (message: the JS error)."""


def _error_text(details):
    thrown = details.get("exception", {})  # an Error's description holds message and stack
    return thrown.get("description") or repr(thrown.get("value", details["text"]))


class Page:
    """A tab: ``evaluate`` JS in it; ``console`` lists its console output, ``events`` all."""

    def __init__(self, ws_url):
        # max_size=None: a screenshot or a big returnByValue result exceeds the 1 MiB default.
        self.ws = connect(ws_url, max_size=None, proxy=None, open_timeout=10)  # proxy: as above
        self.last_id, self.events, self._console = 0, [], []  # events: all since last navigate
        self.call("Runtime.enable")  # so console calls and uncaught errors reach us
        self.call("Page.enable")  # so Page.loadEventFired does
        # Media permission: without it WebRTC gathers only the default route's address, no loopback.
        self.call("Browser.grantPermissions", {"permissions": ["audioCapture", "videoCapture"]})

    def call(self, method, params=None, timeout=30):
        """Send one DevTools command and wait for its reply; its result."""
        self.last_id = id = self.last_id + 1
        self.ws.send(json.dumps({"id": id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            message = self.receive(deadline - time.monotonic())
            if message.get("id") == id:
                if "error" in message:
                    raise DevToolsError("%s: %s" % (method, message["error"]))
                return message["result"]

    def receive(self, timeout):
        """The next message, events noted; TimeoutError after ``timeout`` s (no sleeping)."""
        message = json.loads(self.ws.recv(timeout=max(timeout, 0)))
        params = message.get("params", {})
        self.events += [message] if "method" in message else []
        if message.get("method") == "Runtime.consoleAPICalled":
            args = (a.get("value", a.get("description", a["type"])) for a in params["args"])
            self._console.append("%s: %s" % (params["type"], " ".join(map(str, args))))
        elif message.get("method") == "Runtime.exceptionThrown":
            self._console.append("uncaught: " + _error_text(params["exceptionDetails"]))
        return message

    @property
    def console(self):
        """Console messages so far, as "log: a b" strings (uncaught errors as "uncaught: ...")."""
        with contextlib.suppress(TimeoutError):  # events come in only as we read: take queued ones
            while True:
                self.receive(0)
        return list(self._console)

    def navigate(self, url, timeout=30):
        """Load ``url`` and wait for its load event; the page."""
        del self.events[:]
        result = self.call("Page.navigate", {"url": url}, timeout)
        if result.get("errorText"):
            raise DevToolsError("navigate %s: %s" % (url, result["errorText"]))
        deadline = time.monotonic() + timeout
        while not any(e["method"] == "Page.loadEventFired" for e in self.events):
            self.receive(deadline - time.monotonic())
        return self

    def evaluate(self, expression, timeout=30):
        """The value of JS ``expression`` (awaited if a promise); DevToolsError if it throws."""
        result = self.call("Runtime.evaluate", {
            "expression": expression, "awaitPromise": True, "returnByValue": True}, timeout)
        if "exceptionDetails" in result:
            raise DevToolsError(_error_text(result["exceptionDetails"]))
        return result["result"].get("value")

    def close(self):
        """Close the tab."""
        self.call("Page.close")
        self.ws.close()


class Chromium:
    """Headless Chromium for a ``with`` block, in a fresh profile; ``stderr``: its lines."""

    def __init__(self, timeout=30, args=()):  # args: extra Chromium flags
        self.timeout, self.args, self.stderr, self.host = timeout, list(args), [], None
        self.listening = threading.Event()  # set on the DevTools line, or when stderr closes

    def __enter__(self):
        self.profile = tempfile.mkdtemp(prefix="rotordream-chromium-")
        command = [shutil.which("chromium") or "/usr/bin/chromium"] + FLAGS + [
            "--user-data-dir=" + self.profile] + self.args + ["about:blank"]
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.reader = threading.Thread(target=self._read_stderr, daemon=True)
        self.reader.start()
        if self.listening.wait(self.timeout) and self.host:
            return self
        self.__exit__()  # first, so that all of its stderr is in the message
        raise RuntimeError("chromium gave no DevTools URL:\n" + "".join(self.stderr))

    def _read_stderr(self):
        for line in self.proc.stderr:  # to its end, as a full pipe would block Chromium
            self.stderr.append(line)
            if line.startswith("DevTools listening on "):  # ws://127.0.0.1:PORT/devtools/browser/ID
                self.host = line.split()[-1].split("/")[2]
                self.listening.set()
        self.listening.set()  # stderr closed: Chromium died; let __enter__ report it now

    def open(self, url):
        """A new tab showing ``url``, loaded, as a Page."""
        request = urllib.request.Request("http://%s/json/new?about:blank" % self.host, method="PUT")
        with NO_PROXY.open(request, timeout=self.timeout) as reply:
            page = Page(json.load(reply)["webSocketDebuggerUrl"])
        return page.navigate(url, self.timeout)

    def __exit__(self, *exc):
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        # Its own process group (start_new_session): the browser if stuck, helpers that outlived it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.reader.join(5)  # the rest of stderr, now that every writer is gone
        shutil.rmtree(self.profile, ignore_errors=True)
