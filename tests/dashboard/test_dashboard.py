"""The dashboard at / in headless Chromium against a real daemon, in a namespace of its own.

Re-executes tests/dashboard/netns_dashboard.py under ``unshare -n``: daemon and browser
share a network namespace whose only link is ``lo``, so the live view's WebRTC uses
127.0.0.1 and nothing leaves the machine.
"""

import os

import pytest

from tests.conftest import require_tool, run_in_netns

HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "netns_dashboard.py")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    require_tool("chromium", "chromium")
    return run_in_netns(HELPER, tmp_path_factory.mktemp("dashboard"), 300,
                        lambda result: "console" in result)


def ok(run, step):
    assert step + "_error" not in run, run[step + "_error"] + run["daemon_log"][-2000:]
    return run[step]


def test_login_form_logs_in_and_out(run):
    login = ok(run, "login")
    assert login["who"] == "admin (admin)" and login["logout_shown"]
    assert ok(run, "logout")["who"] == "anonymous (viewer)"


def test_the_live_video_decodes_frames(run):
    video = ok(run, "video")
    assert video["frames"] >= 30 and video["decoded"] >= 30, video
    assert (video["width"], video["height"]) == (1280, 720)


def test_the_stream_switch_keeps_the_connection_and_the_overlay_follows(run):
    switch = ok(run, "switch")
    assert switch["width"] == 320 and switch["session"] == switch["view_id"]
    assert "stream2 320x180" in switch["overlay"] and "state: connected" in switch["overlay"]
    assert "kbit/s" in switch["overlay"] and "fps" in switch["overlay"]


def test_the_brightness_slider_writes_and_another_browser_sees_it_at_once(run):
    slider = ok(run, "slider")
    assert slider["rest"] == {"brightness": 53}  # three presses of the right arrow key
    assert slider["other_ms"] < 500, slider
    assert slider["other_disabled"] is True  # the other browser is anonymous


def test_a_rest_write_shows_in_the_page(run):
    seen = ok(run, "rest_write")
    assert set(seen) == {"contrast", "light", "resolution"}


def test_a_bad_value_shows_the_cameras_error_next_to_the_control(run):
    bad = ok(run, "bad_value")
    assert bad["error"] == "fps must be between 5 and 60, not 1000"
    assert bad["fps"] == {"fps": 30} and bad["shown"] == "30"


def test_a_viewer_sees_every_control_disabled_with_the_reason(run):
    viewer = ok(run, "viewer")
    controls = viewer["controls"]
    assert {"brightness", "resolution", "cam1-light", "device-name"} <= {c["key"] for c in controls}
    assert all(c["disabled"] for c in controls), controls
    assert all(c["reason"] == "viewer may not change " + c["key"] for c in controls)
    assert all(c["labelled"] for c in controls)
    assert viewer["note"] == "viewer may change no settings"
    # Its live view, opened again as the viewer at login, is the viewer's to switch.
    assert viewer["switched"] == "stream2" and not viewer["live_note"]


def test_anonymous_visitors_see_the_state_a_login_button_and_the_form(run):
    anonymous = ok(run, "anonymous")
    assert anonymous["login_button"] and anonymous["form"] == ["username", "password"]
    assert anonymous["controls"] and all(c["disabled"] for c in anonymous["controls"])
    assert all(c["reason"] == "log in to change " + c["key"] for c in anonymous["controls"])


def test_no_console_errors(run):
    assert run["console"] == [], run["console"]
    assert "Traceback" not in run["daemon_log"]


def test_record_start_and_stop_make_a_recording_that_is_listed_and_plays(run):
    record = ok(run, "record")
    assert record["status"].startswith("Recording 0:0") and "free space" in record["status"]
    assert record["row"] in record["listed"]  # the page's first row is the new recording
    played = record["played"]
    assert played["id"] == record["row"] and played["frames"] > 10 and played["width"] == 1280
    assert played["duration"] >= 1.5
    assert abs(record["seeked"] - 0.5) < 0.2  # seeking works (HTTP Range)


