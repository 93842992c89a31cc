"""Log lines: one per event, key=value, escaped, bounded, no secrets; levels per area."""

import io
import os
import socket
import struct

from twisted.logger import Logger, LogLevel, LogPublisher
from twisted.python.failure import Failure

from rotordream import config as configmod
from rotordream.logs import (MAX_VALUE, REDACTED, JournalObserver, LineObserver, LogSetup,
                             format_line, journal_datagram, journal_fields)


def logged(namespace="rotordream.rtsp.server", level="info", **kwargs):
    """The events one log call makes."""
    events = []
    publisher = LogPublisher(events.append)
    log = Logger(namespace=namespace, observer=publisher)
    getattr(log, level)(kwargs.pop("format", None), **kwargs)
    return events[0]


def test_an_event_is_one_line_of_key_value_fields():
    line = format_line(logged(format="RTSP session {session} plays {stream}",
                              event="rtsp_play", client="127.0.0.1", user="anonymous",
                              stream="stream1", session="A1B2"))
    assert line == ("level=info area=rtsp event=rtsp_play client=127.0.0.1 user=anonymous "
                    "stream=stream1 session=A1B2 msg=\"RTSP session A1B2 plays stream1\"")


def test_quotes_backslashes_and_newlines_are_escaped_onto_one_line():
    line = format_line(logged(event="login_failed", user='evil"\nlevel=error forged\\'))
    assert "\n" not in line
    assert 'user="evil\\"\\nlevel=error forged\\\\"' in line


def test_long_user_input_is_cut():
    line = format_line(logged(event="login_failed", user="A" * 50000,
                              format="failed login for {user}"))
    assert "A" * MAX_VALUE in line and "A" * (MAX_VALUE + 1) not in line
    assert "(50000 characters)" in line
    assert len(line) < 600


def test_passwords_tokens_and_cookies_are_never_logged():
    line = format_line(logged(event="login", user="admin", password="hunter2-secret",
                              token="tok-123456", cookie="rotordream_session=abc",
                              format="login {user} {password} {token}"))
    for secret in ("hunter2-secret", "tok-123456", "rotordream_session=abc"):
        assert secret not in line
    assert 'password="%s"' % REDACTED in line and "user=admin" in line


def test_a_log_call_without_an_event_is_a_message():
    line = format_line(logged(namespace="twisted.web", format="hello {who}", who="world"))
    assert line == "level=info area=twisted event=message msg=\"hello world\""


def test_a_failure_stays_on_one_line_with_its_traceback():
    try:
        1 / 0
    except ZeroDivisionError:
        f = Failure()
    events = []
    Logger(namespace="rotordream.media.hub",
           observer=LogPublisher(events.append)).failure("subscriber failed", f,
                                                         event="subscriber_failed")
    line = format_line(events[0])
    assert "\n" not in line
    assert "error=\"ZeroDivisionError: division by zero\"" in line
    assert "where=test_logs.py:" in line and "traceback=\"Traceback" in line


def test_levels_apply_per_area_and_change_on_reconfigure():
    out = io.StringIO()
    section = configmod.from_dict({"log": {"level": "warn", "levels": {"rtsp": "debug"}}}).log
    setup = LogSetup(section, out, environ={})
    publisher = LogPublisher(setup.observer)
    Logger(namespace="rotordream.rtsp.core", observer=publisher).debug("x", event="rtsp_dbg")
    Logger(namespace="rotordream.auth.service", observer=publisher).info("x", event="auth_info")
    Logger(namespace="rotordream.auth.service", observer=publisher).warn("x", event="auth_warn")
    text = out.getvalue()
    assert "event=rtsp_dbg" in text and "event=auth_warn" in text
    assert "event=auth_info" not in text
    setup.reconfigure(configmod.Log(level="info"))
    Logger(namespace="rotordream.auth.service", observer=publisher).info("x", event="auth_info")
    Logger(namespace="rotordream.rtsp.core", observer=publisher).debug("x", event="rtsp_dbg2")
    assert "event=auth_info" in out.getvalue() and "event=rtsp_dbg2" not in out.getvalue()


