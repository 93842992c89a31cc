"""rotordream-ctl, the Python client's command, against a real daemon: every command,
--json, exit statuses (0, 1 on an API error with its code on stderr, 2 on usage),
credentials from the environment; and `pip install ./clients/python` in a new venv."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import VENV_BIN, require_module

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CTL = os.path.join(VENV_BIN, "rotordream-ctl")


@pytest.fixture
def ctl(daemon):
    """Run rotordream-ctl with the shared daemon's URL and admin credentials in the env."""
    require_module("rotordream_client")
    env = dict(os.environ, ROTORDREAM_URL=daemon.http, ROTORDREAM_USER="admin",
               ROTORDREAM_PASSWORD=daemon.admin_password)

    def run(*args, check=0, exe=CTL, **kw):
        out = subprocess.run([exe] + list(args), capture_output=True, text=True, env=env,
                             timeout=60, **kw)
        assert out.returncode == check, (out.returncode, out.stdout, out.stderr)
        return out
    run.env = env
    return run


def jrun(ctl, *args):
    """The JSON a --json command prints."""
    return json.loads(ctl("--json", *args).stdout)


def test_info_status_get_set(ctl, daemon):
    assert jrun(ctl, "info")["streams"]["stream1"]["url"].endswith("/stream1")
    assert "uptime" in jrun(ctl, "status")
    assert jrun(ctl, "get", "brightness", "cam1-light") == {"brightness": 50, "cam1-light": False}
    assert "brightness: 50" in ctl("get", "brightness").stdout
    try:
        # Values parse as JSON, else stay strings.
        assert jrun(ctl, "set", "brightness=64", "cam1-light=true", "resolution=1280x720") == \
            {"brightness": 64, "cam1-light": True, "resolution": "1280x720"}
        assert jrun(ctl, "get", "*")["brightness"] == 64
    finally:
        ctl("set", "brightness=50", "cam1-light=false")


def test_api_errors_exit_1_with_the_code_and_usage_errors_2(ctl, daemon):
    out = ctl("set", "brightness=300", check=1)
    assert "INVALID_VALUE" in out.stderr and "brightness" in out.stderr and out.stdout == ""
    out = ctl("--password", "wrong", "--auth", "basic", "users", "list", check=1)
    assert "UNAUTHORIZED" in out.stderr
    ctl("recordings", "delete", "no-such-recording", check=1)
    assert "usage" in ctl("set", "no-equals-sign", check=2).stderr.lower()
    ctl("frobnicate", check=2)
    ctl("record", "rewind", check=2)
    out = subprocess.run([CTL, "info"], capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in os.environ.items() if not k.startswith("ROTORDREAM")})
    assert out.returncode == 2 and "ROTORDREAM_URL" in out.stderr
    out = ctl("--url", "http://127.0.0.1:9", "info", check=1)   # nothing listens on port 9
    assert out.stderr.startswith("error:")


