"""RTCP receiver reports as GStreamer and FFmpeg really send them: parsed, and serialized back."""

import glob
import os
import struct

import pytest

from rotordream.rtp.packet import PacketError, ReceiverReport, parse_rtcp, sdes_cname

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "rtp")
CAPTURES = sorted(glob.glob(os.path.join(FIXTURES, "*-rtcp-[0-9]*.bin")))
CNAME, TOOL = 1, 6


def read(path):
    with open(path, "rb") as f:
        return f.read()


def peer(path):
    return os.path.basename(path).split("-")[0]


def packets(data):
    """The packets of a compound, as (payload type, bytes)."""
    out, offset = [], 0
    while offset < len(data):
        length = struct.unpack("!H", data[offset + 2:offset + 4])[0]
        out.append((data[offset + 1], data[offset:offset + 4 + 4 * length]))
        offset += 4 + 4 * length
    return out


def sdes_items(packet):
    """(SSRC, [(item type, text)]) of a one-chunk SDES packet."""
    assert packet[0] & 0x1F == 1
    ssrc = struct.unpack("!I", packet[4:8])[0]
    items, offset = [], 8
    while packet[offset] != 0:
        kind, length = packet[offset], packet[offset + 1]
        items.append((kind, packet[offset + 2:offset + 2 + length].decode()))
        offset += 2 + length
    # END, then zeros up to the next 32-bit boundary.
    assert set(packet[offset:]) == {0} and len(packet) % 4 == 0
    return ssrc, items


def test_there_are_captures_of_both_peers():
    assert {peer(p) for p in CAPTURES} == {"ffmpeg", "gstreamer"}


@pytest.mark.parametrize("path", CAPTURES, ids=os.path.basename)
def test_receiver_report_round_trip(path):
    data = read(path)
    parsed = parse_rtcp(data)
    # A receiver report then SDES (skipped by the parser, which keeps SR, RR and BYE).
    assert [pt for pt, _ in packets(data)] == [201, 202]
    assert len(parsed) == 1 and isinstance(parsed[0], ReceiverReport)
    report = parsed[0]
    assert bytes(report) == packets(data)[0][1]
    assert len(report.reports) == 1
    block = report.reports[0]
    assert block.fraction_lost == 0
    assert block.lsr and block.dlsr  # it had our sender report
    sdes = packets(data)[1][1]
    ssrc, items = sdes_items(sdes)
    assert ssrc == report.ssrc and items[0][0] == CNAME and items[0][1]
    if peer(path) == "gstreamer":
        # GStreamer reports a cumulative loss of -1 (duplicates make it negative, RFC 3550
        # A.3): 0xFFFFFF on the wire, which the 24-bit signed field must round-trip.
        assert block.packets_lost == -1
        assert [k for k, _ in items] == [CNAME, TOOL] and items[1][1] == "GStreamer"
    else:
        # FFmpeg reports as the source's SSRC plus one, with its host name as CNAME only:
        # the SDES is exactly what our own builder makes of those.
        assert block.packets_lost == 0
        assert report.ssrc == (block.ssrc + 1) & 0xFFFFFFFF
        assert [k for k, _ in items] == [CNAME]
        assert sdes_cname(report.ssrc, items[0][1]) == sdes


@pytest.mark.parametrize("path", CAPTURES, ids=os.path.basename)
def test_a_report_cut_short_is_refused(path):
    rr = packets(read(path))[0][1]
    for end in range(1, len(rr)):
        with pytest.raises(PacketError):
            parse_rtcp(rr[:end])


@pytest.mark.parametrize("name", ["ffmpeg", "gstreamer"])
def test_successive_reports_of_one_peer(name):
    first, second = (parse_rtcp(read(os.path.join(FIXTURES, "%s-rtcp-%d.bin" % (name, i))))[0]
                     for i in (0, 1))
    assert first.ssrc == second.ssrc
    a, b = first.reports[0], second.reports[0]
    assert a.ssrc == b.ssrc
    assert b.highest_sequence > a.highest_sequence
    # Either a later sender report of ours, or the same one longer ago (DLSR, 1/65536 s).
    assert b.lsr != a.lsr or b.dlsr > a.dlsr


def test_ffmpeg_punch_is_an_empty_receiver_report():
    # FFmpeg opens the UDP path with an RTP header and this: an RR of SSRC 0, no blocks.
    data = read(os.path.join(FIXTURES, "ffmpeg-rtcp-punch.bin"))
    assert parse_rtcp(data) == [ReceiverReport(0, [])]
    assert bytes(ReceiverReport(0, [])) == data
