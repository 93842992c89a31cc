"""The Python examples (examples/*.py) run as a user would: subprocesses with
ROTORDREAM_URL etc. against a real daemon; what they print and do is checked."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import require_module, require_tool

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def example(name):
    """Path of examples/<name>."""
    return os.path.join(ROOT, "examples", name)


@pytest.fixture
def env(daemon):
    """The environment the examples read the camera and credentials from."""
    require_module("rotordream_client")
    return dict(os.environ, ROTORDREAM_URL=daemon.http, ROTORDREAM_USER="admin",
                ROTORDREAM_PASSWORD=daemon.admin_password)


def run(args, env, **kw):
    out = subprocess.run([sys.executable] + args, capture_output=True, text=True, env=env,
                         timeout=120, **kw)
    assert out.returncode == 0, (out.stdout, out.stderr)
    return out.stdout


def test_automation_records_for_the_given_time(env, admin):
    out = run([example("automation.py"), "--seconds", "2", "--name", "example-auto"], env)
    first, last = out.strip().splitlines()
    rid = first.split()[1]
    assert first == "recording %s for 2s" % rid
    assert last.startswith("recorded %s: " % rid)
    entry = [r for r in admin.recordings.list() if r["id"] == rid][0]
    assert entry["name"] == "example-auto" and not entry["recording"]
    assert 1.5 <= entry["duration"] <= 3.5
    assert last == "recorded %s: %d bytes, %.1f s" % (rid, entry["size"], entry["duration"])
    admin.recordings.delete(rid)


def test_nvr_snapshot_and_a_stream_url_that_plays(env, daemon, tmp_path):
    jpeg = tmp_path / "thumb.jpg"
    out = run([example("nvr.py"), "--snapshot", str(jpeg), "--stream", "stream2"], env)
    snap_line, stream_line = out.strip().splitlines()
    assert snap_line == "snapshot: %s (%d bytes)" % (jpeg, jpeg.stat().st_size)
    assert jpeg.read_bytes()[:2] == b"\xff\xd8"
    url = stream_line.split("stream: ", 1)[1]
    assert url.startswith(daemon.rtsp("stream2") + "?tcp&token=")
    ffprobe = require_tool("ffprobe")
    probe = subprocess.run([ffprobe, "-v", "error", "-show_entries",
                            "stream=codec_name,width,height", "-of", "json", url],
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    stream = json.loads(probe.stdout)["streams"][0]
    assert stream["codec_name"] == "h264" and stream["width"] > 0 and stream["height"] > 0
    # The token is what the URL authenticates with: a wrong one is refused.
    bad = subprocess.run([ffprobe, "-v", "error", url.split("token=")[0] + "token=wrong"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0


def test_watch_loop_prints_changes(env, admin):
    proc = subprocess.Popen([sys.executable, example("watch.py"), "--initial", "--count", "3",
                             "jpeg-quality", "cam1-light"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        initial = sorted([proc.stdout.readline(), proc.stdout.readline()])
        assert initial == ["cam1-light = false\n", "jpeg-quality = 85\n"]
        admin.set(jpeg_quality=70)
        assert proc.stdout.readline() == "jpeg-quality = 70\n"
        admin.set(cam1_light=True, brightness=50)
        assert proc.stdout.readline() == "cam1-light = true\n"
        assert proc.wait(30) == 0      # --count 3: initial values, then two changes
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        admin.set(jpeg_quality=85, cam1_light=False)
