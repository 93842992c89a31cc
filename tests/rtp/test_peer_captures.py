"""RTCP receiver reports as GStreamer really sends them: parsed, and serialized back."""

import glob
import os
import struct

import pytest

from rotordream.rtp.packet import ReceiverReport, parse_rtcp

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "rtp")
CAPTURES = sorted(glob.glob(os.path.join(FIXTURES, "*-rtcp-*.bin")))


def packets(data):
    """The packets of a compound, as (payload type, bytes)."""
    out, offset = [], 0
    while offset < len(data):
        length = struct.unpack("!H", data[offset + 2:offset + 4])[0]
        out.append((data[offset + 1], data[offset:offset + 4 + 4 * length]))
        offset += 4 + 4 * length
    return out


def test_there_are_captures():
    assert CAPTURES


@pytest.mark.parametrize("path", CAPTURES, ids=os.path.basename)
def test_receiver_report_round_trip(path):
    with open(path, "rb") as f:
        data = f.read()
    parsed = parse_rtcp(data)
    # A receiver report then SDES (skipped by the parser, which keeps SR, RR and BYE).
    assert [pt for pt, _ in packets(data)] == [201, 202]
    assert len(parsed) == 1 and isinstance(parsed[0], ReceiverReport)
    report = parsed[0]
    assert bytes(report) == packets(data)[0][1]
    assert len(report.reports) == 1
    block = report.reports[0]
    # GStreamer reports a cumulative loss of -1 (duplicates make it negative, RFC 3550
    # A.3): 0xFFFFFF on the wire, which the 24-bit signed field must round-trip.
    assert block.fraction_lost == 0 and block.packets_lost == -1
    assert block.lsr and block.dlsr  # it had our sender report
