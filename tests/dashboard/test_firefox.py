"""The dashboard at / in headless Firefox (firefox-esr, WebDriver BiDi) against a real daemon.

Re-executes tests/dashboard/netns_firefox.py under ``unshare -n``, as test_dashboard.py
does for Chromium: daemon and browser share a namespace whose only link is ``lo``.

Debian's Firefox has no H.264 for WebRTC: that needs Mozilla's OpenH264 plugin, which is
downloaded at run time and not packaged; the ffmpeg decoder it uses for <video> is not
offered to WebRTC even with media.webrtc.hw.h264.enabled and
media.navigator.mediadatadecoder_h264_enabled. The camera sends H.264 only, so the page
shows its snapshot fallback there, and says why.
"""

import os

import pytest

from tests.conftest import require_tool, run_in_netns

HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "netns_firefox.py")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    require_tool("firefox-esr", "firefox-esr")
    return run_in_netns(HELPER, tmp_path_factory.mktemp("firefox"), 240,
                        lambda result: "console" in result)


def ok(run, step):
    assert step + "_error" not in run, run[step + "_error"] + run["daemon_log"][-2000:]
    return run[step]


def test_the_page_loads_without_console_errors(run):
    assert ok(run, "loaded") == "anonymous (viewer)"
    errors = [c for c in run["console"] if c.startswith(("error", "uncaught"))]
    assert errors == [], run["console"]
    assert "Traceback" not in run["daemon_log"]


def test_the_login_form_logs_in(run):
    login = ok(run, "login")
    assert login["who"] == "admin (admin)" and login["form"] == ["username", "password"]


def test_the_brightness_slider_writes_the_setting(run):
    slider = ok(run, "slider")
    assert slider["rest"] == {"brightness": 53}  # three presses of the right arrow key
    assert slider["shown"] == "53"


def test_a_rest_write_shows_in_the_page(run):
    assert ok(run, "rest_write") == {"contrast": 71, "light": True, "name": "Firefox test"}


def test_without_h264_in_webrtc_the_page_refreshes_snapshots_and_says_why(run):
    live = ok(run, "live")
    assert "video/H264" not in live["codecs"], live  # else WebRTC would play here
    assert live["note"] == ("Live video unavailable (this browser cannot decode H.264 over "
                            "WebRTC); showing snapshots refreshed every second.")
    assert live["video_hidden"] and not live["fallback_hidden"] and live["frames"] == 0
    assert live["refreshed_width"] == 1280  # a second picture, not the first one again
    assert live["overlay"] == "snapshot 1280x720\nstate: no WebRTC"


def test_a_screenshot_through_bidi(run):
    shot = ok(run, "screenshot")
    assert shot["inner"] == 1280 and shot["scroll"] <= 1280, shot  # no sideways scrolling
    with open(shot["path"], "rb") as f:
        png = f.read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert 1260 <= int.from_bytes(png[16:20], "big") <= 1280  # less a scroll bar
