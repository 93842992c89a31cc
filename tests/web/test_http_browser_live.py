"""CSRF with browser-saved credentials, against a real daemon with curl: a foreign Origin
may not change state (403), JSON endpoints take JSON only (415); scripts keep working."""

import json

from tests.web.test_rest_live import admin, curl

SMALL = {"resolution": "320x240", "stream2-resolution": "320x180"}


def brightness(daemon):
    code, body = curl(daemon.http + "/api/settings/brightness")
    assert code == 200
    return json.loads(body)["data"]["brightness"]


def test_a_foreign_page_cannot_change_settings_with_saved_basic_credentials(daemon):
    before = brightness(daemon)
    user = "%s:%s" % admin(daemon)
    for origin_header in ("Origin: http://evil.example", "Referer: http://evil.example/x.html",
                          "Origin: null"):
        code, body = curl("-u", user, "-X", "POST", "-H", origin_header,
                          "-H", "Content-Type: text/plain", "-d", '{"brightness": 3}',
                          daemon.http + "/api/settings")
        assert code == 403, (origin_header, body)
        assert json.loads(body)["code"] == "FORBIDDEN"
        # JSON does not help a foreign page either.
        code, _ = curl("-u", user, "-X", "POST", "-H", origin_header,
                       "-H", "Content-Type: application/json", "-d", '{"brightness": 3}',
                       daemon.http + "/api/settings")
        assert code == 403
    assert brightness(daemon) == before


def test_json_endpoints_refuse_other_media_types(daemon):
    before = brightness(daemon)
    user = "%s:%s" % admin(daemon)
    for ctype in ("text/plain", "multipart/form-data; boundary=x", "application/xml"):
        code, body = curl("-u", user, "-X", "POST", "-H", "Content-Type: " + ctype,
                          "-d", '{"brightness": 4}', daemon.http + "/api/settings")
        assert code == 415, (ctype, body)
        assert json.loads(body)["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert brightness(daemon) == before
    # Login too: a form posted from another site cannot log a browser in (login CSRF).
    code, body = curl("-X", "POST", "-H", "Origin: http://evil.example",
                      "-d", json.dumps({"username": "admin", "password": daemon.admin_password}),
                      daemon.http + "/api/login")
    assert code == 403
    # `curl -d` alone (form-urlencoded, no Origin): the API reference's login example.
    code, body = curl("-X", "POST", "-d", json.dumps({"username": "admin",
                                                      "password": daemon.admin_password}),
                      daemon.http + "/api/login")
    assert code == 200 and json.loads(body)["token"]


def test_scripts_and_the_cameras_own_page_keep_working(daemon):
    user = "%s:%s" % admin(daemon)
    before = brightness(daemon)
    try:
        # curl without an Origin, the JSON type given (or curl --json).
        code, body = curl("-u", user, "-X", "POST", "-H", "Content-Type: application/json",
                          "-d", '{"brightness": 61}', daemon.http + "/api/settings")
        assert code == 200, body
        code, body = curl("-u", user, "--json", "62", daemon.http + "/api/settings/brightness")
        assert code == 200, body
        # The camera's own page (same origin), even posting JSON as text/plain as the
        # API reference's browser code does.
        own = "Origin: http://127.0.0.1:%d" % daemon.http_port
        code, body = curl("-u", user, "-X", "POST", "-H", own,
                          "-H", "Content-Type: text/plain;charset=UTF-8",
                          "-d", '{"brightness": 63}', daemon.http + "/api/settings")
        assert code == 200, body
        assert brightness(daemon) == 63
        # Requests without a body need no content type.
        code, body = curl("-u", user, "-X", "POST", daemon.http + "/api/logout")
        assert code == 200, body
    finally:
        curl("-u", user, "--json", json.dumps({"brightness": before}),
             daemon.http + "/api/settings")


def test_listed_origins_may_write(fresh_daemon, tmp_path):
    conf = tmp_path / "origins.toml"
    conf.write_text('[http]\nallowed_origins = ["https://nvr.example"]\n')
    d = fresh_daemon(extra=["--config", str(conf)], settings=SMALL)
    user = "%s:%s" % admin(d)
    code, body = curl("-u", user, "-H", "Origin: https://nvr.example", "--json",
                      '{"brightness": 20}', d.http + "/api/settings")
    assert code == 200, body
    code, _ = curl("-u", user, "-H", "Origin: https://other.example", "--json",
                   '{"brightness": 21}', d.http + "/api/settings")
    assert code == 403
