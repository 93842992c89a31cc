"""rotordream.js under Node: runs ``node --experimental-websocket --test tests/clients/js/``
against a daemon of its own.

Node reads the daemon's URL and an admin's credentials from the environment, the URL
of a second daemon with a small rate limit, and
ROTORDREAM_RESTART_URL: a small HTTP endpoint here that stops the daemon, changes a
setting in its state file while it is down, and starts it again on the same port,
so the client's watch has to reconnect and find that change by itself.
"""

import http.server
import json
import os
import re
import subprocess
import threading
import urllib.parse

import pytest

from tests.conftest import NO_LIMITS, free_port, require_tool

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTS = os.path.join(ROOT, "tests", "clients", "js")


class Restarter(http.server.ThreadingHTTPServer):
    """GET /?KEY=VALUE...: restart ``daemon`` with those settings written while it is down."""

    def __init__(self, daemon):
        self.daemon = daemon
        self.restarts = 0
        super().__init__(("127.0.0.1", free_port()), _RestartHandler)

    @property
    def url(self):
        return "http://127.0.0.1:%d/" % self.server_address[1]


class _RestartHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        daemon = self.server.daemon
        changes = {k: json.loads(v[0]) for k, v in
                   urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).items()}
        try:
            assert daemon.stop() == 0, daemon.log()[-3000:]
            path = os.path.join(daemon.state_dir, "state.json")
            with open(path) as f:
                state = json.load(f)
            state["values"].update(changes)
            with open(path, "w") as f:
                json.dump(state, f)
            daemon.start()
            self.server.restarts += 1
            status, body = 200, b"restarted"
        except Exception as e:  # the Node side shows it
            status, body = 500, repr(e).encode()
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def node_daemon(fresh_daemon, tmp_path):
    conf = tmp_path / "js.toml"
    conf.write_text(NO_LIMITS)
    return fresh_daemon(extra=["--config", str(conf)],
                        settings={"resolution": "1280x720", "fps": 15})


@pytest.fixture
def limited_daemon(fresh_daemon, tmp_path):
    conf = tmp_path / "limited.toml"
    conf.write_text("[http]\nrate_limit = 3\nrate_period = 60\n")
    return fresh_daemon(extra=["--config", str(conf), "--motor", "none"],
                        settings={"resolution": "640x360", "fps": 5})


def test_the_javascript_client_under_node(node_daemon, limited_daemon):
    node = require_tool("node", "nodejs")
    restarter = Restarter(node_daemon)
    threading.Thread(target=restarter.serve_forever, daemon=True).start()
    env = dict(os.environ, ROTORDREAM_URL=node_daemon.http, ROTORDREAM_USER="admin",
               ROTORDREAM_PASSWORD=node_daemon.admin_password,
               ROTORDREAM_RESTART_URL=restarter.url,
               ROTORDREAM_LIMITED_URL=limited_daemon.http, NO_PROXY="127.0.0.1")
    try:
        proc = subprocess.run([node, "--experimental-websocket", "--test",
                               "--test-reporter=spec", TESTS], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
    finally:
        restarter.shutdown()
        restarter.server_close()
    report = proc.stdout[-12000:] + proc.stderr[-4000:]
    assert proc.returncode == 0, report + "\n--- daemon ---\n" + node_daemon.log()[-4000:]
    counts = dict((k, int(v)) for k, v in re.findall(r"(pass|fail|skipped) (\d+)", proc.stdout))
    assert counts["pass"] >= 20 and counts["fail"] == counts["skipped"] == 0, report
    assert restarter.restarts == 1, report
