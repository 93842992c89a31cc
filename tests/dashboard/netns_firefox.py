"""Run inside ``unshare -n``: the dashboard at / in headless Firefox against a daemon.

Started by tests/dashboard/test_firefox.py as ``python THIS RESULT.json WORKDIR`` in a
network namespace whose only link is ``lo``, like netns_dashboard.py (whose step and
wait helpers it uses); Firefox is driven over WebDriver BiDi (tests/support/firefox.py).
"""

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)

from tests.conftest import NO_LIMITS, Daemon, seed_state  # noqa: E402
from tests.dashboard.netns_dashboard import Rest, step, until  # noqa: E402
from tests.support.netns import finish, only_loopback  # noqa: E402
from tests.support.firefox import Firefox  # noqa: E402

ENTER, ARROW_RIGHT = "\ue007", "\ue014"  # WebDriver key codes
# Let Firefox's WebRTC use a platform (ffmpeg) H.264 decoder if this build can.
H264_PREFS = {"media.webrtc.hw.h264.enabled": True,
              "media.navigator.mediadatadecoder_h264_enabled": True}

# What the live view shows: WebRTC frames, or the snapshot fallback and its note.
LIVE = """({
  note: document.getElementById("live-note").textContent,
  video_hidden: document.getElementById("live").hidden,
  frames: document.getElementById("live").getVideoPlaybackQuality().totalVideoFrames,
  fallback_hidden: document.getElementById("fallback").hidden,
  overlay: document.getElementById("overlay").textContent,
  codecs: RTCRtpReceiver.getCapabilities("video").codecs.map((c) => c.mimeType),
})"""


def type_text(tab, selector, text):
    """Focus ``selector`` and type ``text`` into it, key by key."""
    tab.evaluate("document.querySelector(%s).focus(), true" % json.dumps(selector))
    actions = [{"type": kind, "value": ch} for ch in text for kind in ("keyDown", "keyUp")]
    tab.call("input.performActions", {"actions": [
        {"type": "key", "id": "keyboard", "actions": actions}]})


def main(result_path, workdir):
    only_loopback()
    result = {}
    state_dir = os.path.join(workdir, "state")
    os.makedirs(state_dir)
    seed_state(state_dir, {"resolution": "1280x720", "fps": 30, "brightness": 50})
    config = os.path.join(workdir, "rotordream.toml")
    with open(config, "w") as f:
        f.write(NO_LIMITS + '[webrtc]\naddresses = ["127.0.0.1"]\n')
    daemon = Daemon(state_dir, 18083, 18557, ["--config", config])
    try:
        daemon.start()
        rest = Rest(daemon)
        with Firefox(prefs=H264_PREFS) as browser:
            tab = browser.open(daemon.http + "/")
            result["version"] = browser.version

            step(result, "loaded", lambda: tab.evaluate(
                "window.dashboard.ready.then(() => document.getElementById('who').textContent)"))

            def log_in():
                tab.evaluate('document.getElementById("show-login").click(), true')
                type_text(tab, '#login input[name="username"]', "admin")
                type_text(tab, '#login input[name="password"]', daemon.admin_password + ENTER)
                who = until(tab, 'document.activeElement.id === "logout" && '
                                 'document.getElementById("who").textContent')
                until(tab, '!document.querySelector(\'input[data-key="brightness"]\').disabled')
                return {"who": who, "form": tab.evaluate(
                    '[...document.querySelectorAll("#login input")].map((n) => n.name)')}
            step(result, "login", log_in, tab)

            def slider():
                tab.press('input[type=range][data-key="brightness"]', ARROW_RIGHT, 3)
                return {"rest": until_rest(rest, "brightness", 53),
                        "shown": tab.evaluate('document.querySelector(\'input[type=range]'
                                              '[data-key="brightness"]\').value')}
            step(result, "slider", slider, tab)

            def rest_write():
                rest.call("POST", "/api/settings", {"contrast": 71, "cam1-light": True,
                                                    "device-name": "Firefox test"})
                return {"contrast": until(tab, 'document.querySelector(\'input[type=range]'
                                               '[data-key="contrast"]\').value === "71" && 71'),
                        "light": until(tab, 'document.querySelector(\'input[data-key='
                                            '"cam1-light"]\').checked'),
                        "name": until(tab, 'document.querySelector(\'input[data-key='
                                           '"device-name"]\').value === "Firefox test" && '
                                           'document.querySelector(\'input[data-key='
                                           '"device-name"]\').value')}
            step(result, "rest_write", rest_write, tab)

            def live():
                # Either WebRTC plays (frames decoded) or the snapshot fallback took over.
                until(tab, 'document.getElementById("live").getVideoPlaybackQuality()'
                           '.totalVideoFrames > 10 || document.getElementById("fallback")'
                           '.naturalWidth', 30000)
                out = tab.evaluate(LIVE)
                if out["fallback_hidden"]:
                    return out
                first = tab.evaluate('document.getElementById("fallback").src')
                out["refreshed_width"] = until(
                    tab, 'document.getElementById("fallback").src !== %s && '
                         'document.getElementById("fallback").naturalWidth' % json.dumps(first))
                out["overlay"] = until(tab, 'document.getElementById("overlay").textContent'
                                            '.startsWith("snapshot 1280x720") && '
                                            'document.getElementById("overlay").textContent')
                return out
            step(result, "live", live, tab)

            def screenshot():
                tab.call("browsingContext.setViewport", {"viewport": {"width": 1280,
                                                                      "height": 900}})
                tab.evaluate("window.scrollTo(0, 0), new Promise((r) => "
                             "requestAnimationFrame(() => requestAnimationFrame(r)))")
                path = tab.screenshot(os.path.join(workdir, "dashboard-firefox.png"))
                return {"path": path, "inner": tab.evaluate("innerWidth"),
                        "scroll": tab.evaluate("document.documentElement.scrollWidth")}
            step(result, "screenshot", screenshot, tab)

            result["console"] = tab.console
            tab.close()
    finally:
        finish(result_path, result, daemon)


def until_rest(rest, key, value):
    """The REST value of ``key`` once the page's write of ``value`` reached it."""
    deadline = time.monotonic() + 10
    while True:
        got = rest.call("GET", "/api/settings/" + key)
        if got[key] == value or time.monotonic() > deadline:
            return got
        time.sleep(0.05)  # the daemon is a process of its own: poll it


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
