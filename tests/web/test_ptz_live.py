"""REST pan/tilt (/api/ptz) against a daemon with the simulated motor controller."""

import pytest
import requests

from tests.support.live import StateWatcher


@pytest.fixture(scope="module")
def camera(tmp_path_factory):
    """A daemon of this module's own: the tests move its motors."""
    from tests.conftest import make_daemon
    d = make_daemon(tmp_path_factory, extra=["--motor", "sim"])
    yield d
    d.stop()


def call(camera, method, path, body=None, auth=True, **kw):
    auth = ("admin", camera.admin_password) if auth else None
    r = requests.request(method, camera.http + path, json=body, auth=auth, timeout=30, **kw)
    return r.status_code, r.json()


def near(value, target):
    return value is not None and abs(value - target) < 0.5


def test_status_is_public_and_moves_need_motor_control(camera):
    code, body = call(camera, "GET", "/api/ptz", auth=False)
    assert code == 200
    data = body["data"]
    assert {"pan", "tilt", "state", "limits", "presets"} <= set(data)
    assert data["limits"]["pan_min"] < 0 < data["limits"]["pan_max"]
    code, body = call(camera, "POST", "/api/ptz/move", {"pan": 10}, auth=False)
    assert code == 401 and body["code"] == "UNAUTHORIZED"


def test_absolute_and_relative_moves_keep_the_targets_true(camera):
    with StateWatcher(camera) as watch:
        code, body = call(camera, "POST", "/api/ptz/move", {"pan": 30, "tilt": -10})
        assert code == 200 and body["status"] == "success"
        watch.wait("pan-position", lambda v: near(v, 30))
        watch.wait("tilt-position", lambda v: near(v, -10))
        watch.wait("motor-state", "idle")
    _, settings = call(camera, "GET", "/api/settings?keys=pan,tilt")
    assert (settings["data"]["pan"], settings["data"]["tilt"]) == (30, -10)
    with StateWatcher(camera) as watch:
        # One axis only: the other stays where it is (no swing back to a stale target).
        assert call(camera, "POST", "/api/ptz/move", {"tilt": 5})[0] == 200
        watch.wait("tilt-position", lambda v: near(v, 5))
        assert near(watch.state["pan-position"], 30)
        watch.wait("motor-state", "idle")   # a relative move starts from where the axes are
        assert call(camera, "POST", "/api/ptz/relative", {"pan": -10})[0] == 200
        watch.wait("pan-position", lambda v: near(v, 20))
        watch.wait("motor-state", "idle")
    _, settings = call(camera, "GET", "/api/settings?keys=pan,tilt")
    assert (settings["data"]["pan"], settings["data"]["tilt"]) == (20, 5)
    with StateWatcher(camera) as watch:
        # A step past a limit stops at the limit.
        tilt_max = call(camera, "GET", "/api/ptz")[1]["data"]["limits"]["tilt_max"]
        assert call(camera, "POST", "/api/ptz/relative", {"tilt": 179})[0] == 200
        watch.wait("tilt-position", lambda v: near(v, tilt_max))
        watch.wait("motor-state", "idle")


@pytest.mark.parametrize("path, body, key", [
    ("/api/ptz/move", {"pan": 999}, "pan"),
    ("/api/ptz/move", {"tilt": "up"}, "tilt"),
    ("/api/ptz/move", {"pan": True}, "pan"),
    ("/api/ptz/move", {}, "pan"),
    ("/api/ptz/move", {"zoom": 2}, "zoom"),
    ("/api/ptz/move", {"pan": 1, "speed": -3}, "speed"),
    ("/api/ptz/continuous", {"pan_velocity": 2}, "pan_velocity"),
    ("/api/ptz/continuous", {"pan_velocity": 0.5, "timeout": 0}, "timeout"),
    ("/api/ptz/presets", {"name": ""}, "name"),
    ("/api/ptz/presets", {"name": "x" * 65}, "name"),
])
def test_bad_moves_name_the_field_and_move_nothing(camera, path, body, key):
    _, before = call(camera, "GET", "/api/ptz")
    code, answer = call(camera, "POST", path, body)
    assert code == 400 and answer["status"] == "error" and answer["key"] == key
    _, after = call(camera, "GET", "/api/ptz")
    assert (after["data"]["pan"], after["data"]["tilt"]) == \
        (before["data"]["pan"], before["data"]["tilt"])
    assert after["data"]["presets"] == before["data"]["presets"]


def test_a_body_that_is_not_json_is_refused(camera):
    r = requests.post(camera.http + "/api/ptz/move", data=b"{pan: 1}",
                      headers={"Content-Type": "application/json"},
                      auth=("admin", camera.admin_password), timeout=30)
    assert r.status_code == 400 and r.json()["status"] == "error"


def test_continuous_move_runs_until_stopped(camera):
    with StateWatcher(camera) as watch:
        start = watch.state["pan-position"]
        assert call(camera, "POST", "/api/ptz/continuous", {"pan_velocity": 0.5})[0] == 200
        watch.wait("motor-state", "moving")
        watch.wait("pan-position", lambda v: v is not None and v > start + 2)
        assert call(camera, "POST", "/api/ptz/stop")[0] == 200
        watch.wait("motor-state", "idle")
        stopped = watch.state["pan-position"]
    _, now = call(camera, "GET", "/api/ptz")
    assert now["data"]["state"] == "idle" and near(now["data"]["pan"], stopped)


def test_presets_store_go_and_delete(camera):
    with StateWatcher(camera) as watch:
        assert call(camera, "POST", "/api/ptz/move", {"pan": -40, "tilt": 15})[0] == 200
        watch.wait("pan-position", lambda v: near(v, -40))
        watch.wait("motor-state", "idle")
        code, body = call(camera, "POST", "/api/ptz/presets", {"name": "door"})
        assert code == 201 and body["data"]["name"] == "door"
        token = body["data"]["token"]
        _, listed = call(camera, "GET", "/api/ptz/presets", auth=False)
        [door] = [p for p in listed["data"]["presets"] if p["token"] == token]
        assert (door["name"], door["pan"], door["tilt"]) == ("door", -40, 15)
        assert call(camera, "POST", "/api/ptz/home")[0] == 200
        watch.wait("pan-position", lambda v: near(v, 0))
        watch.wait("motor-state", "idle")
        assert call(camera, "POST", "/api/ptz/presets/%s/goto" % token)[0] == 200
        watch.wait("pan-position", lambda v: near(v, -40))
        watch.wait("tilt-position", lambda v: near(v, 15))
    assert call(camera, "DELETE", "/api/ptz/presets/%s" % token)[0] == 200
    code, body = call(camera, "DELETE", "/api/ptz/presets/%s" % token)
    assert code == 404 and body["code"] == "NOT_FOUND"
    assert call(camera, "POST", "/api/ptz/presets/%s/goto" % token)[0] == 404


def test_the_routes_are_in_the_openapi_document(camera):
    _, doc = call(camera, "GET", "/api/openapi.json", auth=False)
    paths = doc.get("paths") or doc["data"]["paths"]
    for path in ("/api/ptz", "/api/ptz/move", "/api/ptz/continuous", "/api/ptz/presets",
                 "/api/ptz/presets/{token}/goto"):
        assert path in paths, path
