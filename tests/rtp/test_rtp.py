"""RTP/RTCP packets and H.264 packetization: round trips on real encoder output."""

import struct

import av
import numpy as np
import pytest

from rotordream.media.encoder import EncoderSettings, H264Encoder
from rotordream.rtp.clock import ntp_timestamp, ntp_to_unix, rtp_time
from rotordream.rtp.h264 import FU_A, STAP_A, depacketize, payloads
from rotordream.rtp.packet import (Bye, PacketError, ReceiverReport, RtpPacket, SenderReport,
                                   parse_rtcp, sdes_cname)


def encoded_units(n=12, size=(320, 240)):
    enc = H264Encoder(EncoderSettings(size[0], size[1], 30, 800, 6))
    units = []
    for i in range(n):
        frame = av.VideoFrame.from_ndarray(
            np.random.default_rng(i).integers(0, 255, (size[1], size[0], 3), np.uint8), "rgb24")
        frame = frame.reformat(format="yuv420p")
        units.extend(enc.encode(frame, i * 3000))
    return units


def test_rtp_round_trip_and_errors():
    p = RtpPacket(96, 65535, 2 ** 32 - 1, 0xDEADBEEF, b"\x65abc", marker=True)
    raw = bytes(p)
    assert raw[:2] == b"\x80\xe0" and RtpPacket.parse(raw) == p
    with pytest.raises(PacketError):
        RtpPacket.parse(b"\x00" * 12)
    with pytest.raises(PacketError):
        RtpPacket.parse(b"\x80")


def test_rtcp_sr_sdes_bye_rr_parse():
    sr = SenderReport(1234, ntp_timestamp(1_700_000_000.25), 90000, 10, 1000)
    raw = bytes(sr) + sdes_cname(1234, "cam@host") + bytes(Bye([1234]))
    parsed = parse_rtcp(raw)
    assert parsed[0] == sr and parsed[1] == Bye([1234])
    assert abs(ntp_to_unix(parsed[0].ntp_timestamp) - 1_700_000_000.25) < 1e-6
    rr = struct.pack("!BBHI", 0x81, 201, 7, 42) + struct.pack("!IIIIII", 1234, (64 << 24) | 3,
                                                                100, 77, 0, 0)
    (report,) = parse_rtcp(rr)
    assert isinstance(report, ReceiverReport) and report.reports[0].fraction_lost == 64
    assert report.reports[0].packets_lost == 3 and report.reports[0].jitter == 77
    with pytest.raises(PacketError):
        parse_rtcp(b"\x80\xc8\x00\x09" + b"\x00" * 8)
    for tail in (b"\x00", b"\x80\xc9", b"\x80\xc9\x00"):   # not a whole 32-bit word more
        with pytest.raises(PacketError):
            parse_rtcp(rr + tail)


def test_h264_payloads_round_trip_with_stap_a_and_fu_a():
    units = encoded_units()
    assert units[0].keyframe
    for unit in units:
        parts = payloads(unit.nals, 1400)
        assert all(len(p) <= 1400 for p in parts)
        if unit.keyframe:
            assert parts[0][0] & 0x1F == STAP_A
        assert depacketize(parts) == [n for n in unit.nals]
    big = [p for u in units for p in payloads(u.nals, 200) if p[0] & 0x1F == FU_A]
    assert big, "noise at 320x240 must need FU-A at a 200-byte MTU"
    # The decoder accepts what depacketizing gives back.
    codec = av.CodecContext.create("h264", "r")
    frames = []
    for unit in units:
        nals = depacketize(payloads(unit.nals, 300))
        frames += codec.decode(av.Packet(b"".join(b"\x00\x00\x00\x01" + n for n in nals)))
    assert len(frames) >= len(units) - 1 and frames[0].width == 320


def test_clock_helpers():
    assert rtp_time(2 ** 32 - 10, 20) == 10
    ntp = ntp_timestamp(0.5)
    assert ntp >> 32 == 2208988800 and (ntp & 0xFFFFFFFF) == 2 ** 31
