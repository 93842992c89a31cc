"""HTTPS (REST, WSS) and RTSPS with a self-signed certificate made on first start."""

import asyncio
import concurrent.futures
import json
import os
import ssl
import stat
import subprocess

import requests
import websockets

from tests.conftest import free_port, require_tool


def test_https_wss_and_rtsps_with_a_generated_certificate(fresh_daemon):
    https, rtsps = free_port(), free_port()
    d = fresh_daemon(extra=["--https", "ssl:%d:interface=127.0.0.1" % https,
                            "--rtsps", "ssl:%d:interface=127.0.0.1" % rtsps],
                     settings={"resolution": "640x360", "stream2-resolution": "320x180"})
    key = os.path.join(d.state_dir, "tls-key.pem")
    cert = os.path.join(d.state_dir, "tls-cert.pem")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    base = "https://127.0.0.1:%d" % https
    r = requests.get(base + "/api/info", verify=cert)
    assert r.status_code == 200 and r.json()["status"] == "success"
    r = requests.post(base + "/api/login", verify=cert,
                      json={"username": "admin", "password": d.admin_password})
    set_cookie = r.headers["Set-Cookie"]
    assert "Secure" in set_cookie and "HttpOnly" in set_cookie and "samesite=strict" in set_cookie.lower()
    # Plain HTTP logins do not mark the cookie Secure (it would never come back).
    r = requests.post(d.http + "/api/login",
                      json={"username": "admin", "password": d.admin_password})
    assert "Secure" not in r.headers["Set-Cookie"]

    async def wss():
        ctx = ssl.create_default_context(cafile=cert)
        async with websockets.connect("wss://127.0.0.1:%d/api/v1" % https, ssl=ctx) as ws:
            await ws.send(json.dumps({"get": ["brightness"]}))
            return json.loads(await ws.recv())

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert pool.submit(asyncio.run, wss()).result(30) == {"brightness": 50}

    exe = require_tool("ffprobe")
    out = subprocess.run([exe, "-v", "error", "-show_entries", "stream=codec_name,width,height",
                          "-of", "csv=p=0", "rtsps://127.0.0.1:%d/stream1" % rtsps],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == "h264,640,360", out.stderr
    # The certificate is made once and reused.
    before = open(cert).read()
    d.stop()
    d.start()
    assert open(cert).read() == before
