#!/usr/bin/env python3
"""REST throughput and latency with wrk: GET /api/status, POST /api/settings/brightness,
GET /api/snapshot at 1080p. Rate limits off. Prints one line per endpoint.

    .venv/bin/python bench/http_api.py [--seconds 10] [--connections 20]
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _daemon import PASSWORD, BenchDaemon  # noqa: E402

LUA_POST = """
wrk.method = "POST"
wrk.body = "75"
wrk.headers["Authorization"] = "Bearer %s"
"""


def wrk(url, seconds, connections, script=None):
    cmd = ["wrk", "-t2", "-c%d" % connections, "-d%ds" % seconds, "--latency", url]
    if script:
        cmd[1:1] = ["-s", script]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"\s+(50|99)%\s+([\d.]+\w+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, lat.get("50"), lat.get("99"), int(non2xx.group(1)) if non2xx else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=20)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk)")
    d = BenchDaemon(settings={"resolution": "1920x1080", "fps": 30})
    try:
        req = urllib.request.Request(d.http + "/api/login", method="POST", data=json.dumps(
            {"username": "admin", "password": PASSWORD}).encode())
        token = json.loads(urllib.request.urlopen(req).read())["token"]
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        script.write(LUA_POST % token)
        script.close()
        print("http bench: wrk -t2 -c%d -d%ds on %d cores, %s, stream1 1080p30 encoding meanwhile"
              % (args.connections, args.seconds, os.cpu_count(), time.strftime("%Y-%m-%d")))
        for name, url, lua in (("GET /api/status", d.http + "/api/status", None),
                               ("POST /api/settings/brightness",
                                d.http + "/api/settings/brightness", script.name),
                               ("GET /api/snapshot (1080p)", d.http + "/api/snapshot", None)):
            rps, p50, p99, bad = wrk(url, args.seconds, args.connections, lua)
            print("%-32s %8.0f req/s  p50 %-8s p99 %-8s non-2xx %d" % (name, rps, p50, p99, bad),
                  flush=True)
    finally:
        d.stop()


if __name__ == "__main__":
    main()
