"""The REST API against a running daemon with real clients: requests and curl."""

import io
import json
import subprocess

import av
import pytest
import requests

from tests.conftest import require_tool
from tests.support.live import StateWatcher

ADMIN = ("admin", None)
JSON = {"Content-Type": "application/json"}


def admin(daemon):
    return ("admin", daemon.admin_password)


def curl(*args):
    exe = require_tool("curl")
    out = subprocess.run([exe, "-s", "-S", "-w", "\n%{http_code}"] + list(args),
                         capture_output=True, text=True, timeout=30)
    body, _, code = out.stdout.rpartition("\n")
    return int(code), body


def test_reference_test_http_api(daemon):
    # The reference's own example, pointed at the test daemon.
    response = requests.get(daemon.http + '/api/info')
    assert response.status_code == 200
    assert 'version' in response.json()


def test_info_envelope_and_stream_urls(daemon):
    body = requests.get(daemon.http + "/api/info").json()
    assert body["status"] == "success" and isinstance(body["timestamp"], int)
    assert body["data"]["product"] == "RotorDream"
    assert body["data"]["streams"]["stream1"]["url"] == \
        "rtsp://127.0.0.1:%d/stream1" % daemon.rtsp_port


def test_curl_basic_digest_bearer_and_cookie_jar(daemon, tmp_path):
    user, password = admin(daemon)
    code, body = curl("-u", "%s:%s" % (user, password), daemon.http + "/api/settings")
    assert code == 200 and json.loads(body)["data"]["brightness"] in range(101)
    code, body = curl("--digest", "-u", "%s:%s" % (user, password), "-X", "POST",
                      "--json", "55", daemon.http + "/api/settings/contrast")
    assert code == 200, body
    assert json.loads(body)["data"] == {"contrast": 55}
    code, body = curl("--digest", "-u", "%s:wrong-password" % user, daemon.http + "/api/users")
    assert code == 401
    # Token, the reference's automation pattern, as printed there: login -> token -> use it.
    code, body = curl("-s", "-X", "POST", daemon.http + "/api/login",
                      "-d", json.dumps({"username": user, "password": password}))
    assert code == 200
    token = json.loads(body)["token"]
    code, body = curl("-H", "Authorization: Bearer " + token, daemon.http + "/api/users")
    assert code == 200 and "admin" in body
    # Cookie jar: the session cookie authenticates; writes need the CSRF token.
    jar = str(tmp_path / "jar")
    code, body = curl("-c", jar, "--json", json.dumps({"username": user, "password": password}),
                      daemon.http + "/api/login")
    csrf = json.loads(body)["data"]["csrf_token"]
    jar_text = open(jar).read()
    assert "rotordream_session" in jar_text and "#HttpOnly_" in jar_text
    code, body = curl("-b", jar, daemon.http + "/api/users/admin/permissions")
    assert code == 200 and "users.admin" in body
    code, _ = curl("-b", jar, "--json", "60", daemon.http + "/api/settings/contrast")
    assert code == 403  # no CSRF token
    code, _ = curl("-b", jar, "-H", "X-CSRF-Token: " + csrf, "--json", "50",
                   daemon.http + "/api/settings/contrast")
    assert code == 200
    # Logout revokes the token.
    code, _ = curl("-X", "POST", "-H", "Authorization: Bearer " + token,
                   daemon.http + "/api/logout")
    assert code == 200
    code, _ = curl("-H", "Authorization: Bearer " + token, daemon.http + "/api/users")
    assert code == 401


def test_401_offers_digest_and_basic(daemon):
    r = requests.post(daemon.http + "/api/settings", json={"brightness": 10})
    assert r.status_code == 401
    offers = r.headers["WWW-Authenticate"]
    assert "Digest" in offers and "SHA-256" in offers and "MD5" in offers and "Basic" in offers
    assert r.json()["code"] == "UNAUTHORIZED" and r.json()["status"] == "error"
    # A page's script marks its requests: no challenge, so no browser password dialog.
    r = requests.post(daemon.http + "/api/settings", json={"brightness": 10},
                      headers={"X-Requested-With": "XMLHttpRequest"})
    assert r.status_code == 401 and "WWW-Authenticate" not in r.headers
    assert r.json()["code"] == "UNAUTHORIZED"


