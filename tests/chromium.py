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
    "--allow-loopback-in-peer-connection",  # ICE may pair 127.0.0.1 candidates
    "--disable-features=WebRtcHideLocalIpsWithMdns",  # raw IPs, not unresolvable .local names
    "--autoplay-policy=no-user-gesture-required",  # <video> plays with no click
]
# No proxy: urllib and websockets otherwise honour *_proxy variables, even for loopback.
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class DevToolsError(Exception):
    """A DevTools command failed, or the evaluated script threw (message: the JS error)."""


def _error_text(details):
    thrown = details.get("exception", {})  # an Error's description holds message and stack
    return thrown.get("description") or repr(thrown.get("value", details["text"]))


class Page:
    """A tab: ``evaluate`` JS in it; ``console`` lists its console output."""

    def __init__(self, ws_url):
        # max_size=None: a screenshot or a big returnByValue result exceeds the 1 MiB default.
        self.ws = connect(ws_url, max_size=None, proxy=None, open_timeout=10)
        self.last_id, self.events, self._console = 0, [], []  # events: all since last navigate
        self.call("Runtime.enable")  # so console calls and uncaught errors reach us
        self.call("Page.enable")  # so Page.loadEventFired does

    def call(self, method, params=None, timeout=30):
        """Send one DevTools command and wait for its reply; its result."""
        self.last_id += 1
        id = self.last_id
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
        if "method" in message:
            self.events.append(message)
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
        """Load ``url`` and wait for its load event."""
        del self.events[:]
        result = self.call("Page.navigate", {"url": url}, timeout)
        if result.get("errorText"):
            raise DevToolsError("navigate %s: %s" % (url, result["errorText"]))
        deadline = time.monotonic() + timeout
        while not any(e["method"] == "Page.loadEventFired" for e in self.events):
            self.receive(deadline - time.monotonic())

    def evaluate(self, expression, timeout=30):
        """The value of JS ``expression`` (awaited if a promise); DevToolsError if it throws."""
        result = self.call("Runtime.evaluate", {
            "expression": expression, "awaitPromise": True, "returnByValue": True}, timeout)
        if "exceptionDetails" in result:
            raise DevToolsError(_error_text(result["exceptionDetails"]))
        return result["result"].get("value")

    def close(self):
        """Close the tab."""
        with contextlib.suppress(Exception):  # the reply may lose the race with the closing socket
            self.call("Page.close", timeout=5)
        self.ws.close()


class Chromium:
    """Headless Chromium for one ``with`` block, in a fresh profile that is removed after."""

    def __init__(self, timeout=30, args=()):
        self.timeout, self.args = timeout, list(args)  # args: extra Chromium flags
        self.stderr, self.host = [], None  # stderr: its lines, for debugging

    def __enter__(self):
        self.profile = tempfile.mkdtemp(prefix="rotordream-chromium-")
        command = [shutil.which("chromium") or "/usr/bin/chromium"] + FLAGS + [
            "--user-data-dir=" + self.profile] + self.args + ["about:blank"]
        # A session of its own, so that on exit we can end every helper process it forked.
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        listening = threading.Event()
        # Read stderr to its end, not just to the DevTools line: a full pipe would block Chromium.
        self.reader = threading.Thread(target=self._read_stderr, args=(listening,), daemon=True)
        self.reader.start()
        if listening.wait(self.timeout) and self.host:
            return self
        self.__exit__()  # first, so that all of its stderr is in the message
        raise RuntimeError("chromium gave no DevTools URL:\n" + "".join(self.stderr))

    def _read_stderr(self, listening):
        for line in self.proc.stderr:
            self.stderr.append(line)
            if line.startswith("DevTools listening on "):  # ws://127.0.0.1:PORT/devtools/browser/ID
                self.host = line.split()[-1].split("/")[2]
                listening.set()
        listening.set()  # stderr closed: Chromium died; let __enter__ report it now

    def open(self, url):
        """A new tab showing ``url``, loaded, as a Page."""
        request = urllib.request.Request("http://%s/json/new?about:blank" % self.host, method="PUT")
        with NO_PROXY.open(request, timeout=self.timeout) as reply:
            page = Page(json.load(reply)["webSocketDebuggerUrl"])
        page.navigate(url, self.timeout)
        return page

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        with contextlib.suppress(ProcessLookupError):  # helpers that outlived the browser
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.reader.join(5)  # the rest of stderr, now that every writer is gone
        shutil.rmtree(self.profile, ignore_errors=True)
