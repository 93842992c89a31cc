"""The H.264 profile is a setting: the config file gives its default, a write re-encodes."""

import subprocess

import requests

from tests.conftest import require_tool
from tests.support.live import StateWatcher, wait_frames


def stream_profile(daemon, stream="stream1"):
    """The profile ffprobe reads from the stream's parameter sets."""
    out = subprocess.run([require_tool("ffprobe", "ffmpeg"), "-v", "error", "-rtsp_transport",
                          "tcp", "-select_streams", "v", "-show_entries", "stream=profile",
                          "-of", "csv=p=0", daemon.rtsp(stream)],
                         capture_output=True, text=True, timeout=60)
    return out.stdout.strip()


def test_profile_default_from_the_config_then_changed_live(fresh_daemon, tmp_path):
    conf = tmp_path / "main.toml"
    conf.write_text('[video]\nprofile = "main"\n')
    d = fresh_daemon(extra=["--config", str(conf)],
                     settings={"resolution": "320x240", "stream2-resolution": "320x180"})
    auth = ("admin", d.admin_password)
    assert requests.get(d.http + "/api/settings/profile", timeout=10).json()["data"] == \
        {"profile": "main"}
    assert stream_profile(d) == "Main" and stream_profile(d, "stream2") == "Main"
    with StateWatcher(d) as watch:
        r = requests.post(d.http + "/api/settings", json={"profile": "high"}, auth=auth,
                          timeout=10)
        assert r.status_code == 200
        watch.wait("profile", "high")
    wait_frames(d, 5)
    assert stream_profile(d) == "High"
    r = requests.post(d.http + "/api/settings", json={"profile": "extended"}, auth=auth,
                      timeout=10)
    assert r.status_code == 400 and r.json()["key"] == "profile"
    assert r.json()["code"] == "INVALID_VALUE"