def test_roles_viewer_and_operator(daemon):
    auth = admin(daemon)
    for name, role in (("viewer1", "viewer"), ("operator1", "operator")):
        r = requests.post(daemon.http + "/api/users", auth=auth,
                          json={"username": name, "password": "password-" + name, "role": role})
        assert r.status_code in (201, 409), r.text
    viewer = ("viewer1", "password-viewer1")
    operator = ("operator1", "password-operator1")
    r = requests.post(daemon.http + "/api/settings", auth=viewer, json={"brightness": 40})
    assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN"
    assert requests.get(daemon.http + "/api/settings", auth=viewer).status_code == 200
    r = requests.post(daemon.http + "/api/settings", auth=operator,
                      json={"brightness": 40, "contrast": 50})
    assert r.status_code == 200 and r.json()["data"] == {"brightness": 40, "contrast": 50}
    assert requests.get(daemon.http + "/api/users", auth=operator).status_code == 403
    r = requests.post(daemon.http + "/api/users", auth=operator,
                      json={"username": "x1", "password": "password-x", "role": "admin"})
    assert r.status_code == 403
    # The last admin can be neither deleted nor demoted.
    r = requests.delete(daemon.http + "/api/users/admin", auth=auth)
    assert r.status_code == 409 and r.json()["code"] == "CONFLICT"
    r = requests.put(daemon.http + "/api/users/admin", auth=auth, json={"role": "viewer"})
    assert r.status_code == 409
    requests.post(daemon.http + "/api/settings", auth=auth, json={"brightness": 50})


def test_settings_errors_name_key_and_range_and_change_nothing(daemon):
    auth = admin(daemon)
    before = requests.get(daemon.http + "/api/settings/saturation").json()["data"]
    r = requests.post(daemon.http + "/api/settings", auth=auth,
                      json={"saturation": 10, "brightness": 500})
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "INVALID_VALUE" and body["key"] == "brightness"
    assert body["allowed"] == {"min": 0, "max": 100}
    assert requests.get(daemon.http + "/api/settings/saturation").json()["data"] == before
    for payload, code in ((b"{not json", "BAD_REQUEST"), (b"[1, 2]", "BAD_REQUEST"),
                          (b'{"nope": 1}', "BAD_REQUEST"), (b'{"brightness": "x"}',
                                                           "BAD_REQUEST")):
        r = requests.post(daemon.http + "/api/settings", auth=auth, data=payload,
                          headers=JSON)
        assert r.status_code == 400 and r.json()["code"] == code, (payload, r.text)
    # A bare value, as in the reference's performance tips.
    r = requests.post(daemon.http + "/api/settings/brightness", auth=auth, data="75",
                      headers=JSON)
    assert r.status_code == 200 and r.json()["data"] == {"brightness": 75}
    requests.post(daemon.http + "/api/settings/brightness", auth=auth, data="50", headers=JSON)


def test_not_found_method_not_allowed_and_too_large(daemon):
    r = requests.get(daemon.http + "/api/nothing/here")
    assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"
    r = requests.delete(daemon.http + "/api/info")
    assert r.status_code == 405 and r.headers["Allow"] == "GET"
    r = requests.post(daemon.http + "/api/settings", auth=admin(daemon),
                      data=b"x" * (2 * 1024 * 1024))
    assert r.status_code == 413 and r.json()["code"] == "PAYLOAD_TOO_LARGE"


@pytest.mark.parametrize("path", ["/api/users/..%2f..%2fetc%2fpasswd", "/api/users/a%00b",
                                  "/api/settings/..%2fstate.json", "/api/users/%0d%0aX-Evil:1",
                                  "/api/" + "a" * 8000])
