"""GET /api/settings/schema: the key declarations of rotordream/state.py as JSON."""

import json

import requests

from rotordream.auth import roles
from rotordream.state import KEYS, declarations


def test_declarations_export_every_key_with_its_range_choices_and_permissions():
    out = declarations()
    assert [d["key"] for d in out] == [spec.name for spec in KEYS]
    by = {d["key"]: d for d in out}
    assert by["brightness"] == {
        "key": "brightness", "type": "int", "default": 50, "description": "Image brightness",
        "read": roles.STATE_READ, "write": roles.CAMERA_CONTROL, "persisted": True,
        "status": False, "minimum": 0, "maximum": 100}
    assert by["resolution"]["choices"][0] == "1920x1080"
    assert by["rotor-rpm"]["write"] is None and by["rotor-rpm"]["status"] is True
    assert by["noise-supression"]["aliases"] == ["noise-suppression"]
    assert by["device-name"]["max_length"] == 64
    assert "pause" in by["record"]["choices"]
    json.dumps(out)  # JSON-ready as it is


def test_declarations_take_the_choices_narrowed_at_run_time():
    by = {d["key"]: d for d in declarations(choices={"resolution": ("640x480",)})}
    assert by["resolution"]["choices"] == ["640x480"]
    assert by["stream2-resolution"]["choices"][0] == "1280x720"


def test_schema_for_anonymous_viewer_admin_and_in_the_openapi_document(daemon):
    url = daemon.http + "/api/settings/schema"
    anonymous = requests.get(url, timeout=10)
    assert anonymous.status_code == 200
    data = anonymous.json()["data"]
    assert data["authenticated"] is False and data["role"] == "viewer"
    by = {d["key"]: d for d in data["keys"]}
    # What the anonymous role may read: discovery-mode is for admins only.
    assert "discovery-mode" not in by and "brightness" in by
    assert by["brightness"]["writable"] is False
    assert by["brightness"]["reason"] == "log in to change brightness"
    assert by["rotor-rpm"]["reason"] == "read-only: set by the camera"
    admin = requests.get(url, auth=("admin", daemon.admin_password), timeout=10).json()["data"]
    assert admin["role"] == "admin" and "users.admin" in admin["permissions"]
    by = {d["key"]: d for d in admin["keys"]}
    assert by["brightness"]["writable"] is True and "reason" not in by["brightness"]
    assert by["discovery-mode"]["choices"] == ["discoverable", "non-discoverable"]
    assert set(by) == set(requests.get(daemon.http + "/api/settings", timeout=10,
                                       auth=("admin", daemon.admin_password)).json()["data"]) \
        | {"snap"}
    # Every readable range agrees with what a write of a bad value says.
    bad = requests.post(daemon.http + "/api/settings", json={"fps": 1000}, timeout=10,
                        auth=("admin", daemon.admin_password)).json()
    assert bad["allowed"] == {"min": by["fps"]["minimum"], "max": by["fps"]["maximum"]}
    paths = requests.get(daemon.http + "/api/openapi.json", timeout=10).json()["paths"]
    assert "get" in paths["/api/settings/schema"]
    assert "post" not in paths["/api/settings/schema"]


def test_schema_for_a_viewer_says_why_writes_are_refused(daemon):
    admin = ("admin", daemon.admin_password)
    requests.post(daemon.http + "/api/users", auth=admin, timeout=10,
                  json={"username": "schemaviewer", "password": "viewer-pass-1",
                        "role": "viewer"})
    try:
        data = requests.get(daemon.http + "/api/settings/schema", timeout=10,
                            auth=("schemaviewer", "viewer-pass-1")).json()["data"]
        by = {d["key"]: d for d in data["keys"]}
        assert data["role"] == "viewer" and data["authenticated"] is True
        assert by["pan"]["writable"] is False
        assert by["pan"]["reason"] == "viewer may not change pan"
    finally:
        requests.delete(daemon.http + "/api/users/schemaviewer", auth=admin, timeout=10)
