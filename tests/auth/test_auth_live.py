"""Authentication against running daemons, with raw sockets and real clients: hashing never
stalls the event loop, a guesser locks out only itself, Digest and WS-Security do not replay
(across targets or restarts), and a copy of the state directory reveals no password."""

import asyncio
import base64
import concurrent.futures
import http.client
import json
import re
import shutil
import socket
import statistics
import threading
import time

import pytest
import requests
import websockets

from tests.support.auth import digest_value, reveals_password
from tests.support.soapkit import NS, created_now, envelope, security

SMALL = {"resolution": "320x240", "stream2-resolution": "320x180"}


def run(coro):
    """Run a websockets coroutine in a thread with its own event loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=120)


class HealthProbe:
    """Times GET /api/health on its own connection every 20 ms until stopped."""

    def __init__(self, daemon):
        self.daemon = daemon
        self.latencies = []
        self.statuses = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.daemon.http_port, timeout=30)
        while not self._stop.is_set():
            start = time.monotonic()
            conn.request("GET", "/api/health")
            response = conn.getresponse()
            response.read()
            self.statuses.add(response.status)
            self.latencies.append(time.monotonic() - start)
            self._stop.wait(0.02)
        conn.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(30)


def connect(daemon, port=None, source="127.0.0.1"):
    sock = socket.create_connection(("127.0.0.1", port or daemon.http_port), timeout=60,
                                    source_address=(source, 0))
    return sock


def read_responses(sock, count, marker):
    """Read until ``count`` status lines starting with ``marker`` arrived; their codes."""
    data = b""
    while data.count(marker) < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    # Bodies need not end in CRLF: the next status line may follow one directly.
    return [int(code) for code in re.findall(re.escape(marker) + rb"(\d{3}) ", data)]


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


# -- item 4: hashing off the event loop ----------------------------------------------

def test_pipelined_basic_requests_never_stall_health(fresh_daemon, tmp_path):
    conf = tmp_path / "http.toml"
    conf.write_text("[http]\nrate_limit = 0\n")  # 400 requests from one address here
    d = fresh_daemon(extra=["--config", str(conf)], settings=SMALL)
    auth = basic("admin", d.admin_password)
    rtsp = connect(d, d.rtsp_port)
    http_sock = connect(d)
    with HealthProbe(d) as probe:
        rtsp.sendall(b"".join(
            b"DESCRIBE %s RTSP/1.0\r\nCSeq: %d\r\nAccept: application/sdp\r\n"
            b"Authorization: %s\r\n\r\n" % (d.rtsp().encode(), n + 1, auth.encode())
            for n in range(200)))
        http_sock.sendall(b"".join(
            b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: %s\r\n\r\n"
            % auth.encode() for _ in range(200)))
        rtsp_codes = read_responses(rtsp, 200, b"RTSP/1.0 ")
        http_codes = read_responses(http_sock, 200, b"HTTP/1.1 ")
    rtsp.close()
    http_sock.close()
    assert rtsp_codes == [200] * 200 and http_codes == [200] * 200
    assert probe.statuses == {200}
    # Before: 200 scrypt checks on the reactor, ~40 ms each, twice; health waited seconds.
    assert probe.latencies and max(probe.latencies) < 1.0, max(probe.latencies)
    assert statistics.median(probe.latencies) < 0.1


def test_many_wrong_passwords_at_once_are_bounded_and_health_stays_fast(fresh_daemon,
                                                                        tmp_path):
    conf = tmp_path / "open.toml"
    conf.write_text("[http]\nrate_limit = 0\n[auth]\nlogin_failures = 100000\n"
                    "attempts_per_address = 0\n")
    d = fresh_daemon(extra=["--config", str(conf)], settings=SMALL)
    socks = [connect(d) for _ in range(40)]
    with HealthProbe(d) as probe:
        for i, sock in enumerate(socks):
            sock.sendall(b"".join(
                b"GET /api/status HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n"
                % basic("user%d" % i, "guess-%d-%d" % (i, n)).encode() for n in range(5)))
        codes = [c for sock in socks for c in read_responses(sock, 5, b"HTTP/1.1 ")]
    for sock in socks:
        sock.close()
    assert len(codes) == 200 and set(codes) <= {401, 429}
    assert 429 in codes  # 40 at once: more than hash_threads + hash_queue; refused, not queued
    assert probe.statuses == {200}
    assert max(probe.latencies) < 1.0, max(probe.latencies)


# -- item 5: a guesser locks out only itself -------------------------------------------

def _post_json(daemon, path, body, source):
    conn = http.client.HTTPConnection("127.0.0.1", daemon.http_port, timeout=30,
                                      source_address=(source, 0))
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def test_a_guesser_at_another_address_does_not_lock_the_admin_out(fresh_daemon):
    d = fresh_daemon(settings=SMALL)
    wrong = {"username": "admin", "password": "not-the-password"}
    right = {"username": "admin", "password": d.admin_password}
    codes = [_post_json(d, "/api/login", wrong, "127.0.0.2")[0] for _ in range(6)]
    assert codes == [401] * 5 + [429]
    assert _post_json(d, "/api/login", right, "127.0.0.2")[0] == 429
    # The admin from 127.0.0.1: REST, WebSocket in-band, ONVIF WS-Security, RTSP.
    assert _post_json(d, "/api/login", right, "127.0.0.1")[0] == 200

    async def in_band():
        async with websockets.connect(d.ws) as ws:
            await ws.send(json.dumps(right))
            return json.loads(await asyncio.wait_for(ws.recv(), 30))
    assert run(in_band())["role"] == "admin"
    r = requests.post(d.http + "/onvif/device_service", timeout=30, data=envelope(
        "<tds:GetDeviceInformation/>", security("admin", d.admin_password)))
    assert r.status_code == 200
    rtsp = connect(d, d.rtsp_port)
    rtsp.sendall(b"DESCRIBE %s RTSP/1.0\r\nCSeq: 1\r\nAuthorization: %s\r\n\r\n"
                 % (d.rtsp().encode(), basic("admin", d.admin_password).encode()))
    assert read_responses(rtsp, 1, b"RTSP/1.0 ") == [200]
    rtsp.close()
    # The guesser is still locked, on every protocol: WebSocket in-band from 127.0.0.2.

    async def guesser():
        sock = connect(d, source="127.0.0.2")
        async with websockets.connect(d.ws, sock=sock) as ws:
            await ws.send(json.dumps(right))
            return json.loads(await asyncio.wait_for(ws.recv(), 30))
    reply = run(guesser())
    assert reply["code"] == "RATE_LIMITED" and reply["retry_after"] > 0


def test_failed_login_log_lines_are_bounded(fresh_daemon):
    d = fresh_daemon(settings=SMALL)
    name = "evil\ninjected line " + "A" * 50000

    async def go():
        async with websockets.connect(d.ws, max_size=None) as ws:
            await ws.send(json.dumps({"username": name, "password": "whatever-1"}))
            return json.loads(await asyncio.wait_for(ws.recv(), 30))
    assert run(go())["code"] == "UNAUTHORIZED"
    assert d.wait_output(lambda out: any("failed login" in l for l in out), 30)
    lines = [l for l in d.output if "failed login" in l or "injected line" in l]
    assert lines and all(len(l) < 400 for l in lines), [l[:200] for l in lines]
    assert not any(l.startswith("injected line") for l in d.output)


# -- item 6: Digest and WS-Security bound to their target and to this run ---------------

def _challenge(daemon, path="/api/users"):
    r = requests.get(daemon.http + path, timeout=30)
    assert r.status_code == 401
    offer = next(c for c in r.raw.headers.getlist("www-authenticate") if "SHA-256" in c)
    from requests.utils import parse_dict_header
    return parse_dict_header(offer[len("Digest "):])["nonce"]


def test_a_digest_response_for_one_uri_is_refused_on_another(fresh_daemon):
    d = fresh_daemon(settings=SMALL)
    nonce = _challenge(d)
    for_info = digest_value("GET", "/api/info", "admin", d.admin_password, nonce)
    r = requests.get(d.http + "/api/users", headers={"Authorization": for_info}, timeout=30)
    assert r.status_code == 401
    r = requests.get(d.http + "/api/info", headers={"Authorization": for_info}, timeout=30)
    assert r.status_code == 200
    for_users = digest_value("GET", "/api/users", "admin", d.admin_password, nonce,
                             nc="00000002")
    r = requests.get(d.http + "/api/users", headers={"Authorization": for_users}, timeout=30)
    assert r.status_code == 200
    # ONVIF over HTTP Digest: the response for the media service is not the device's.
    for_media = digest_value("POST", "/onvif/media_service", "admin", d.admin_password,
                             nonce, nc="00000003")
    r = requests.post(d.http + "/onvif/device_service", timeout=30,
                      data=envelope("<tds:GetDeviceInformation/>"),
                      headers={"Authorization": for_media})
    assert r.status_code == 401


def test_captured_digest_and_ws_security_fail_after_a_restart(fresh_daemon):
    d = fresh_daemon(settings=SMALL)
    nonce = _challenge(d)
    captured = digest_value("GET", "/api/users", "admin", d.admin_password, nonce)
    r = requests.get(d.http + "/api/users", headers={"Authorization": captured}, timeout=30)
    assert r.status_code == 200
    soap = envelope("<tds:GetDeviceInformation/>", security("admin", d.admin_password))
    r = requests.post(d.http + "/onvif/device_service", data=soap, timeout=30)
    assert r.status_code == 200
    r = requests.post(d.http + "/onvif/device_service", data=soap, timeout=30)
    assert r.status_code == 400  # replayed nonce, within the same run
    d.stop()
    again = fresh_daemon(state_dir=d.state_dir, settings=SMALL)
    r = requests.get(again.http + "/api/users", headers={"Authorization": captured},
                     timeout=30)
    assert r.status_code == 401, r.text
    r = requests.post(again.http + "/onvif/device_service", data=soap, timeout=30)
    assert r.status_code == 400, r.text
    # Created before this run, or (a restart within the same second) a nonce it was
    # handed by the last run.
    assert b"before the device started" in r.content or b"already used" in r.content
    # Fresh credentials work on the new run.
    fresh = envelope("<tds:GetDeviceInformation/>", security("admin", again.admin_password,
                                                             created=created_now(2)))
    r = requests.post(again.http + "/onvif/device_service", data=fresh, timeout=30)
    assert r.status_code == 200


# -- item 7: the state directory alone reveals no password -------------------------------

def test_a_copy_of_the_state_directory_reveals_no_password(fresh_daemon, tmp_path):
    d = fresh_daemon(settings=SMALL)
    admin = {"Authorization": basic("admin", d.admin_password)}
    r = requests.post(d.http + "/api/users", headers=admin, timeout=30,
                      json={"username": "nvr", "password": "nvr-password-1", "role": "operator"})
    assert r.status_code in (200, 201), r.text
    # PasswordDigest works, so the daemon keeps recoverable copies somewhere.
    for user, password in (("admin", d.admin_password), ("nvr", "nvr-password-1")):
        r = requests.post(d.http + "/onvif/device_service", timeout=30, data=envelope(
            "<tds:GetDeviceInformation/>", security(user, password)))
        assert r.status_code == 200
        assert r.content.count(b"RotorDream") >= 1
    d.stop()
    copy = tmp_path / "bundle"
    shutil.copytree(d.state_dir, copy)
    assert not reveals_password(copy, [d.admin_password, "nvr-password-1"])
    # The daemon started on the copy alone (no key) cannot answer PasswordDigest.
    alone = fresh_daemon(state_dir=str(copy), settings=SMALL,
                         extra=["--secret-file", str(tmp_path / "other.key")])
    r = requests.post(alone.http + "/onvif/device_service", timeout=30, data=envelope(
        "<tds:GetDeviceInformation/>", security("nvr", "nvr-password-1")))
    assert r.status_code == 400
    assert NS["ter"].encode() in r.content
