"""Run inside ``unshare -n``: the dashboard at / in headless Chromium against a daemon.

Started by tests/dashboard/test_dashboard.py as ``python THIS RESULT.json WORKDIR`` in a
network namespace whose only link is ``lo`` (WebRTC then offers 127.0.0.1 only and
nothing leaves the machine). Each step's findings go into RESULT.json, which the pytest
side asserts on; a step that fails records its error and the later steps still run.
"""

import base64
import json
import os
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)

from websockets.sync.client import connect  # noqa: E402

from tests.conftest import NO_LIMITS, Daemon, seed_state  # noqa: E402
from tests.support.chromium import NO_PROXY, Chromium, Page  # noqa: E402
from tests.support.netns import finish, only_loopback  # noqa: E402

VIEWER = ("dashviewer", "viewer-password-1")

# Presented frames of the live <video>, counted with requestVideoFrameCallback.
FRAMES = """(async () => {
  const started = performance.now();
  await window.rotordream;
  const video = document.getElementById("live");
  let frames = 0, first = null;
  await new Promise((resolve) => {
    const onFrame = () => {
      frames += 1;
      if (first === null) first = performance.now() - started;
      if (frames >= %d) resolve(); else video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  });
  return {frames, first_ms: first, width: video.videoWidth, height: video.videoHeight,
          decoded: video.getVideoPlaybackQuality().totalVideoFrames};
})()"""

# Resolve once the control of a key shows a value (polled each animation frame).
SHOWS = """new Promise((resolve, reject) => {
  const started = performance.now();
  const check = () => {
    const node = document.querySelector(%s);
    const value = node && (node.type === "checkbox" ? node.checked : node.value);
    if (node && String(value) === %s) resolve(performance.now() - started);
    else if (performance.now() - started > 5000) reject(new Error("shows " + value));
    else requestAnimationFrame(check);
  };
  check();
})"""

# Resolve with the condition's value once it is truthy (polled each animation frame).
UNTIL = """new Promise((resolve, reject) => {
  const started = performance.now();
  const check = () => {
    let value;
    try { value = (%s); } catch (e) { value = null; }
    if (value) resolve(value);
    else if (performance.now() - started > %d) reject(new Error("timed out: " + %s));
    else requestAnimationFrame(check);
  };
  check();
})"""

LOGIN = """(async () => {
  await window.dashboard.ready;
  document.getElementById("show-login").click();
  const form = document.getElementById("login");
  form.elements.username.value = %s;
  form.elements.password.value = %s;
  form.requestSubmit();
  return true;
})()"""

# Every control bound to a state key: what it is and whether it may be used.
CONTROLS = """[...document.querySelectorAll("input[data-key], select[data-key]")].map((n) => ({
  key: n.dataset.key, type: n.type, disabled: n.disabled,
  reason: n.closest(".row").querySelector(".reason").textContent,
  labelled: !!(n.labels && n.labels.length) || n.hasAttribute("aria-label")}))"""


def until(page, condition, timeout_ms=10000):
    """Wait in the page until the JS ``condition`` is truthy; its value."""
    return page.evaluate(UNTIL % (condition, timeout_ms, json.dumps(condition)),
                         timeout=timeout_ms / 1000 + 10)


class Rest:
    """Plain HTTP calls to the daemon as admin (Basic)."""

    def __init__(self, daemon):
        self.base = daemon.http
        self.auth = "Basic " + base64.b64encode(
            ("admin:" + daemon.admin_password).encode()).decode()

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", self.auth)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with NO_PROXY.open(request, timeout=30) as reply:
            return json.load(reply)["data"]


def context_page(browser, url):
    """A tab in a browser context of its own (no cookies shared with other tabs), loaded."""
    with NO_PROXY.open("http://%s/json/version" % browser.host, timeout=10) as reply:
        endpoint = json.load(reply)["webSocketDebuggerUrl"]
    with connect(endpoint, proxy=None, open_timeout=10) as ws:
        def call(id, method, params):
            ws.send(json.dumps({"id": id, "method": method, "params": params}))
            while True:
                message = json.loads(ws.recv(timeout=10))
                if message.get("id") == id:
                    return message["result"]
        context = call(1, "Target.createBrowserContext", {})["browserContextId"]
        target = call(2, "Target.createTarget", {"url": "about:blank",
                                                 "browserContextId": context})["targetId"]
    page = Page("ws://%s/devtools/page/%s" % (browser.host, target))
    return page.navigate(url, 30)


