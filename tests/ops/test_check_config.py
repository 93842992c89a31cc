"""``twistd -n rotordream --check-config``: validates a file and exits, starting nothing."""

import os
import subprocess
import sys

VENV_BIN = os.path.dirname(sys.executable)


def check(path, *extra):
    return subprocess.run([os.path.join(VENV_BIN, "twistd"), "-n", "--pidfile=", "rotordream",
                           "--check-config", "-c", str(path)] + list(extra),
                          capture_output=True, text=True, timeout=60)


def test_a_valid_file_prints_ok_and_exits_0(tmp_path):
    conf = tmp_path / "good.toml"
    conf.write_text('[http]\nrate_limit = 5\n[log]\nlevels = {rtsp = "debug"}\n')
    # State dir and ports that could not be used: nothing is started or bound.
    proc = check(conf, "--state-dir", str(tmp_path / "never" / "made"), "--http", "tcp:1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
    assert not (tmp_path / "never").exists()


def test_the_shipped_file_is_ok():
    path = os.path.join(os.path.dirname(__file__), "..", "..", "conf", "rotordream.toml")
    proc = check(path)
    assert (proc.returncode, proc.stdout.strip()) == (0, "ok"), proc.stderr


def test_a_bad_value_names_the_key_and_exits_1(tmp_path):
    conf = tmp_path / "bad.toml"
    conf.write_text('[http]\nrate_limit = "many"\n')
    proc = check(conf)
    assert proc.returncode == 1
    assert "[http] rate_limit = 'many': expected an integer" in proc.stderr
    assert "ok" not in proc.stdout


def test_a_bad_log_area_is_named(tmp_path):
    conf = tmp_path / "bad.toml"
    conf.write_text('[log]\nlevels = {rtps = "debug"}\n')
    proc = check(conf)
    assert proc.returncode == 1 and "[log] levels: unknown area rtps" in proc.stderr