def test_watch_prints_json_lines(ctl, daemon, admin):
    proc = subprocess.Popen([CTL, "watch", "--initial", "contrast"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ctl.env)
    try:
        assert json.loads(proc.stdout.readline()) == {"contrast": 50}
        admin.set(contrast=57, saturation=52)
        assert json.loads(proc.stdout.readline()) == {"contrast": 57}
    finally:
        proc.terminate()
        proc.wait(10)
        admin.set(contrast=50, saturation=50)


def test_snapshot_record_recordings(ctl, daemon, tmp_path):
    jpeg = tmp_path / "snap.jpg"
    assert jrun(ctl, "snapshot", "-o", str(jpeg))["bytes"] == jpeg.stat().st_size
    assert jpeg.read_bytes()[:2] == b"\xff\xd8"
    started = jrun(ctl, "record", "start", "--name", "ctl-rec")
    assert started["recording"] is True and started["name"] == "ctl-rec"
    assert jrun(ctl, "record", "pause")["paused"] is True
    assert jrun(ctl, "record", "resume")["paused"] is False
    assert jrun(ctl, "record", "status")["recording"] is True
    assert jrun(ctl, "record", "stop")["recording"] is False
    listed = jrun(ctl, "recordings", "list")
    entry = [r for r in listed if r["name"] == "ctl-rec"][0]
    assert len(jrun(ctl, "recordings", "list", "--limit", "1")) == 1
    target = tmp_path / "rec.mp4"
    got = jrun(ctl, "recordings", "download", entry["id"], "-o", str(target))
    assert got["bytes"] == entry["size"] == target.stat().st_size
    assert "bytes" in ctl("recordings", "download", entry["id"], "-o", str(target)).stdout
    assert jrun(ctl, "recordings", "delete", entry["id"]) == {"deleted": entry["id"]}
    assert "NOT_FOUND" in ctl("recordings", "delete", entry["id"], check=1).stderr


def test_download_progress_bar_on_a_terminal(ctl, daemon, tmp_path, admin):
    import pty
    admin.recording.start(name="ctl-tty")
    admin.recording.stop()
    entry = [r for r in admin.recordings.list() if r["name"] == "ctl-tty"][0]
    primary, secondary = pty.openpty()
    target = tmp_path / "tty.mp4"
    proc = subprocess.Popen([CTL, "recordings", "download", entry["id"], "-o", str(target)],
                            stdin=secondary, stdout=secondary, stderr=secondary, env=ctl.env)
    os.close(secondary)
    shown = b""
    while True:
        try:
            piece = os.read(primary, 4096)
        except OSError:
            break       # the terminal closed with the process
        if not piece:
            break
        shown += piece
    assert proc.wait(30) == 0
    os.close(primary)
    # click's bar: the label, the bar, bytes done of the total.
    assert entry["id"].encode() in shown and b"#" in shown, shown
    assert b"%d/%d" % (entry["size"], entry["size"]) in shown
    assert target.stat().st_size == entry["size"]
    admin.recordings.delete(entry["id"])


def test_ptz_and_users(ctl, daemon, admin):
    try:
        assert jrun(ctl, "ptz", "move", "--pan", "4", "--tilt", "2") == {"pan": 4, "tilt": 2}
        token = admin.ptz.set_preset("ctl-preset")
        assert jrun(ctl, "ptz", "move", "--velocity", "0.2", "0", "--timeout", "5")["moving"]
        assert jrun(ctl, "ptz", "stop") == {"stopped": True}
        assert {"token": token, "name": "ctl-preset"}.items() <= \
            [p for p in jrun(ctl, "ptz", "presets") if p["token"] == token][0].items()
        assert jrun(ctl, "ptz", "goto", "ctl-preset") == {"preset": token}
        home = jrun(ctl, "ptz", "home")
        assert {"pan", "tilt", "state"} <= set(home)
        ctl("ptz", "move", check=2)
        admin.ptz.remove_preset(token)
    finally:
        admin.ptz.move(0, 0)
    assert "admin" in [u["username"] for u in jrun(ctl, "users", "list")]
    try:
        added = jrun(ctl, "users", "add", "ctl-user", "--role", "operator",
                     "--new-password", "ctl-pass-1")
        assert added["role"] == "operator"
        # Prompted for when not given (twice, hidden).
        out = ctl("users", "passwd", "ctl-user", input="ctl-pass-2\nctl-pass-2\n")
        assert "password_changed" in out.stdout
        env = dict(ctl.env, ROTORDREAM_USER="ctl-user", ROTORDREAM_PASSWORD="ctl-pass-2")
        out = subprocess.run([CTL, "--json", "users", "list"], capture_output=True, text=True,
                             env=env, timeout=60)
        assert out.returncode == 1 and "FORBIDDEN" in out.stderr
    finally:
        assert jrun(ctl, "users", "delete", "ctl-user") == {"deleted": "ctl-user"}
    assert "NOT_FOUND" in ctl("users", "delete", "ctl-user", check=1).stderr


def test_pip_install_in_a_new_venv_gives_a_working_command(ctl, daemon, tmp_path):
    """The distribution installs offline into a fresh venv; its dependencies come from the
    project venv through a path entry (no index is asked)."""
    require_module("wheel")     # setuptools older than 70.1 builds wheels with it
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    import sysconfig
    target_site = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()"
         "['purelib'])"], capture_output=True, text=True, check=True).stdout.strip()
    # A plain path line: the project venv's own .pth files (its editable installs) stay out.
    with open(os.path.join(target_site, "project-deps.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    # A copy: a build without isolation writes build/ and *.egg-info beside the sources.
    source = tmp_path / "rotordream-client"
    shutil.copytree(os.path.join(ROOT, "clients", "python"), str(source),
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    out = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps",
                          "--no-index", "--no-build-isolation", str(source)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import rotordream_client; print(rotordream_client.__file__)"],
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(venv))
    assert os.path.exists(os.path.join(os.path.dirname(where.strip()), "py.typed"))
    info = jrun(lambda *a: ctl(*a, exe=str(venv / "bin" / "rotordream-ctl")), "info")
    assert info["streams"]["stream1"]["url"] == daemon.rtsp("stream1")