def front(page):
    """Make ``page`` the tab that gets key input, focused as a window the user is in."""
    page.call("Page.bringToFront")
    page.call("Emulation.setFocusEmulationEnabled", {"enabled": True})


def press(page, selector, key, code, times=1):
    """Focus ``selector`` and press a key on it ``times`` times, as a keyboard does."""
    front(page)
    page.evaluate("document.querySelector(%s).focus(); true" % json.dumps(selector))
    for _ in range(times):
        for kind in ("keyDown", "keyUp"):
            page.call("Input.dispatchKeyEvent", {"type": kind, "key": key, "code": key,
                                                 "windowsVirtualKeyCode": code})


def shows(page, key, value, tag="input"):
    """Milliseconds until the page's control of ``key`` shows ``value``."""
    selector = '%s[data-key="%s"]' % (tag, key)
    return page.evaluate(SHOWS % (json.dumps(selector), json.dumps(str(value))), timeout=15)


def step(result, name, fn, page=None):
    try:
        result[name] = fn()
    except Exception as e:  # the other steps still count; the test shows this
        result[name + "_error"] = repr(e)
        if page is not None:  # what the page showed then
            result[name + "_error"] += " " + page.evaluate("""[...document.querySelectorAll(
              "output, .bad, .error, [role=status]")].map((n) => (n.id || n.dataset.key || "") +
              "=" + (n.value ?? n.textContent)).filter((t) => !t.endsWith("=")).join(", ")""")


def over_https(workdir, config):
    """The page over HTTPS (the daemon's self-signed certificate): login, video, a write."""
    state_dir = os.path.join(workdir, "state-https")
    os.makedirs(state_dir)
    daemon = Daemon(state_dir, 18081, 18555, ["--config", config, "--https",
                                              "ssl:18443:interface=127.0.0.1"])
    try:
        daemon.start()
        base = "https://127.0.0.1:18443"
        with Chromium(args=["--ignore-certificate-errors"]) as browser:
            page = context_page(browser, base + "/")
            page.evaluate(LOGIN % (json.dumps("admin"), json.dumps(daemon.admin_password)))
            who = until(page, 'document.activeElement.id === "logout" && '
                              'document.getElementById("who").textContent')
            video = page.evaluate(FRAMES % 10, timeout=60)
            page.evaluate("""(() => {
              const box = document.querySelector('input[type=checkbox][data-key="cam2-light"]');
              box.click(); return true;
            })()""")
            until(page, 'document.querySelector(\'input[data-key="cam2-light"]\').checked')
            out = {"who": who, "frames": video["frames"], "protocol": page.evaluate(
                "location.protocol"), "console": page.console}
            page.close()
        out["light"] = Rest(daemon).call("GET", "/api/settings/cam2-light")
        return out
    finally:
        daemon.stop()


