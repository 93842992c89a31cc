"""The running daemon's log: event lines for viewers and logins, levels that reload, and
journald priorities under systemd."""

import requests

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
    conf = config_file(tmp_path, "")
    d = start(tmp_path_factory, conf, env={"JOURNAL_STREAM": "9:12345"})
    try:
        started = lines_with(d, "event=daemon_start")
        assert started and started[0].startswith("<6>level=info area=service event=daemon_start")
        listening = lines_with(d, "event=listening")
        assert listening and all(l.startswith("<6>") for l in listening)
    finally:
        assert d.stop() == 0
