"""Run inside ``unshare -n``: rotordream.js in headless Chromium against a daemon.

Started by tests/clients/test_js_browser.py as ``python THIS RESULT.json WORKDIR`` in a
network namespace whose only link is ``lo`` (WebRTC then offers 127.0.0.1 only and
nothing leaves the machine). Pages of the daemon's own origin import
/client/rotordream.js; what they saw goes into RESULT.json for the pytest side.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, ROOT)

from tests.conftest import NO_LIMITS  # noqa: E402
from tests.support.chromium import Chromium  # noqa: E402
from tests.support.netns import admin_get, finish, only_loopback, viewer_daemon  # noqa: E402

# Presented frames of a <video>, counted with requestVideoFrameCallback.
HELPERS = """
window.frames_of = (video, wanted, width) => new Promise((resolve) => {
  let frames = 0;
  const started = performance.now();
  const onFrame = (now, meta) => {
    if (width === undefined || meta.width === width) frames += 1;
    if (frames >= wanted) resolve({frames, width: video.videoWidth, height: video.videoHeight,
                                   ms: performance.now() - started});
    else video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
});
window.own_sessions = async () => (await (await fetch("/api/webrtc/sessions",
  {headers: {"X-Requested-With": "XMLHttpRequest"}})).json()).data.sessions.map((s) => s.id);
true
"""

LIVE = """(async () => {
  const {Camera} = await import("/client/rotordream.js");
  const video = document.createElement("video");
  video.muted = true; video.autoplay = true;
  document.body.appendChild(video);
  const camera = new Camera();
  const view = await camera.live(video, {stream: "stream1"});
  const out = {id: view.id, first: await frames_of(video, 30)};
  out.listed = (await own_sessions()).includes(view.id);
  out.switch_reply = await view.switch("stream2");
  out.after = await frames_of(video, 15, 320);
  out.stream = view.stream;
  await view.close();
  out.listed_after_close = (await own_sessions()).includes(view.id);
  out.pc_state = view.pc.connectionState;
  out.src_cleared = video.srcObject === null;
  return out;
})()"""

AUTH = """(async () => {
  const {Camera, RotorDreamError} = await import("/client/rotordream.js");
  const PW = %s;
  const out = {};
  const fail = async (promise) => {
    try { await promise; return null; } catch (e) {
      return {code: e.code, key: e.key, status: e.status, name: e.name,
              typed: e instanceof RotorDreamError};
    }
  };
  // No password dialog: a refused call resolves into an error at once.
  out.anonymous_users = await fail(new Camera().users.list());
  // Basic credentials given to the constructor.
  const basic = new Camera(undefined, {username: "admin", password: PW});
  out.basic_users = (await basic.users.list()).map((u) => u.username);
  out.invalid = await fail(basic.set({brightness: 30, contrast: 101}));
  out.brightness_kept = (await basic.get("brightness")).brightness;
  const blob = await basic.snapshot();
  out.snapshot = {blob: blob instanceof Blob, type: blob.type, size: blob.size};
  // A bearer token given to the constructor.
  const tokenSource = await (await fetch("/api/login", {method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({username: "admin", password: PW})})).json();
  out.token_status = (await new Camera(undefined, {token: tokenSource.token}).status()).uptime > 0;
  await fetch("/api/logout", {method: "POST", headers: {"Authorization": "Bearer " +
    tokenSource.token, "X-Requested-With": "XMLHttpRequest"}});
  const plain = () => fetch("/api/users", {headers: {"X-Requested-With": "XMLHttpRequest"}});
  out.before_login = (await plain()).status;
  // login(): the session cookie, and the CSRF token on writes; never an Authorization header.
  const sent = [];
  const session = new Camera(undefined, {fetch: (url, init) => {
    sent.push({url: String(url), method: init.method, headers: init.headers});
    return fetch(url, init);
  }});
  out.login = await session.login("admin", PW);
  out.cookie_read = (await plain()).status;
  out.cookie_write_without_csrf = (await fetch("/api/settings", {method: "POST",
    headers: {"Content-Type": "application/json", "X-Requested-With": "XMLHttpRequest"},
    body: JSON.stringify({brightness: 31})})).status;
  out.session_write = await session.set({brightness: 32});
  out.session_headers = sent.filter((s) => s.url.endsWith("/api/settings"))
    .map((s) => s.headers);
  out.session_presets = Array.isArray(await session.ptz.presets());
  const seen = [];
  const watch = session.watch((changes) => seen.push(changes), {keys: ["contrast"]});
  const first = await watch.ready;
  await basic.set({contrast: first.contrast === 44 ? 45 : 44});
  const deadline = Date.now() + 10000;
  while (!seen.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  out.watched = seen;
  watch.close();
  out.logout = await session.logout();
  out.after_logout = (await plain()).status;
  out.every_request_marked = sent.every((s) => s.headers["X-Requested-With"] === "XMLHttpRequest");
  return out;
})()"""

# The dashboard example, written into a page of the daemon's origin.
DASHBOARD_PLAYS = """(async () => {
  const deadline = Date.now() + 20000;
  while (!(window.dashboard && window.dashboard.view) && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 50));
  const video = document.getElementById("video");
  return await frames_of(video, 30);
})()"""

DASHBOARD_LOGIN_AND_LIGHT = """(async () => {
  const $ = (id) => document.getElementById(id);
  $("username").value = "admin";
  $("password").value = %s;
  $("login").requestSubmit();
  const wait = async (ok) => {
    const deadline = Date.now() + 10000;
    while (!ok() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return ok();
  };
  const enabled = await wait(() => !$("controls").disabled);
  const was = $("light").checked;
  $("light").click();  // a user's click: toggles the box and fires change
  const shown = await wait(() => $("status").textContent.includes(
    "cam1-light: " + JSON.stringify(!was)));
  return {enabled, was, shown, status: $("status").textContent, error: $("error").textContent,
          who: $("who").textContent};
})()"""


def main(result_path, workdir):
    only_loopback()
    result = {}
    daemon = viewer_daemon(workdir, NO_LIMITS + '[webrtc]\naddresses = ["127.0.0.1"]\n')
    password = json.dumps(daemon.admin_password)
    try:
        daemon.start()
        with Chromium() as browser:
            page = browser.open(daemon.http + "/api/info")
            page.evaluate(HELPERS)
            result["live"] = page.evaluate(LIVE, timeout=90)
            result["auth"] = page.evaluate(AUTH % password, timeout=60)
            result["console"] = page.console
            page.close()
            with open(os.path.join(ROOT, "examples", "dashboard.html")) as f:
                html = f.read()
            dash = browser.open(daemon.http + "/api/info")
            dash.evaluate("document.open(); document.write(%s); document.close(); true"
                          % json.dumps(html))
            dash.evaluate(HELPERS)
            result["dashboard_video"] = dash.evaluate(DASHBOARD_PLAYS, timeout=60)
            result["dashboard_light"] = dash.evaluate(DASHBOARD_LOGIN_AND_LIGHT % password,
                                                      timeout=30)
            result["light_setting"] = admin_get(daemon, "/api/settings/cam1-light")
            result["console"] += dash.console
            dash.close()
    finally:
        finish(result_path, result, daemon)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