def test_hostile_paths_are_clean_4xx(daemon, path):
    r = requests.get(daemon.http + path, auth=admin(daemon))
    assert 400 <= r.status_code < 500
    assert "X-Evil" not in r.headers
    if r.headers.get("content-type", "").startswith("application/json"):
        assert r.json()["status"] == "error"


def test_header_injection_in_user_names_is_refused(daemon):
    r = requests.post(daemon.http + "/api/users", auth=admin(daemon),
                      json={"username": "bad\r\nX-Evil: 1", "password": "password-1",
                            "role": "viewer"})
    assert r.status_code == 400


def test_snapshot_is_a_full_size_jpeg(daemon):
    r = requests.get(daemon.http + "/api/snapshot?quality=50")
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/jpeg"
    with av.open(io.BytesIO(r.content)) as c:
        frame = next(c.decode(video=0))
    assert (frame.width, frame.height) == (1280, 720)
    r = requests.get(daemon.http + "/api/snapshot?quality=500")
    assert r.status_code == 400 and r.json()["key"] == "quality"


def test_status_streams_camera(daemon):
    auth = admin(daemon)
    status = requests.get(daemon.http + "/api/status", auth=auth).json()["data"]
    assert status["uptime"] > 0 and status["memory"]["rss"] > 0 and status["disk"]["free"] > 0
    assert status["camera"]["captured"] > 0
    streams = requests.get(daemon.http + "/api/streams", auth=auth).json()["data"]["streams"]
    assert [(s["name"], s["width"], s["height"]) for s in streams] == \
        [("stream1", 1280, 720), ("stream2", 640, 360)]
    camera = requests.get(daemon.http + "/api/camera/status", auth=auth).json()["data"]
    assert camera["connected"] is True and camera["cam1-exists"] is True


