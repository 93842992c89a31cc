"""The motor protocol codec: framing, checksums, round trips, damage."""

import pytest

from rotordream.motor.codec import (Command, CodecError, Reply, Report, checksum, frame,
                                    parse_from_controller, parse_from_host)


def test_checksum_is_the_xor_of_the_body():
    assert checksum("1 ID") == "%02X" % (ord("1") ^ ord(" ") ^ ord("I") ^ ord("D"))
    assert frame("1 ID") == b"1 ID*" + checksum("1 ID").encode() + b"\n"


def test_round_trips():
    cmd = Command(7, "MOVE", ["ABS", "10.5", "-3"])
    assert parse_from_host(cmd.encode().rstrip(b"\n")) == cmd
    ok = Reply(7, True, {"model": "RD-1", "fw": "1.0"})
    assert parse_from_controller(ok.encode().rstrip(b"\n")) == ok
    err = Reply(8, False, code="LIMIT", message="pan 200 outside -170..170")
    assert parse_from_controller(err.encode().rstrip(b"\n")) == err
    rep = Report({"pan": "1.0", "state": "IDLE"})
    assert parse_from_controller(rep.encode().rstrip(b"\r\n")) == rep
    assert parse_from_controller(rep.encode().replace(b"\n", b"\r")) == rep


@pytest.mark.parametrize("line", [b"1 OK*00", b"garbage", b"\xff\xfe*11", b"1 ID*ZZ",
                                  b"x" * 300, b"OK*" + checksum("OK").encode()])
def test_damaged_lines_raise_one_error_type(line):
    with pytest.raises(CodecError):
        parse_from_controller(line)
