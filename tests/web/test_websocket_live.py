"""The control WebSocket against a running daemon, with the `websockets` client."""

import asyncio
import concurrent.futures
import json

import pytest
import requests
import websockets


def run(coro):
    """Run a websockets coroutine to completion in a thread with its own event loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=60)


async def recv_json(ws, timeout=5):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_until(ws, predicate, timeout=5):
    """The first message satisfying ``predicate`` (others, e.g. motor positions, skipped)."""
    async def loop():
        while True:
            msg = json.loads(await ws.recv())
            if predicate(msg):
                return msg
    return await asyncio.wait_for(loop(), timeout)


def login_token(daemon):
    r = requests.post(daemon.http + "/api/login",
                      json={"username": "admin", "password": daemon.admin_password})
    return r.json()["token"], r.cookies["rotordream_session"]


def test_reference_test_websocket_api(daemon):
    async def test_websocket_api():
        async with websockets.connect(daemon.ws) as ws:
            await ws.send('{"get": ["brightness"]}')
            response = await ws.recv()
            assert 'brightness' in response
    run(test_websocket_api())


def test_anonymous_reads_but_cannot_write(daemon):
    async def go():
        async with websockets.connect(daemon.ws) as ws:
            await ws.send(json.dumps({"get": "*"}))
            everything = await recv_json(ws)
            assert "brightness" in everything and "resolution" in everything
            assert "discovery-mode" not in everything  # admins only
            await ws.send(json.dumps({"brightness": 75}))
            reply = await recv_json(ws)
            assert reply == {"error": "log in to write brightness", "key": "brightness",
                             "code": "UNAUTHORIZED"}
    run(go())


def test_login_in_band_by_token_and_by_cookie_then_write(daemon):
    token, cookie = login_token(daemon)

    async def go():
        async with websockets.connect(daemon.ws) as ws:
            await ws.send(json.dumps({"username": "admin", "password": daemon.admin_password}))
            reply = await recv_json(ws)
            assert reply["authenticated"] is True and reply["role"] == "admin"
            await ws.send(json.dumps({"brightness": 61, "contrast": 49}))
            assert await recv_json(ws) == {"brightness": 61, "contrast": 49,
                                           "info": ["brightness", "contrast"]}
        async with websockets.connect(daemon.ws + "?token=" + token) as ws:
            await ws.send(json.dumps({"brightness": 50}))
            assert (await recv_json(ws))["brightness"] == 50
        async with websockets.connect(daemon.ws) as ws:
            await ws.send(json.dumps({"token": token}))
            assert (await recv_json(ws))["user"] == "admin"
        async with websockets.connect(
                daemon.ws, additional_headers={"Cookie": "rotordream_session=" + cookie}) as ws:
            await ws.send(json.dumps({"contrast": 50}))
            assert (await recv_json(ws))["contrast"] == 50
        async with websockets.connect(daemon.ws) as ws:
            await ws.send(json.dumps({"username": "admin", "password": "wrong"}))
            assert (await recv_json(ws))["code"] == "UNAUTHORIZED"
        with pytest.raises(websockets.exceptions.InvalidStatus) as e:
            async with websockets.connect(daemon.ws + "?token=forged"):
                pass
        assert e.value.response.status_code == 401
    run(go())


def test_changes_reach_other_clients_from_websocket_and_rest(daemon):
    token, _ = login_token(daemon)

    async def go():
        async with websockets.connect(daemon.ws + "?token=" + token) as writer, \
                websockets.connect(daemon.ws) as reader:
            await writer.send(json.dumps({"saturation": 33}))
            assert (await recv_json(writer))["saturation"] == 33
            got = await recv_until(reader, lambda m: "saturation" in m)
            assert got == {"saturation": 33}
            r = requests.post(daemon.http + "/api/settings/saturation", data="50",
                              headers={"Authorization": "Bearer " + token,
                                       "Content-Type": "application/json"})
            assert r.status_code == 200
            assert await recv_until(reader, lambda m: "saturation" in m) == {"saturation": 50}
            assert await recv_until(writer, lambda m: "saturation" in m) == {"saturation": 50}
    run(go())


def test_viewer_never_receives_admin_only_keys(daemon):
    token, _ = login_token(daemon)
    requests.post(daemon.http + "/api/users", headers={"Authorization": "Bearer " + token},
                  json={"username": "wsviewer", "password": "wsviewer-pass", "role": "viewer"})

    async def go():
        async with websockets.connect(daemon.ws + "?token=" + token) as admin, \
                websockets.connect(daemon.ws) as viewer:
            await viewer.send(json.dumps({"username": "wsviewer", "password": "wsviewer-pass"}))
            assert (await recv_json(viewer))["role"] == "viewer"
            await admin.send(json.dumps({"discovery-mode": "non-discoverable"}))
            await recv_json(admin)
            await admin.send(json.dumps({"discovery-mode": "discoverable", "brightness": 52}))
            await recv_json(admin)
            # The viewer sees the brightness part of the batch, never discovery-mode.
            msg = await recv_until(viewer, lambda m: "brightness" in m or "discovery-mode" in m)
            assert msg == {"brightness": 52}
            await viewer.send(json.dumps({"get": ["discovery-mode"]}))
            assert (await recv_json(viewer))["code"] == "FORBIDDEN"
            await admin.send(json.dumps({"brightness": 50}))
    run(go())


BAD_INPUTS = [
    ("{not json", "BAD_REQUEST", None),
    ("[1, 2, 3]", "BAD_REQUEST", None),
    ('"just a string"', "BAD_REQUEST", None),
    ('{"no-such-key": 1}', "UNKNOWN_KEY", "no-such-key"),
    ('{"brightness": "bright"}', "BAD_REQUEST", "brightness"),
    ('{"brightness": 101}', "INVALID_VALUE", "brightness"),
    ('{"cam1-exists": true}', "FORBIDDEN", "cam1-exists"),
    ('{"get": 5}', "BAD_REQUEST", "get"),
    (b"\x00\x01binary", "BAD_REQUEST", None),
    ("[" * 5000 + "]" * 5000, "BAD_REQUEST", None),  # nesting deeper than the JSON decoder's
]


def test_every_bad_input_gets_an_error_and_the_connection_stays_usable(daemon):
    token, _ = login_token(daemon)

    async def go():
        async with websockets.connect(daemon.ws + "?token=" + token) as ws:
            for payload, code, key in BAD_INPUTS:
                await ws.send(payload)
                reply = await recv_until(ws, lambda m: "error" in m)
                assert reply["code"] == code and reply["key"] == key, (payload, reply)
            # Nothing changed on the partial batch:
            await ws.send(json.dumps({"brightness": 5, "contrast": 500}))
            assert (await recv_until(ws, lambda m: "error" in m))["key"] == "contrast"
            await ws.send(json.dumps({"get": ["brightness"]}))
            assert (await recv_until(ws, lambda m: "brightness" in m)) == {"brightness": 50}
    run(go())


def test_rate_limit_errors_then_close_1008(fresh_daemon):
    d = fresh_daemon(settings={"resolution": "320x240", "stream2-resolution": "320x180"})

    async def go():
        async with websockets.connect(d.ws) as ws:
            for _ in range(150):
                await ws.send('{"get": ["brightness"]}')
            answer = lambda m: "brightness" in m or m.get("code") == "RATE_LIMITED"
            replies = [await recv_until(ws, answer) for _ in range(150)]
            ok = [r for r in replies if "brightness" in r]
            limited = [r for r in replies if r.get("code") == "RATE_LIMITED"]
            # All 150 were sent within one second: 100 answered, 50 refused, still open.
            assert len(ok) == 100 and len(limited) == 50
            await ws.send('{"get": ["contrast"]}')
            reply = await recv_json(ws)
            assert "contrast" in reply or reply.get("code") == "RATE_LIMITED"

    async def flood():
        async with websockets.connect(d.ws) as ws:
            for _ in range(400):
                await ws.send('{"get": ["brightness"]}')
            with pytest.raises(websockets.exceptions.ConnectionClosed) as e:
                while True:
                    await recv_json(ws)
            return e.value.rcvd.code

    run(go())
    assert run(flood()) == 1008


def test_a_client_that_stops_reading_is_dropped_and_others_keep_receiving(fresh_daemon, tmp_path):
    conf = tmp_path / "small.toml"
    conf.write_text("[websocket]\nsend_buffer = 65536\nrate_limit = 0\n[http]\nrate_limit = 0\n")
    d = fresh_daemon(extra=["--config", str(conf)],
                     settings={"resolution": "320x240", "stream2-resolution": "320x180"})
    token, _ = login_token(d)

    async def go():
        # The stalled client: a plain socket that upgrades and then never reads again.
        import socket
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.settimeout(10)
        stalled.connect(("127.0.0.1", d.http_port))
        stalled.sendall(("GET /api/v1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += stalled.recv(1)
        assert b" 101 " in head.split(b"\r\n")[0]
        async with websockets.connect(d.ws + "?token=" + token) as w, \
                websockets.connect(d.ws) as other:
            last_seen = {}

            async def keep_reading():
                async for raw in other:
                    last_seen.update(json.loads(raw))
                    if last_seen.get("device-name", "").endswith("999"):
                        return

            reading = asyncio.ensure_future(keep_reading())
            name = "x" * 60
            image = ["brightness", "contrast", "saturation", "sharpness", "gain", "red-gain",
                     "blue-gain"]
            for i in range(1000):
                batch = {k: (i + n) % 100 for n, k in enumerate(image)}
                batch["device-location"] = "%s%03d" % (name, i)
                batch["device-name"] = "%s%03d" % (name, i)
                await w.send(json.dumps(batch))
                await recv_json(w)
            await w.send(json.dumps({k: 50 for k in image} | {"gain": 0, "red-gain": 50}))
            await recv_json(w)
            # The reading client got every change.
            await asyncio.wait_for(reading, 10)
            assert last_seen["device-name"].endswith("999")
        # The server cut the stalled client off: its socket reaches EOF or is reset.
        try:
            while stalled.recv(65536):
                pass
        except ConnectionError:
            pass
        stalled.close()
        return requests.get(d.http + "/api/status",
                            headers={"Authorization": "Bearer " + token}).json()["data"]

    status = run(go())
    assert status["clients"]["websocket_dropped"] == 1


def test_oversized_messages_close_1009_and_dead_peers_are_reaped(fresh_daemon, tmp_path):
    conf = tmp_path / "ping.toml"
    conf.write_text("[websocket]\nping_interval = 1\nmax_message = 4096\n")
    d = fresh_daemon(extra=["--config", str(conf)],
                     settings={"resolution": "320x240", "stream2-resolution": "320x180"})

    async def oversized():
        async with websockets.connect(d.ws, max_size=None) as ws:
            await ws.send(json.dumps({"device-name": "x" * 10000}))
            with pytest.raises(websockets.exceptions.ConnectionClosed) as e:
                while True:  # broadcasts may come first
                    await recv_json(ws)
        # Autobahn fails the connection (1009 when its close frame gets out first).
        code = e.value.rcvd.code if e.value.rcvd else None
        async with websockets.connect(d.ws) as ws:  # and goes on serving everyone else
            await ws.send(json.dumps({"get": ["brightness"]}))
            answer = await recv_until(ws, lambda m: "brightness" in m)
        return code, answer

    code, answer = run(oversized())
    assert code in (1009, None) and answer == {"brightness": 50}

    async def silent_peer():
        # A client that never answers pings: the server must close it on its own.
        import socket
        s = socket.create_connection(("127.0.0.1", d.http_port), timeout=15)
        s.sendall(b"GET /api/v1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 13\r\n\r\n")
        data = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionError:
            pass
        s.close()
        return data

    data = run(silent_peer())
    assert b" 101 " in data.split(b"\r\n")[0]
    assert b"\x89" in data  # the server pinged before giving up


def test_motor_keys_move_the_simulated_motors_and_positions_are_broadcast(daemon):
    token, _ = login_token(daemon)

    async def go():
        async with websockets.connect(daemon.ws + "?token=" + token) as ws, \
                websockets.connect(daemon.ws) as watcher:
            await ws.send(json.dumps({"pan": 20.0, "tilt": 5.0, "rotor-enabled": True}))
            assert (await recv_until(ws, lambda m: "info" in m))["pan"] == 20.0
            await recv_until(watcher, lambda m: m.get("pan-position") == 20.0, timeout=15)
            await recv_until(watcher, lambda m: m.get("rotor-rpm", 0) > 0, timeout=15)
            await ws.send(json.dumps({"pan": 0.0, "tilt": 0.0, "rotor-enabled": False}))
            await recv_until(watcher, lambda m: m.get("pan-position") == 0.0, timeout=15)
    run(go())


def test_upgrades_abandoned_during_their_password_check_leave_no_client(fresh_daemon):
    import base64
    import socket
    import struct
    d = fresh_daemon(settings={"resolution": "320x240", "stream2-resolution": "320x180"})
    basic = "Basic " + base64.b64encode(("admin:" + d.admin_password).encode()).decode()
    upgrade = ("GET /api/v1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
               "Authorization: %s\r\n\r\n" % basic).encode()
    for _ in range(10):
        s = socket.create_connection(("127.0.0.1", d.http_port))
        s.sendall(upgrade)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # gone (reset) while the password is checked in the pool

    async def go():
        # The same credentials: answered once the abandoned checks are done.
        async with websockets.connect(d.ws, additional_headers={"Authorization": basic}) as ws:
            await ws.send(json.dumps({"get": ["brightness"]}))
            await recv_json(ws, 30)
            r = requests.get(d.http + "/api/status", headers={"Authorization": basic},
                             timeout=30)
            return r.json()["data"]["clients"]["websocket"]
    assert run(go()) == 1