def test_lines_carry_a_utc_timestamp_or_under_systemd_a_priority():
    plain, journal = io.StringIO(), io.StringIO()
    event = logged(level="error", event="source_failed", format="bad")
    LineObserver(plain)(event)
    LineObserver(journal, journal=True)(event)
    assert plain.getvalue()[:4].isdigit() and plain.getvalue().split(" ", 1)[0].endswith("Z")
    assert journal.getvalue().startswith("<3>level=error area=rtsp event=source_failed")


def journal_stream(path):
    """A file and the JOURNAL_STREAM value systemd would set for it."""
    f = open(path, "w+")
    st = os.fstat(f.fileno())
    return f, {"JOURNAL_STREAM": "%d:%d" % (st.st_dev, st.st_ino)}


def test_under_systemd_without_the_journal_socket_lines_get_priorities(tmp_path):
    out, environ = journal_stream(tmp_path / "out")
    with out:
        setup = LogSetup(configmod.Log(), out, environ=environ,
                         journal_socket=str(tmp_path / "none"))
        Logger(namespace="rotordream.motor.service",
               observer=LogPublisher(setup.observer)).warn("x", event="motor_silent")
        out.seek(0)
        assert out.read().startswith("<4>level=warn area=motor event=motor_silent")


def test_an_inherited_journal_stream_for_another_stream_is_ignored(tmp_path):
    other, environ = journal_stream(tmp_path / "other")
    other.close()
    with open(tmp_path / "out", "w+") as out:
        LogSetup(configmod.Log(), out, environ=environ).observer(
            logged(event="daemon_start"))
        out.seek(0)
        line = out.read()
    assert line[:4].isdigit() and "event=daemon_start" in line


def test_credentials_in_urls_are_redacted():
    line = format_line(logged(namespace="twisted.python.log",
                              format='"GET /api/v1?token=abc123&x=1 HTTP/1.1" 101'))
    assert "abc123" not in line and "token=<redacted>&x=1" in line


def parse_datagram(data):
    """The native journal protocol back into {FIELD: value}."""
    fields = {}
    while data:
        line, _, rest = data.partition(b"\n")
        if b"=" in line:
            key, _, value = line.partition(b"=")
            data = rest
        else:
            key = line
            size = struct.unpack("<Q", rest[:8])[0]
            value, data = rest[8:8 + size], rest[8 + size + 1:]
        fields[key.decode()] = value.decode()
    return fields


def test_journal_entries_carry_priority_and_fields(tmp_path):
    path = str(tmp_path / "journal.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    try:
        out, environ = journal_stream(tmp_path / "out")
        setup = LogSetup(configmod.Log(), out, environ=environ, journal_socket=path)
        assert isinstance(setup.writer, JournalObserver)
        Logger(namespace="rotordream.auth.service", observer=LogPublisher(setup.observer)).info(
            "failed login for {user}", event="login_failed", user="bob", client="10.0.0.9",
            password="never")
        fields = parse_datagram(server.recv(65536))
    finally:
        server.close()
    assert fields["PRIORITY"] == "6" and fields["SYSLOG_IDENTIFIER"] == "rotordream"
    assert fields["ROTORDREAM_EVENT"] == "login_failed"
    assert fields["ROTORDREAM_CLIENT"] == "10.0.0.9" and fields["ROTORDREAM_USER"] == "bob"
    assert fields["ROTORDREAM_PASSWORD"] == REDACTED
    out.seek(0)
    assert "never" not in fields["MESSAGE"] and out.read() == ""
    out.close()


def test_a_value_with_a_newline_uses_the_binary_journal_form():
    fields = parse_datagram(journal_datagram([("MESSAGE", "a\nb"), ("PRIORITY", "6")]))
    assert fields == {"MESSAGE": "a\nb", "PRIORITY": "6"}


def test_journal_fields_name_every_part_of_the_line():
    names = [k for k, _ in journal_fields(logged(event="rtsp_play", stream="stream2"))]
    assert names[:3] == ["MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER"]
    assert "ROTORDREAM_STREAM" in names and "ROTORDREAM_LEVEL" in names


def test_level_names_match_twisted():
    for name in configmod.LOG_LEVELS:
        assert LogLevel.levelWithName(name).name == name