def main(result_path, workdir):
    only_loopback()
    result = {}
    state_dir = os.path.join(workdir, "state")
    os.makedirs(state_dir)
    seed_state(state_dir, {"resolution": "1280x720", "fps": 30, "brightness": 50,
                           "stream2-resolution": "320x180", "stream2-bitrate": 200})
    config = os.path.join(workdir, "rotordream.toml")
    with open(config, "w") as f:
        f.write(NO_LIMITS + '[webrtc]\naddresses = ["127.0.0.1"]\n')
    daemon = Daemon(state_dir, 18080, 18554, ["--config", config])
    pages = []
    try:
        daemon.start()
        rest = Rest(daemon)
        rest.call("POST", "/api/users", {"username": VIEWER[0], "password": VIEWER[1],
                                        "role": "viewer"})
        with Chromium() as browser:
            page = context_page(browser, daemon.http + "/")
            pages.append(page)

            def log_in():
                page.evaluate(LOGIN % (json.dumps("admin"), json.dumps(daemon.admin_password)))
                who = until(page, 'document.activeElement.id === "logout" && '
                                  'document.getElementById("who").textContent')
                until(page, '!document.querySelector(\'input[data-key="brightness"]\').disabled')
                return {"who": who, "logout_shown": page.evaluate(
                    '!document.getElementById("logout").hidden')}
            step(result, "login", log_in)
            step(result, "video", lambda: page.evaluate(FRAMES % 30, timeout=60))

            other = context_page(browser, daemon.http + "/")
            pages.append(other)
            other.evaluate("window.dashboard.ready.then(() => true)")
            until(other, 'document.querySelector(\'input[data-key="brightness"]\').value === "50"')

            def slider():
                started = time.monotonic()
                press(page, 'input[type=range][data-key="brightness"]', "ArrowRight", 39, 3)
                seen_ms = shows(other, "brightness", 53)
                return {"other_ms": (time.monotonic() - started) * 1000, "page_ms": seen_ms,
                        "rest": rest.call("GET", "/api/settings/brightness"),
                        "other_disabled": other.evaluate(
                            'document.querySelector(\'input[data-key="brightness"]\').disabled')}
            step(result, "slider", slider)

            def rest_write():
                rest.call("POST", "/api/settings", {"contrast": 71, "cam1-light": True,
                                                    "resolution": "960x540"})
                return {"contrast": shows(page, "contrast", 71),
                        "light": shows(page, "cam1-light", "true"),
                        "resolution": shows(page, "resolution", "960x540", "select")}
            step(result, "rest_write", rest_write)
            rest.call("POST", "/api/settings", {"resolution": "1280x720"})

            def bad_value():
                page.evaluate("""(() => {
                  const box = document.querySelector('input[type=number][data-key="fps"]');
                  box.value = "1000"; box.dispatchEvent(new Event("change")); return true;
                })()""")
                error = until(page, "document.getElementById('k-fps-error').textContent")
                return {"error": error, "fps": rest.call("GET", "/api/settings/fps"),
                        "shown": page.evaluate(
                            "document.querySelector('input[type=range][data-key=\"fps\"]')"
                            ".value")}
            step(result, "bad_value", bad_value)

            def viewer():
                p = context_page(browser, daemon.http + "/")
                pages.append(p)
                p.evaluate(LOGIN % (json.dumps(VIEWER[0]), json.dumps(VIEWER[1])))
                until(p, 'document.getElementById("who").textContent.startsWith("dashviewer")')
                # The live view is the viewer's own now: it may switch it.
                p.evaluate("""window.rotordream.then(() => { const s =
                  document.getElementById("stream"); s.value = "stream2";
                  s.dispatchEvent(new Event("change")); return true; })""")
                switched = until(p, 'document.getElementById("live").videoWidth === 320 && '
                                    'window.dashboard.view.stream', 20000)
                return {"controls": p.evaluate(CONTROLS), "switched": switched,
                        "live_note": p.evaluate('document.getElementById("live-note")'
                                                '.textContent'),
                        "sections": p.evaluate('[...document.querySelectorAll("section")]'
                                               '.filter((n) => !n.hidden).map((n) => n.id)'),
                        "note": p.evaluate("document.getElementById('settings-note')"
                                           ".textContent")}
            step(result, "viewer", viewer)
            step(result, "anonymous", lambda: {
                "controls": other.evaluate(CONTROLS),
                "login_button": other.evaluate('!document.getElementById("show-login").hidden'),
                "form": other.evaluate('[...document.querySelectorAll("#login input")]'
                                       '.map((n) => n.name)')})

            def switch_stream():
                page.evaluate("""(() => { const s = document.getElementById("stream");
                  s.value = "stream2"; s.dispatchEvent(new Event("change")); return true; })()""")
                overlay = until(page, 'document.getElementById("overlay").textContent'
                                      '.includes("320x180") && '
                                      'document.getElementById("overlay").textContent', 20000)
                return {"overlay": overlay, "session": page.evaluate("window.rotordreamSession"),
                        "width": page.evaluate('document.getElementById("live").videoWidth'),
                        "view_id": page.evaluate("window.dashboard.view.id")}
            step(result, "switch", switch_stream)

            def record():
                page.evaluate('document.getElementById("rec-start").click(); true')
                until(page, "window.dashboard.recorder && window.dashboard.recorder.duration >= 2",
                      20000)
                status = page.evaluate('document.getElementById("rec-status").textContent')
                page.evaluate('document.getElementById("rec-stop").click(); true')
                until(page, 'window.dashboard.recorder.state === "idle" && '
                            'document.querySelectorAll("#rec-list tbody tr").length', 20000)
                listed = rest.call("GET", "/api/recordings")["recordings"]
                row = page.evaluate('document.querySelector("#rec-list tbody tr").dataset.id')
                page.evaluate('document.querySelector("#rec-list tbody tr button").click(); true')
                played = until(page, """(() => {
                  const v = document.getElementById("playback");
                  return v.currentTime > 1 && v.getVideoPlaybackQuality().totalVideoFrames > 10 &&
                    {frames: v.getVideoPlaybackQuality().totalVideoFrames, id: v.dataset.id,
                     width: v.videoWidth, duration: v.duration};
                })()""", 20000)
                seeked = page.evaluate("""new Promise((resolve) => {
                  const v = document.getElementById("playback");
                  v.addEventListener("seeked", () => resolve(v.currentTime), {once: true});
                  v.currentTime = 0.5;
                })""")
                # A day before any recording shows none; today's shows it again.
                page.evaluate("""(() => {
                  document.getElementById("rec-until").value = "2020-01-01";
                  document.getElementById("rec-filter").requestSubmit(); return true;
                })()""")
                filtered = until(page, 'document.getElementById("rec-page").textContent === '
                                       '"no recordings" && "none"')
                page.evaluate("""(() => {
                  document.getElementById("rec-until").value = "";
                  document.getElementById("rec-filter").requestSubmit(); return true;
                })()""")
                until(page, 'document.getElementById("rec-page").textContent === "1–1 of 1"')
                return {"status": status, "listed": [r["id"] for r in listed], "row": row,
                        "played": played, "seeked": seeked, "filtered": filtered}
            step(result, "record", record)

            def presets():
                # Somewhere away from home first (an absolute move through the settings).
                rest.call("POST", "/api/settings", {"pan": 20, "tilt": 5})
                until(page, 'document.querySelector(\'output[data-key="pan-position"]\')'
                            '.value === "20" && document.getElementById("motor-state").value '
                            '=== "idle"')
                page.evaluate("""(() => {
                  const f = document.getElementById("preset-save");
                  f.elements.name.value = "dock"; f.requestSubmit(); return true;
                })()""")
                saved = until(page, '[...document.querySelectorAll("#presets li")]'
                                    '.map((l) => l.textContent).join("|").includes("dock") && '
                                    '[...document.querySelectorAll("#presets li")]'
                                    '.map((l) => l.textContent)')
                page.evaluate('document.getElementById("home").click(); true')
                home = until(page, """(() => {
                  const at = (k) => Number(document.querySelector(`output[data-key="${k}"]`).value);
                  return Math.abs(at("pan-position")) < 2 && Math.abs(at("tilt-position")) < 2 &&
                    document.getElementById("motor-state").value === "idle" &&
                    [at("pan-position"), at("tilt-position")];
                })()""", 10000)
                page.evaluate('document.querySelector(\'#presets button[aria-label="Go to '
                              'dock"]\').click(); true')
                went = until(page, 'document.querySelector(\'output[data-key='
                                   '"pan-position"]\').value === "20" && document.getElementById('
                                   '"motor-state").value === "idle" && document.querySelector('
                                   '\'output[data-key="tilt-position"]\').value', 10000)
                page.evaluate('document.querySelector(\'#presets button[aria-label="Delete '
                              'dock"]\').click(); true')
                until(page, '![...document.querySelectorAll("#presets li")]'
                            '.some((l) => l.textContent.includes("dock"))')
                return {"saved": saved, "home": home, "went": went,
                        "error": page.evaluate('document.getElementById("motor-error")'
                                               '.textContent')}
            step(result, "presets", presets, page)

            def pad():
                out = {"before": rest.call("GET", "/api/settings/pan-position")}
                box = page.evaluate("""(() => {
                  const b = document.querySelector('#pad [data-dir="1,0"]');
                  b.scrollIntoView({block: "center"});
                  const r = b.getBoundingClientRect();
                  return {x: r.x + r.width / 2, y: r.y + r.height / 2};
                })()""")
                mouse = {"x": box["x"], "y": box["y"], "button": "left", "clickCount": 1}
                front(page)
                page.call("Input.dispatchMouseEvent", dict(mouse, type="mousePressed", buttons=1))
                out["moving"] = until(page, 'Number(document.querySelector('
                                            '\'output[data-key="pan-position"]\').value) > %s && '
                                            'document.getElementById("motor-state").value'
                                      % (out["before"]["pan-position"] + 3))
                page.call("Input.dispatchMouseEvent", dict(mouse, type="mouseReleased", buttons=0))
                until(page, 'document.getElementById("motor-state").value === "idle"', 5000)
                out["released"] = rest.call("GET", "/api/settings")
                # The arrow keys on the pad, and focus leaving it, stop too.
                press_only = {"key": "ArrowUp", "code": "ArrowUp", "windowsVirtualKeyCode": 38}
                front(page)
                page.evaluate('document.getElementById("pad").focus(); true')
                page.call("Input.dispatchKeyEvent", dict(press_only, type="keyDown"))
                out["tilting"] = until(page, 'Number(document.querySelector('
                                             '\'output[data-key="tilt-position"]\').value) > %s '
                                             '&& document.getElementById("motor-state").value'
                                       % (out["released"]["tilt-position"] + 3))
                page.evaluate('document.getElementById("stream").focus(); true')
                until(page, 'document.getElementById("motor-state").value === "idle"', 5000)
                page.call("Input.dispatchKeyEvent", dict(press_only, type="keyUp"))
                out["after_blur"] = rest.call("GET", "/api/settings")
                return out
            step(result, "pad", pad)


            def rotor():
                page.evaluate('document.querySelector(\'input[data-key="rotor-enabled"]\')'
                              '.click(); true')
                rpm = until(page, 'Number(document.querySelector(\'output[data-key='
                                  '"rotor-rpm"]\').value) > 500 && document.querySelector('
                                  '\'output[data-key="rotor-rpm"]\').value')
                page.evaluate('document.querySelector(\'input[data-key="rotor-enabled"]\')'
                              '.click(); true')
                until(page, 'document.querySelector(\'output[data-key="rotor-rpm"]\')'
                            '.value === "0"')
                return {"rpm": int(rpm), "enabled": rest.call(
                    "GET", "/api/settings/rotor-enabled")}
            step(result, "rotor", rotor)

            def downloads():
                # The download itself is the browser's; the page hands it a JPEG named so.
                page.evaluate("""(() => {
                  const click = HTMLAnchorElement.prototype.click;
                  HTMLAnchorElement.prototype.click = function () {
                    window.downloaded = {href: this.href, name: this.download};
                    HTMLAnchorElement.prototype.click = click;
                  };
                  document.getElementById("snapshot").click();
                  return true;
                })()""")
                got = until(page, "window.downloaded")
                blob = page.evaluate("""fetch(%s).then((r) => r.arrayBuffer()).then((b) => {
                  const bytes = new Uint8Array(b);
                  return {size: bytes.length, jpeg: bytes[0] === 0xff && bytes[1] === 0xd8};
                })""" % json.dumps(got["href"]))
                full = page.call("Runtime.evaluate", {
                    "expression": 'document.getElementById("fullscreen").click(); true',
                    "userGesture": True})
                fullscreen = until(page, 'document.fullscreenElement && '
                                         'document.fullscreenElement.id')
                page.evaluate("document.exitFullscreen().then(() => true)")
                return {"name": got["name"], "jpeg": blob["jpeg"], "size": blob["size"],
                        "fullscreen": fullscreen, "clicked": full["result"].get("value")}
            step(result, "downloads", downloads, page)

            def fallback():
                p = context_page(browser, "about:blank")
                pages.append(p)
                # A browser whose WebRTC cannot connect: no RTCPeerConnection at all.
                p.call("Page.addScriptToEvaluateOnNewDocument", {
                    "source": "delete window.RTCPeerConnection;"})
                p.navigate(daemon.http + "/")
                first = until(p, '!document.getElementById("fallback").hidden && '
                                 'document.getElementById("fallback").naturalWidth && '
                                 'document.getElementById("fallback").src')
                second = until(p, 'document.getElementById("fallback").src !== %s && '
                                  'document.getElementById("fallback").naturalWidth'
                               % json.dumps(first))
                return {"note": p.evaluate('document.getElementById("live-note").textContent'),
                        "video_hidden": p.evaluate('document.getElementById("live").hidden'),
                        "width": second}
            step(result, "fallback", fallback)

            def status():
                until(page, 'document.querySelectorAll("#stream-stats tbody tr").length === 2 && '
                            'document.querySelector(\'[data-status="uptime"]\')')
                return page.evaluate("""({
                  rows: Object.fromEntries([...document.querySelectorAll("#status-list dd")]
                    .map((d) => [d.dataset.status, d.textContent])),
                  streams: [...document.querySelectorAll("#stream-stats tbody tr")]
                    .map((r) => [...r.cells].map((c) => c.textContent)),
                  events: [...document.querySelectorAll("#events li")].map((l) => l.textContent)
                })""")
            step(result, "status", status)

            def users():
                page.evaluate("""(() => {
                  window.confirm = () => true;  // the delete button asks first
                  const f = document.getElementById("user-add");
                  f.elements.username.value = "dashop"; f.elements.password.value = "op-pass-123";
                  f.elements.role.value = "operator"; f.requestSubmit(); return true;
                })()""")
                until(page, 'document.querySelector(\'#users tr[data-user="dashop"]\')')
                out = {"added": rest.call("GET", "/api/users/dashop")["role"]}
                page.evaluate("""(() => {
                  const row = document.querySelector('#users tr[data-user="dashop"]');
                  const role = row.querySelector("select");
                  role.value = "viewer"; role.dispatchEvent(new Event("change"));
                  row.querySelector("input[type=password]").value = "new-pass-456";
                  row.querySelector("td:nth-child(3) button").click();
                  return true;
                })()""")
                until(page, '!document.querySelector(\'#users tr[data-user="dashop"] '
                            'input[type=password]\').value')
                out["role"] = rest.call("GET", "/api/users/dashop")["role"]
                request = urllib.request.Request(daemon.http + "/api/settings")
                request.add_header("Authorization", "Basic " + base64.b64encode(
                    b"dashop:new-pass-456").decode())
                with NO_PROXY.open(request, timeout=10) as reply:
                    out["new_password_works"] = reply.status
                page.evaluate("document.querySelector('#users tr[data-user=\"dashop\"] "
                              "button[aria-label=\"Delete dashop\"]').click(); true")
                until(page, '!document.querySelector(\'#users tr[data-user="dashop"]\')')
                out["listed"] = [u["username"] for u in rest.call("GET", "/api/users")["users"]]
                return out
            step(result, "users", users)

            def screens():
                out = {}
                for name, width, height, mobile in (("desktop", 1280, 900, False),
                                                     ("phone", 360, 740, True)):
                    page.call("Emulation.setDeviceMetricsOverride", {
                        "width": width, "height": height, "deviceScaleFactor": 1,
                        "mobile": mobile})
                    page.evaluate("window.scrollTo(0, 0); new Promise((r) => "
                                  "requestAnimationFrame(() => requestAnimationFrame(r)))")
                    shot = page.call("Page.captureScreenshot", {"format": "png",
                                                                "captureBeyondViewport": True})
                    path = os.path.join(workdir, "dashboard-%s.png" % name)
                    with open(path, "wb") as f:
                        f.write(base64.b64decode(shot["data"]))
                    out[name] = {"path": path, "inner": page.evaluate("innerWidth"),
                                 "scroll": page.evaluate("document.documentElement.scrollWidth"),
                                 "playing": page.evaluate(
                                     'document.getElementById("live").videoWidth')}
                page.call("Emulation.clearDeviceMetricsOverride")
                return out
            step(result, "screens", screens)

            def delete_recording():
                page.evaluate("""(() => {
                  window.confirm = () => true;  // the delete button asks first
                  document.querySelector('#rec-list tbody tr button[aria-label^="Delete"]')
                    .click();
                  return true;
                })()""")
                until(page, 'document.getElementById("rec-page").textContent === '
                            '"no recordings"')
                return {"listed": rest.call("GET", "/api/recordings")["total"]}
            step(result, "delete_recording", delete_recording, page)

            def reload():
                # The HttpOnly cookie outlives the page; the CSRF token is kept for the tab.
                page.navigate(daemon.http + "/")
                who = until(page, 'window.dashboard.schema && '
                                  'document.getElementById("who").textContent')
                page.evaluate("window.dashboard.ready.then(() => true)")
                page.evaluate('document.querySelector(\'input[data-key="cam1-light"]\')'
                              '.click(); true')
                until(page, '!document.querySelector(\'input[data-key="cam1-light"]\')'
                            '.checked')
                # Pan/tilt goes over REST too, so the cookie session may move the axes.
                page.evaluate('document.getElementById("home").click(); true')
                until(page, 'document.getElementById("motor-state").value === "moving"', 5000)
                return {"who": who, "light": rest.call("GET", "/api/settings/cam1-light"),
                        "motor_error": page.evaluate('document.getElementById("motor-error")'
                                                     '.textContent'),
                        "error": page.evaluate("document.getElementById('k-cam1-light-error')"
                                               ".textContent")}
            step(result, "reload", reload, page)

            def logout():
                page.evaluate('document.getElementById("logout").click(); true')
                until(page, 'document.getElementById("who").textContent.startsWith("anonymous")'
                            ' && document.querySelector(\'input[data-key="brightness"]\')'
                            '.disabled')
                return {"who": page.evaluate('document.getElementById("who").textContent')}
            step(result, "logout", logout)

            result["console"] = [c for p in pages for c in p.console]
            for p in pages:
                p.close()
        daemon.stop()
        step(result, "https", lambda: over_https(workdir, config))
    finally:
        finish(result_path, result, daemon)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
