"""What every test runner started inside ``unshare -n`` shares: refusing to run anywhere
but a fresh namespace, admin calls to the daemon, and the result file."""

import base64
import json
import os
import subprocess
import urllib.request


def only_loopback():
    """Exit unless the only link is ``lo`` (a namespace of our own), then bring it up."""
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True,
                           check=True).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in links.splitlines()]
    if names != ["lo"]:
        # Not a namespace of our own: WebRTC or multicast here could use a real network.
        raise SystemExit("refusing to run outside a fresh network namespace (links: %s)" % names)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def admin_get(daemon, path):
    """The ``data`` of a GET of ``path`` as admin (Basic)."""
    request = urllib.request.Request(daemon.http + path)
    token = base64.b64encode(("admin:" + daemon.admin_password).encode()).decode()
    request.add_header("Authorization", "Basic " + token)
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.load(reply)["data"]


def finish(result_path, result, daemon):
    """Stop ``daemon`` and write ``result`` with the end of its log to ``result_path``."""
    daemon.stop()
    result["daemon_log"] = daemon.log()[-6000:]
    with open(result_path, "w") as f:
        json.dump(result, f, indent=1)


# What the browser tests watch: stream1 at 720p30, and stream2 small and cheap (a squeezed
# link carries it, not stream1).
VIEWER_SETTINGS = {"resolution": "1280x720", "fps": 30, "stream2-resolution": "320x180",
                   "stream2-bitrate": 200}


def viewer_daemon(workdir, config_text, extra=()):
    """A Daemon (not started) on the namespace's loopback with :data:`VIEWER_SETTINGS`
    and ``config_text`` as its config file; ``extra`` command-line options."""
    from tests.conftest import Daemon, seed_state
    state_dir = os.path.join(workdir, "state")
    os.makedirs(state_dir)
    seed_state(state_dir, VIEWER_SETTINGS)
    config = os.path.join(workdir, "rotordream.toml")
    with open(config, "w") as f:
        f.write(config_text)
    return Daemon(state_dir, 18080, 18554, ["--config", config] + list(extra))
