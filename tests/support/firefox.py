"""Drive headless Firefox (Debian's firefox-esr) over WebDriver BiDi.

Firefox speaks BiDi on ``--remote-debugging-port`` (the Chrome DevTools protocol is
gone from it): one WebSocket per browser, a session made with ``session.new``, and tabs
("browsing contexts") named in each command.
"""

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from websockets.sync.client import connect

# Prefs for a test profile (user.js): quiet, offline, media allowed to play at once.
PREFS = {
    "browser.shell.checkDefaultBrowser": False,
    "app.update.disabledForTesting": True,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "network.proxy.type": 0,  # no proxy: the daemon is on 127.0.0.1
    "media.gmp-manager.updateEnabled": False,  # no plugin downloads (there is no network)
    "media.autoplay.default": 0,  # <video> plays with no click
    "media.autoplay.blocking_policy": 0,
    # WebRTC on loopback: Firefox leaves 127.0.0.1 out of ICE and hides host addresses
    # behind mDNS names unless told otherwise (Chromium's flags in chromium.py do the same).
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "media.navigator.permission.disabled": True,
}


class BiDiError(Exception):
    """A BiDi command failed, or the evaluated script threw (message: the JS error)."""


def _user_js(prefs):
    return "".join("user_pref(%s, %s);\n" % (json.dumps(k), json.dumps(v))
                   for k, v in prefs.items())


def _exception_text(details):
    thrown = details.get("exception", {})
    text = details.get("text") or thrown.get("value") or thrown.get("type")
    return "%s (line %s)" % (text, details.get("lineNumber"))


class Tab:
    """A browsing context: ``evaluate`` JS in it; ``console`` lists its console output."""

    def __init__(self, browser, context):
        self.browser, self.context = browser, context

    def call(self, method, params=None, timeout=30):
        """Send a BiDi command with ``context`` filled in; its result."""
        return self.browser.call(method, dict({"context": self.context}, **(params or {})),
                                 timeout)

    def navigate(self, url, timeout=30):
        """Load ``url`` and wait for its load event; the tab."""
        self.browser.call("browsingContext.navigate", {
            "context": self.context, "url": url, "wait": "complete"}, timeout)
        return self

    def evaluate(self, expression, timeout=30):
        """The value of JS ``expression`` (awaited if a promise), through JSON; BiDiError if
        it throws."""
        wrapped = "(async () => JSON.stringify(await (%s)))()" % expression
        result = self.browser.call("script.evaluate", {
            "expression": wrapped, "target": {"context": self.context}, "awaitPromise": True,
            "resultOwnership": "none", "userActivation": True}, timeout)
        if result["type"] == "exception":
            raise BiDiError(_exception_text(result["exceptionDetails"]))
        value = result["result"]
        return json.loads(value["value"]) if value["type"] == "string" else None

    def press(self, selector, key, times=1):
        """Focus ``selector`` and press ``key`` (a character or WebDriver key code) on it."""
        self.evaluate("document.querySelector(%s).focus(), true" % json.dumps(selector))
        actions = [{"type": kind, "value": key} for _ in range(times)
                   for kind in ("keyDown", "keyUp")]
        self.call("input.performActions", {"actions": [
            {"type": "key", "id": "keyboard", "actions": actions}]})

    def screenshot(self, path):
        """Save a PNG of the whole document at ``path``."""
        data = self.call("browsingContext.captureScreenshot", {"origin": "document"})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path

    @property
    def console(self):
        """Console messages so far, as "level: text" ("uncaught: ..." for thrown errors)."""
        self.browser.drain()
        return list(self.browser.console.get(self.context, []))

    def close(self):
        """Close the tab."""
        self.browser.call("browsingContext.close", {"context": self.context})


