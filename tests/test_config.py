"""Configuration: TOML and command line into dataclasses; one-line errors."""

import pytest

from rotordream import config


def write(tmp_path, text):
    path = tmp_path / "rd.toml"
    path.write_text(text)
    return str(path)


def test_defaults_without_a_file(monkeypatch):
    monkeypatch.setattr(config, "DEFAULT_CONFIG_PATH", "/nonexistent/rd.toml")
    cfg = config.load()
    assert cfg.server.http == "tcp:80" and cfg.server.rtsp == "tcp:554"
    assert cfg.server.https == "" and cfg.discovery.enabled is False
    assert cfg.recording_dir == "/var/lib/rotordream/recordings"


def test_command_line_wins_over_file(tmp_path):
    path = write(tmp_path, '[server]\nhttp = "tcp:8000"\nrtsp = "tcp:9554"\n')
    cfg = config.load(path, {("server", "http"): "tcp:8080"})
    assert cfg.server.http == "tcp:8080" and cfg.server.rtsp == "tcp:9554"


def test_the_shipped_config_file_is_valid_and_documents_every_key():
    import dataclasses
    import os
    import tomllib
    path = os.path.join(os.path.dirname(__file__), "..", "conf", "rotordream.toml")
    cfg = config.load(path)
    assert cfg.discovery.enabled is True  # the packaged config turns discovery on
    text = open(path).read()
    data = tomllib.loads(text)
    for section in dataclasses.fields(config.Config):
        for f in dataclasses.fields(section.default_factory):
            assert "%s =" % f.name in text, "conf/rotordream.toml lacks [%s] %s" % (
                section.name, f.name)
    assert set(data) == {f.name for f in dataclasses.fields(config.Config)}


@pytest.mark.parametrize("text, expected", [
    ('[server]\nhttpp = "tcp:80"\n', "[server] httpp: unknown key"),
    ('[nonsense]\n', "unknown section [nonsense]"),
    ('[rtsp]\nmax_sessions = "ten"\n', "[rtsp] max_sessions = 'ten': expected an integer"),
    ('[rtsp]\nmax_sessions = 0\n', "must be positive"),
    ('[discovery]\nenabled = "yes"\n', "expected true or false"),
    ('[server]\nhttp = "tcp:eighty"\n', "[server] http = 'tcp:eighty': port must be a number"),
    ('[server]\nhttp = "carrier-pigeon:80"\n', "unknown endpoint type"),
    ('[server]\nsource = "webcam"\n', "[server] source = 'webcam'"),
    ('[server]\nmotor = "serial:/dev/ttyS0:fast"\n', "baud must be a positive number"),
    ('[auth]\nanonymous = "root"\n', "expected one of admin, operator, viewer, guest"),
    ('[server\n', "config file"),
])
def test_bad_values_give_one_line_naming_key_and_value(tmp_path, text, expected):
    with pytest.raises(config.ConfigError) as e:
        config.load(write(tmp_path, text))
    message = str(e.value)
    assert expected in message and "\n" not in message


def test_missing_file_is_an_error():
    with pytest.raises(config.ConfigError, match="does not exist"):
        config.load("/nonexistent/rotordream.toml")


def test_source_and_motor_specs_parse():
    assert config.parse_source("v4l2:/dev/video0") == ("v4l2", "/dev/video0")
    assert config.parse_source("file:/tmp/a.mp4") == ("file", "/tmp/a.mp4")
    assert config.parse_motor("serial:/dev/ttyUSB0:57600") == ("serial", "/dev/ttyUSB0", 57600)
    assert config.parse_motor("sim") == ("sim", None, None)