def test_openapi_documents_every_route_and_each_answers(daemon):
    doc = requests.get(daemon.http + "/api/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    auth = admin(daemon)
    # A short recording so that /api/recordings/{id} has something to name.
    with StateWatcher(daemon) as watch:
        r = requests.post(daemon.http + "/api/recording/start", json={"duration": 1}, auth=auth)
        assert r.status_code == 200, r.text
        watch.wait("record", True)
        watch.wait("record", False)
    requests.post(daemon.http + "/api/recording/stop", auth=auth)  # answers once it is closed
    listed = requests.get(daemon.http + "/api/recordings", auth=auth).json()["data"]
    done = [e for e in listed["recordings"] if not e["recording"]]
    rid = done[0]["id"]
    for path, ops in doc["paths"].items():
        concrete = path.replace("{key}", "brightness").replace("{name}", "admin")
        concrete = concrete.replace("{id}", rid)
        for method in ops:
            if method == "get":
                r = requests.get(daemon.http + concrete, auth=auth)
                assert r.status_code == 200, (path, r.text)
            else:
                r = requests.options(daemon.http + concrete, auth=auth)
                # WHEP answers OPTIONS itself (the draft's CORS and Accept-Post); every
                # other write route refuses it and names what it allows.
                expected = (200, 204) if "/api/webrtc/whep" in path else (405,)
                assert r.status_code in expected and method.upper() in r.headers["Allow"], path


def test_rate_limit_429_at_request_101_and_login_lockout(fresh_daemon):
    d = fresh_daemon(settings={"resolution": "320x240", "stream2-resolution": "320x180"})
    s = requests.Session()
    codes = [s.get(d.http + "/api/info").status_code for _ in range(101)]
    assert codes[:100] == [200] * 100 and codes[100] == 429
    r = s.get(d.http + "/api/info")
    body = r.json()
    assert body["error"] == "Rate limit exceeded" and body["limit"] == 100
    assert body["period"] == "minute" and 0 < body["retry_after"] <= 60
    assert int(r.headers["Retry-After"]) == body["retry_after"]


def test_login_lockout_after_five_failures(fresh_daemon):
    d = fresh_daemon(settings={"resolution": "320x240", "stream2-resolution": "320x180"})
    bad = {"username": "admin", "password": "not-the-password"}
    codes = [requests.post(d.http + "/api/login", json=bad).status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]
    good = {"username": "admin", "password": d.admin_password}
    r = requests.post(d.http + "/api/login", json=good)
    assert r.status_code == 429 and r.json()["code"] == "RATE_LIMITED"
    assert int(r.headers["Retry-After"]) > 0


def test_cors_is_off_by_default_and_follows_the_config(daemon, fresh_daemon, tmp_path):
    r = requests.get(daemon.http + "/api/info", headers={"Origin": "https://dash.example"})
    assert "Access-Control-Allow-Origin" not in r.headers
    conf = tmp_path / "cors.toml"
    conf.write_text('[http]\ncors_origins = ["https://dash.example"]\n')
    d = fresh_daemon(extra=["--config", str(conf)],
                     settings={"resolution": "320x240", "stream2-resolution": "320x180"})
    r = requests.get(d.http + "/api/info", headers={"Origin": "https://dash.example"})
    assert r.headers["Access-Control-Allow-Origin"] == "https://dash.example"
    r = requests.options(d.http + "/api/settings", headers={
        "Origin": "https://dash.example", "Access-Control-Request-Method": "POST"})
    assert r.status_code == 204 and "POST" in r.headers["Access-Control-Allow-Methods"]
    r = requests.get(d.http + "/api/info", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers


def test_deeply_nested_json_is_a_400_not_a_500(daemon):
    # 30,000 deep fits in [http] max_body (64 KiB) and is still far past the parser's depth.
    r = requests.post(daemon.http + "/api/settings", auth=admin(daemon), headers=JSON,
                      data="[" * 30000 + "]" * 30000)
    assert r.status_code == 400 and r.json()["code"] == "BAD_REQUEST"


def rtsp_setup(daemon, source="127.0.0.2"):
    """An RTSP session (SETUP over TCP from ``source``), its socket and its id."""
    import socket
    s = socket.socket()
    s.settimeout(10)
    s.bind((source, 0))
    s.connect(("127.0.0.1", daemon.rtsp_port))
    s.sendall(("SETUP %s/trackID=0 RTSP/1.0\r\nCSeq: 1\r\n"
               "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
               % daemon.rtsp("stream1")).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    assert head.startswith(b"RTSP/1.0 200"), head
    session = [line.split(b":", 1)[1].split(b";")[0].strip().decode()
               for line in head.split(b"\r\n") if line.lower().startswith(b"session:")][0]
    return s, session


def test_status_shows_session_ids_and_addresses_to_operators_only(daemon):
    auth = admin(daemon)
    r = requests.post(daemon.http + "/api/users", auth=auth, json={
        "username": "statusop", "password": "password-statusop", "role": "operator"})
    assert r.status_code in (201, 409), r.text
    r = requests.post(daemon.http + "/api/users", auth=auth, json={
        "username": "statusview", "password": "password-statusview", "role": "viewer"})
    assert r.status_code in (201, 409), r.text
    sock, session = rtsp_setup(daemon)
    try:
        for who in (None, ("statusview", "password-statusview")):
            r = requests.get(daemon.http + "/api/status", auth=who)
            assert r.status_code == 200
            assert session not in r.text and "127.0.0.2" not in r.text, who
            clients = r.json()["data"]["clients"]
            assert clients["rtsp"] >= 1
            assert clients["rtsp_sessions"] and all(
                set(s) == {"stream", "state", "transport"} for s in clients["rtsp_sessions"])
        for who in (auth, ("statusop", "password-statusop")):
            r = requests.get(daemon.http + "/api/status", auth=who)
            mine = [s for s in r.json()["data"]["clients"]["rtsp_sessions"]
                    if s.get("session") == session]
            assert mine and mine[0]["client"] == "127.0.0.2", r.text
    finally:
        sock.close()
