"""The running daemon's log: event lines for viewers and logins, levels that reload, and
journald priorities under systemd."""

import os
import re
import signal
import subprocess
import time

import requests

from tests.conftest import Daemon, free_port

from tests.ops.test_reload_live import RtpWatch, config_file, reload, start


def lines_with(daemon, text):
    return [line for line in daemon.output if text in line]


def test_events_name_client_user_stream_and_session_and_never_a_password(tmp_path,
                                                                         tmp_path_factory):
    conf = config_file(tmp_path, "[log]\nlevel = \"info\"\n")
    d = start(tmp_path_factory, conf)
    try:
        viewer = RtpWatch(d)
        assert d.wait_output(lambda out: any("event=rtsp_play" in l for l in out), 20)
        play = lines_with(d, "event=rtsp_play")[0]
        assert "client=127.0.0.1" in play and "stream=stream2" in play
        assert "user=anonymous" in play and "session=" in play
        viewer.close()
        assert d.wait_output(lambda out: any("event=rtsp_session_end" in l for l in out), 20)

        secret = "s3cret-Password-%d" % d.http_port
        r = requests.get(d.http + "/api/settings", auth=("nobody", secret), timeout=10)
        assert r.status_code == 401
        assert d.wait_output(lambda out: any("event=login_failed" in l for l in out), 20)
        failed = lines_with(d, "event=login_failed")[0]
        assert "user=nobody" in failed and "client=127.0.0.1" in failed
        assert secret not in d.log()

        # Auth down to errors only: the next failed login writes nothing.
        reload(d, conf, "[log]\nlevels = {auth = \"error\"}\n")
        r = requests.get(d.http + "/api/settings", auth=("nobody2", secret), timeout=10)
        assert r.status_code == 401
        reload(d, conf, "[log]\nlevels = {auth = \"error\"}\n")   # a marker after it
        assert not lines_with(d, "user=nobody2")
        reload(d, conf, "[log]\nlevel = \"info\"\n")
        r = requests.get(d.http + "/api/settings", auth=("nobody3", secret), timeout=10)
        assert d.wait_output(lambda out: any("user=nobody3" in l for l in out), 20)
    finally:
        d.stop()


def test_under_systemd_lines_carry_journald_priorities(tmp_path, tmp_path_factory):
    # Output to a file whose device and inode JOURNAL_STREAM names, as systemd does for
    # the journal's stream (there is no journal socket here: the <N> prefix form).
    out_path = tmp_path / "journal-stream"
    out = open(out_path, "w")
    st = os.fstat(out.fileno())
    d = Daemon(str(tmp_path_factory.mktemp("state")), free_port(), free_port(),
               ["--config", os.devnull])
    env = dict(os.environ, ROTORDREAM_ADMIN_PASSWORD=d.admin_password,
               JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
    proc = subprocess.Popen(d.command(), stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while "is running" not in out_path.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, out_path.read_text()
            time.sleep(0.1)   # polling another process's file: nothing to wait on
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        out.close()
    lines = out_path.read_text().splitlines()
    started = [l for l in lines if "event=daemon_start" in l]
    assert started and started[0].startswith("<6>level=info area=service event=daemon_start")
    assert all(re.match(r"<[0-7]>level=", l) for l in lines), lines[:5]
