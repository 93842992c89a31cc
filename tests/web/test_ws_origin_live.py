"""WebSocket upgrades from a foreign Origin with ambient credentials are refused (CSRF), with
the `websockets` client against a running daemon; scripts without an Origin keep working."""

import asyncio
import base64
import concurrent.futures
import json

import pytest
import requests
import websockets

EVIL = "http://evil.example"


def run(coro):
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=60)


def basic(daemon):
    return "Basic " + base64.b64encode(("admin:" + daemon.admin_password).encode()).decode()


async def _open(url, origin=None, headers=None):
    """(status refused with or None, the reply to a write, the reply to a read)."""
    try:
        async with websockets.connect(url, origin=origin, additional_headers=headers or {}) as ws:
            await ws.send(json.dumps({"get": ["brightness"]}))
            read = json.loads(await asyncio.wait_for(ws.recv(), 10))
            await ws.send(json.dumps({"brightness": read["brightness"]}))
            write = json.loads(await asyncio.wait_for(ws.recv(), 10))
            return None, write, read
    except websockets.exceptions.InvalidStatus as e:
        return e.response.status_code, None, None


def login_cookie(daemon):
    r = requests.post(daemon.http + "/api/login", timeout=30,
                      json={"username": "admin", "password": daemon.admin_password})
    return r.cookies["rotordream_session"]


def test_foreign_origin_with_ambient_credentials_is_refused(daemon):
    digest = ('Digest username="admin", realm="RotorDream", nonce="x", uri="/api/v1", '
              'response="0"')
    for headers in ({"Authorization": basic(daemon)},
                    {"Cookie": "rotordream_session=" + login_cookie(daemon)},
                    {"Authorization": digest}):
        status, _, _ = run(_open(daemon.ws, origin=EVIL, headers=headers))
        assert status == 403, headers
    # The null origin (sandboxed frames, file: pages) is refused too (Autobahn says 400).
    assert run(_open(daemon.ws, origin="null",
                     headers={"Authorization": basic(daemon)}))[0] in (400, 403)


def test_scripts_without_origin_and_the_camera_page_keep_working(daemon):
    status, write, _ = run(_open(daemon.ws, headers={"Authorization": basic(daemon)}))
    assert status is None and "info" in write  # admin: the write was accepted
    same = "http://127.0.0.1:%d" % daemon.http_port
    status, write, _ = run(_open(daemon.ws, origin=same,
                                 headers={"Cookie": "rotordream_session=" +
                                          login_cookie(daemon)}))
    assert status is None and "info" in write


def test_a_foreign_page_without_credentials_is_anonymous_and_may_log_in_in_band(daemon):
    status, write, read = run(_open(daemon.ws, origin=EVIL))
    assert status is None and "brightness" in read and write["code"] == "UNAUTHORIZED"

    async def in_band():
        async with websockets.connect(daemon.ws, origin=EVIL) as ws:
            await ws.send(json.dumps({"username": "admin", "password": daemon.admin_password}))
            # Sent before the login's answer: answered after it, as the logged-in admin.
            await ws.send(json.dumps({"get": ["discovery-mode"]}))
            login = json.loads(await asyncio.wait_for(ws.recv(), 30))
            after = json.loads(await asyncio.wait_for(ws.recv(), 30))
            return login, after
    login, after = run(in_band())
    assert login["role"] == "admin" and "discovery-mode" in after


def test_listed_origins_may_bring_credentials(fresh_daemon, tmp_path):
    conf = tmp_path / "origins.toml"
    conf.write_text('[http]\nallowed_origins = ["https://nvr.example"]\n'
                    'cors_origins = ["http://dash.example:8080"]\n')
    d = fresh_daemon(extra=["--config", str(conf)],
                     settings={"resolution": "320x240", "stream2-resolution": "320x180"})
    for origin in ("https://nvr.example", "http://dash.example:8080"):
        status, write, _ = run(_open(d.ws, origin=origin, headers={"Authorization": basic(d)}))
        assert status is None and "info" in write, origin
    assert run(_open(d.ws, origin=EVIL, headers={"Authorization": basic(d)}))[0] == 403


@pytest.mark.parametrize("header", ["Bearer", "token"])
def test_explicit_tokens_are_not_ambient(daemon, header):
    r = requests.post(daemon.http + "/api/login", timeout=30,
                      json={"username": "admin", "password": daemon.admin_password})
    token = r.json()["token"]
    url = daemon.ws + ("?token=" + token if header == "token" else "")
    headers = {"Authorization": "Bearer " + token} if header == "Bearer" else {}
    status, write, _ = run(_open(url, origin=EVIL, headers=headers))
    assert status is None and "info" in write
