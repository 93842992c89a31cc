"""rotordream.js and examples/dashboard.html in headless Chromium, in a namespace of their own.

Re-executes tests/clients/js/netns_browser.py under ``unshare -n``: daemon and browser
share a network namespace whose only link is ``lo``.
"""

import os

import pytest

from tests.conftest import require_tool, run_in_netns

HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js", "netns_browser.py")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    require_tool("chromium", "chromium")
    return run_in_netns(HELPER, tmp_path_factory.mktemp("jsbrowser"), 300,
                        lambda result: "live" in result and "auth" in result)


def test_live_view_plays_switches_to_stream2_and_hangs_up(run):
    live = run["live"]
    assert (live["first"]["width"], live["first"]["height"]) == (1280, 720), live
    assert live["first"]["frames"] >= 30 and live["listed"], live
    assert live["switch_reply"]["stream"] == "stream2", live
    assert (live["after"]["width"], live["after"]["height"]) == (320, 180), live
    assert live["after"]["frames"] >= 15 and live["stream"] == "stream2"
    # close(): the peer connection is closed and the camera no longer lists the session.
    assert live["listed_after_close"] is False and live["pc_state"] == "closed", live
    assert live["src_cleared"]


def test_refusals_come_as_errors_without_a_password_dialog(run):
    auth = run["auth"]
    assert auth["anonymous_users"] == {"code": "UNAUTHORIZED", "key": None, "status": 401,
                                       "name": "RotorDreamError", "typed": True}
    assert auth["invalid"]["code"] == "INVALID_VALUE" and auth["invalid"]["key"] == "contrast"
    assert auth["invalid"]["status"] == 400 and auth["invalid"]["typed"]
    assert auth["every_request_marked"]


def test_basic_credentials_and_a_token_given_to_the_constructor(run):
    auth = run["auth"]
    assert "admin" in auth["basic_users"]
    assert auth["brightness_kept"] != 30  # the refused batch changed nothing
    assert auth["snapshot"]["blob"] and auth["snapshot"]["type"] == "image/jpeg"
    assert auth["snapshot"]["size"] > 1000
    assert auth["token_status"] is True


def test_login_uses_the_session_cookie_and_logout_ends_it(run):
    auth = run["auth"]
    assert auth["before_login"] == 401
    assert auth["login"]["user"] == "admin" and auth["login"]["role"] == "admin"
    # The HttpOnly cookie authenticates the page's own fetches too ...
    assert auth["cookie_read"] == 200
    # ... but a write needs the CSRF token, which the client sends.
    assert auth["cookie_write_without_csrf"] == 403
    assert auth["session_write"] == {"brightness": 32}
    [headers] = auth["session_headers"]
    assert "X-CSRF-Token" in headers and "Authorization" not in headers, headers
    assert auth["session_presets"] is True
    assert len(auth["watched"]) == 1 and "contrast" in auth["watched"][0], auth["watched"]
    assert auth["logout"]["logged_out"] is True
    assert auth["after_logout"] == 401


def test_the_dashboard_example_shows_video_and_its_light_switch_works(run):
    video = run["dashboard_video"]
    assert video["frames"] >= 30 and (video["width"], video["height"]) == (1280, 720), video
    light = run["dashboard_light"]
    assert light["enabled"] and light["shown"], light
    assert light["who"] == "admin (admin)" and not light["error"], light
    assert run["light_setting"] == {"cam1-light": not light["was"]}


def test_no_page_errors(run):
    errors = [c for c in run["console"] if c.startswith(("uncaught", "error"))]
    assert not errors, errors
    assert "Traceback" not in run["daemon_log"]