def test_holding_the_pan_pad_moves_and_releasing_stops(run):
    pad = ok(run, "pad")
    start = pad["before"]["pan-position"]
    assert pad["moving"] == "moving"
    released = pad["released"]
    # Stopped on release, well before the end of travel (170 degrees).
    assert released["motor-state"] == "idle", released
    assert start + 3 < released["pan-position"] < start + 60, (start, released)
    assert pad["tilting"] == "moving"  # the up arrow key on the pad
    after = pad["after_blur"]  # stopped by focus leaving the pad
    assert after["motor-state"] == "idle", after
    assert released["tilt-position"] + 3 < after["tilt-position"] < 60, after
    assert after["pan-position"] == released["pan-position"]


def test_status_shows_the_daemon_and_its_streams_and_the_events_list_recording(run):
    status = ok(run, "status")
    assert set(status["rows"]) == {"uptime", "cpu", "memory", "disk", "clients"}
    assert "WebRTC" in status["rows"]["clients"] and "free" in status["rows"]["disk"]
    streams = {row[0]: row for row in status["streams"]}
    assert streams["stream1"][1] == "1280x720" and streams["stream2"][1] == "320x180"
    assert streams["stream1"][4].endswith(" ms")  # encode time
    # The recording made above, as it happened (the first reading is not an event); the
    # moving test pattern may add motion events between them.
    recording = [e for e in status["events"] if " recording: " in e]
    assert len(recording) == 2, status["events"]
    assert recording[0].endswith(" recording: stopped")
    assert recording[1].endswith(" recording: started or resumed")
    assert all(" recording: " in e or " motion: " in e for e in status["events"])


def test_an_admin_adds_changes_resets_and_deletes_a_user(run):
    users = ok(run, "users")
    assert users["added"] == "operator" and users["role"] == "viewer"
    assert users["new_password_works"] == 200
    assert "dashop" not in users["listed"] and "dashviewer" in users["listed"]


def test_a_viewer_sees_no_user_management(run):
    assert "users-section" not in ok(run, "viewer")["sections"]
    assert "status-section" in ok(run, "viewer")["sections"]


def test_desktop_and_phone_widths_fit_and_are_captured(run):
    screens = ok(run, "screens")
    for name, width in (("desktop", 1280), ("phone", 360)):
        shot = screens[name]
        assert shot["inner"] == width and shot["scroll"] <= width, shot  # no sideways scrolling
        assert shot["playing"] > 0
        with open(shot["path"], "rb") as f:
            png = f.read()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert width - 20 <= int.from_bytes(png[16:20], "big") <= width  # less a scroll bar


def test_the_recordings_date_filter(run):
    assert ok(run, "record")["filtered"] == "none"


def test_presets_save_go_and_delete_and_home(run):
    presets = ok(run, "presets")
    assert any(p.startswith("dock") for p in presets["saved"]), presets
    assert presets["home"] == [0, 0], presets  # from (20, 5)
    assert presets["went"] == "5" and not presets["error"]  # back at the preset (20, 5)


def test_the_rotor_switch_and_its_actual_speed(run):
    rotor = ok(run, "rotor")
    assert rotor["rpm"] > 500 and rotor["enabled"] == {"rotor-enabled": False}


def test_snapshot_download_and_fullscreen(run):
    downloads = ok(run, "downloads")
    assert downloads["name"].startswith("snapshot-") and downloads["name"].endswith(".jpg")
    assert downloads["jpeg"] and downloads["size"] > 1000
    assert downloads["fullscreen"] == "viewer"


def test_without_webrtc_the_page_refreshes_snapshots_and_says_so(run):
    fallback = ok(run, "fallback")
    assert fallback["note"].startswith("Live video unavailable (")
    assert "snapshots refreshed every second" in fallback["note"]
    assert fallback["video_hidden"] and fallback["width"] == 1280


def test_the_page_works_over_https(run):
    https = ok(run, "https")
    assert https["protocol"] == "https:" and https["who"] == "admin (admin)"
    assert https["frames"] >= 10 and https["light"] == {"cam2-light": True}
    assert not [c for c in https["console"] if c.startswith(("error", "uncaught"))]


def test_a_reload_keeps_the_login_and_writes_still_work(run):
    reload = ok(run, "reload")
    assert reload["who"] == "admin (admin)" and not reload["error"]
    assert not reload["motor_error"]  # home, moving from where the pad left the axes
    assert reload["light"] == {"cam1-light": False}  # it was switched on by REST above


def test_a_recording_is_deleted_from_the_list(run):
    assert ok(run, "delete_recording") == {"listed": 0}