class Firefox:
    """Headless Firefox for a ``with`` block, in a fresh profile; ``stderr``: its lines.

    ``prefs`` are added to the profile's user.js, over :data:`PREFS`.
    """

    def __init__(self, timeout=30, prefs=None, accept_insecure_certs=False):
        self.timeout, self.stderr, self.url, self.version = timeout, [], None, None
        self.prefs = dict(PREFS, **(prefs or {}))
        self.accept_insecure_certs = accept_insecure_certs
        self.listening = threading.Event()  # set on the BiDi line, or when stderr closes
        self.last_id, self.console, self.events = 0, {}, []

    def __enter__(self):
        self.profile = tempfile.mkdtemp(prefix="rotordream-firefox-")
        with open(os.path.join(self.profile, "user.js"), "w") as f:
            f.write(_user_js(self.prefs))
        binary = shutil.which("firefox-esr") or shutil.which("firefox") or "/usr/bin/firefox-esr"
        command = [binary, "--headless", "--no-remote", "--profile", self.profile,
                   "--remote-debugging-port=0", "about:blank"]  # 0: Firefox picks a port
        env = dict(os.environ, MOZ_CRASHREPORTER_DISABLE="1")
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, env=env,
                                     start_new_session=True)
        self.reader = threading.Thread(target=self._read_stderr, daemon=True)
        self.reader.start()
        try:
            if not (self.listening.wait(self.timeout) and self.url):
                raise RuntimeError("firefox gave no WebDriver BiDi URL")
            # max_size=None: a screenshot exceeds the 1 MiB default; proxy=None: ignore *_proxy.
            self.ws = connect(self.url + "/session", max_size=None, proxy=None, open_timeout=10)
            self.version = self.call("session.new", {"capabilities": {"alwaysMatch": {
                "acceptInsecureCerts": self.accept_insecure_certs,
                "unhandledPromptBehavior": {"default": "ignore"}}}})["capabilities"][
                "browserVersion"]
            self.call("session.subscribe", {"events": ["log.entryAdded"]})
        except Exception as e:
            self.__exit__()  # first, so that all of its stderr is in the message
            raise RuntimeError("%s\n%s" % (e, "".join(self.stderr))) from e
        return self

    def _read_stderr(self):
        for line in self.proc.stderr:  # to its end, as a full pipe would block Firefox
            self.stderr.append(line)
            if line.startswith("WebDriver BiDi listening on "):  # ws://127.0.0.1:PORT
                self.url = line.split()[-1]
                self.listening.set()
        self.listening.set()  # stderr closed: Firefox died; let __enter__ report it now

    def call(self, method, params=None, timeout=30):
        """Send one BiDi command and wait for its reply; its result."""
        self.last_id = id = self.last_id + 1
        self.ws.send(json.dumps({"id": id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            message = self.receive(deadline - time.monotonic())
            if message.get("id") == id:
                if message.get("type") == "error":
                    raise BiDiError("%s: %s: %s" % (method, message["error"],
                                                    message.get("message")))
                return message["result"]

    def receive(self, timeout):
        """The next message, events noted; TimeoutError after ``timeout`` s (no sleeping)."""
        message = json.loads(self.ws.recv(timeout=max(timeout, 0)))
        if message.get("type") == "event":
            self.events.append(message)
            params = message["params"]
            if message["method"] == "log.entryAdded":
                kind = "uncaught" if params["type"] == "javascript" else params["level"]
                context = params.get("source", {}).get("context")
                self.console.setdefault(context, []).append("%s: %s" % (kind, params["text"]))
        return message

    def drain(self):
        """Take in the events queued so far."""
        with contextlib.suppress(TimeoutError):
            while True:
                self.receive(0)

    def open(self, url, user_context=None):
        """A new tab showing ``url``, loaded; ``user_context``: its cookie jar (see
        :meth:`user_context`)."""
        params = {"type": "tab"}
        if user_context:
            params["userContext"] = user_context
        context = self.call("browsingContext.create", params)["context"]
        return Tab(self, context).navigate(url, self.timeout)

    def user_context(self):
        """A new user context: tabs in it share no cookies or storage with others."""
        return self.call("browser.createUserContext")["userContext"]

    def __exit__(self, *exc):
        if getattr(self, "ws", None) is not None:
            with contextlib.suppress(Exception):
                self.call("session.end", timeout=5)
            self.ws.close()
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        # Its own process group (start_new_session): the browser if stuck, its content processes.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.reader.join(5)  # the rest of stderr, now that every writer is gone
        shutil.rmtree(self.profile, ignore_errors=True)
