"""twistd -n rotordream as a subprocess: start, answer, stop cleanly; clear start-up errors."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from tests.conftest import VENV_BIN, free_port

TWISTD = os.path.join(VENV_BIN, "twistd")


def run_twistd(args, timeout=30):
    return subprocess.run([TWISTD, "-n", "--pidfile=", "rotordream"] + args,
                          capture_output=True, text=True, timeout=timeout)


def test_plugin_listing_imports_nothing_heavy():
    code = ("import sys\n"
            "from twisted.plugin import getPlugins\n"
            "from twisted.application.service import IServiceMaker\n"
            "names = [p.tapname for p in getPlugins(IServiceMaker)]\n"
            "assert 'rotordream' in names, names\n"
            "heavy = [m for m in ('av', 'numpy', 'aiortc', 'rotordream.service') if m in sys.modules]\n"
            "print(heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_daemon_starts_answers_and_exits_zero_on_sigterm(fresh_daemon):
    d = fresh_daemon(settings={"resolution": "640x360"})
    with urllib.request.urlopen(d.http + "/api/health", timeout=10) as r:
        assert r.status == 200
        body = json.loads(r.read())
    assert body["status"] == "success"
    # The RTSP port is bound too.
    socket.create_connection(("127.0.0.1", d.rtsp_port), timeout=5).close()
    assert "rtsp://localhost:%d/stream1" % d.rtsp_port in d.log()
    t = time.monotonic()
    code = d.stop(signal.SIGTERM)
    assert code == 0, d.log()[-3000:]
    assert time.monotonic() - t < 5
    assert "Server Shut Down" in d.log()
    assert "Traceback" not in d.log()


def test_bad_config_value_fails_with_one_line(tmp_path):
    result = run_twistd(["--http", "carrier-pigeon:80", "--state-dir", str(tmp_path)])
    assert result.returncode != 0
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert lines == ["rotordream: [server] http = 'carrier-pigeon:80': unknown endpoint type "
                     "'carrier-pigeon' (use tcp:PORT or ssl:PORT)"], result.stderr
    conf = tmp_path / "rd.toml"
    conf.write_text("[rtsp]\nmax_sessions = 'many'\n")
    result = run_twistd(["--config", str(conf), "--state-dir", str(tmp_path)])
    assert result.returncode != 0
    assert result.stderr.strip() == ("rotordream: [rtsp] max_sessions = 'many': "
                                     "expected an integer")


def test_taken_port_fails_with_a_message_that_says_how_to_pick_another(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = run_twistd(["--http", "tcp:%d:interface=127.0.0.1" % port,
                             "--rtsp", "tcp:%d:interface=127.0.0.1" % free_port(),
                             "--state-dir", str(tmp_path)], timeout=60)
    assert result.returncode != 0
    assert ("cannot listen on tcp:%d:interface=127.0.0.1 (--http): the port is already in use; "
            "pick another port with --http tcp:8080" % port) in result.stdout + result.stderr


def test_unwritable_state_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_twistd(["--state-dir", str(blocker / "sub")])
    assert result.returncode != 0
    assert "[server] state_dir = '%s/sub': not a writable directory" % blocker in result.stderr
    assert "pick another with --state-dir DIR" in result.stderr


def test_privileged_port_message():
    # We run as root here, so bind errors for low ports are shown through the message builder.
    import errno as errno_mod

    from twisted.internet.error import CannotListenError

    from rotordream.listener import listen_error_message
    err = CannotListenError("", 80, OSError(errno_mod.EACCES, "Permission denied"))
    assert listen_error_message("http", "tcp:80", err) == (
        "cannot listen on tcp:80 (--http): ports below 1024 need root; pick another port with "
        "--http tcp:8080 or in the config file")
    err = CannotListenError("", 554, OSError(errno_mod.EADDRINUSE, "in use"))
    assert "--rtsp tcp:8554" in listen_error_message("rtsp", "tcp:554", err)


def test_settings_changed_just_before_sigterm_survive_a_restart(fresh_daemon):
    # The state file is written in its own thread; a stop must still keep the last change.
    import requests
    d = fresh_daemon(settings={"resolution": "640x360"})
    auth = ("admin", d.admin_password)
    for value in range(10, 60, 7):  # a burst: writes coalesce while one is in the thread
        r = requests.post(d.http + "/api/settings", json={"brightness": value, "contrast": 90 - value},
                          auth=auth, timeout=10)
        assert r.status_code == 200, r.text
    assert d.stop(signal.SIGTERM) == 0
    d.start()
    body = requests.get(d.http + "/api/settings", auth=auth, timeout=10).json()["data"]
    assert (body["brightness"], body["contrast"]) == (59, 31)
