"""Fuzz the RTP and RTCP parsers: round trips of every packet we build, and random or mutated
bytes that may only give packets or PacketError."""

import struct

from hypothesis import given
from hypothesis import strategies as st

from rotordream.rtp.packet import (Bye, PacketError, ReceiverReport, ReportBlock, RtpPacket,
                                   SenderReport, parse_rtcp, sdes_cname)
from tests.support.fuzz import fuzz_settings, mutated

U16, U32 = st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)

rtp_packets = st.builds(RtpPacket, payload_type=st.integers(0, 127), sequence=U16,
                        timestamp=U32, ssrc=U32, payload=st.binary(max_size=300),
                        marker=st.booleans())
report_blocks = st.builds(ReportBlock, ssrc=U32, fraction_lost=st.integers(0, 255),
                          packets_lost=st.integers(-(1 << 23), (1 << 23) - 1),
                          highest_sequence=U32, jitter=U32, lsr=U32, dlsr=U32)
_BLOCKS = st.lists(report_blocks, max_size=31)
sender_reports = st.builds(SenderReport, ssrc=U32, ntp_timestamp=st.integers(0, 2 ** 64 - 1),
                           rtp_timestamp=U32, packet_count=U32, octet_count=U32,
                           reports=_BLOCKS)
receiver_reports = st.builds(ReceiverReport, ssrc=U32, reports=_BLOCKS)
byes = st.builds(Bye, sources=st.lists(U32, max_size=31))
rtcp_packets = st.one_of(sender_reports, receiver_reports, byes)


@st.composite
def rtp_wire(draw):
    """(bytes, payload) of an RTP packet with CSRCs, a header extension and padding."""
    csrcs = draw(st.lists(U32, max_size=15))
    ext = draw(st.none() | st.binary(max_size=40).map(lambda b: b + b"\0" * (-len(b) % 4)))
    pad = draw(st.integers(0, 255))
    payload = draw(st.binary(max_size=200))
    b0 = 0x80 | len(csrcs) | (0x10 if ext is not None else 0) | (0x20 if pad else 0)
    raw = struct.pack("!BBHII", b0, draw(st.integers(0, 255)), draw(U16), draw(U32), draw(U32))
    raw += b"".join(struct.pack("!I", c) for c in csrcs)
    if ext is not None:
        raw += struct.pack("!HH", draw(U16), len(ext) // 4) + ext
    raw += payload
    if pad:
        raw += b"\0" * (pad - 1) + bytes([pad])
    return raw, payload


def compound():
    """Bytes of a compound RTCP packet (SR/RR/BYE/SDES in any order)."""
    one = st.one_of(rtcp_packets.map(bytes), st.builds(sdes_cname, U32, st.text(
        "abcdefghijklmnopqrstuvwxyz@.-", max_size=40)))
    return st.lists(one, min_size=1, max_size=4).map(b"".join)


@fuzz_settings(200)
@given(rtp_packets)
def test_rtp_round_trip(packet):
    assert RtpPacket.parse(bytes(packet)) == packet


@fuzz_settings(150)
@given(rtp_wire())
def test_rtp_csrcs_extension_and_padding_are_skipped(wire):
    raw, payload = wire
    assert RtpPacket.parse(raw).payload == payload


@fuzz_settings(200)
@given(rtcp_packets)
def test_rtcp_round_trip(packet):
    assert parse_rtcp(bytes(packet)) == [packet]


@fuzz_settings(100)
@given(st.lists(rtcp_packets, min_size=1, max_size=4))
def test_rtcp_compound_round_trip_skips_sdes(packets):
    raw = b"".join(bytes(p) + sdes_cname(1, "cam@host") for p in packets)
    assert parse_rtcp(raw) == packets


def _rtp_or_error(raw):
    try:
        packet = RtpPacket.parse(raw)
    except PacketError:
        return
    assert len(packet.payload) <= len(raw) - 12 and packet.payload in raw
    assert 0 <= packet.payload_type <= 127


def _rtcp_or_error(raw):
    try:
        packets = parse_rtcp(raw)
    except PacketError:
        return
    for p in packets:
        # Whatever parses must serialize again: the server may answer or log it.
        assert isinstance(p, (SenderReport, ReceiverReport, Bye))
        assert parse_rtcp(bytes(p)) == [p]


@fuzz_settings(300)
@given(mutated(st.one_of(rtp_packets.map(bytes), rtp_wire().map(lambda w: w[0]))))
def test_mutated_rtp_is_a_packet_or_packet_error(raw):
    _rtp_or_error(raw)


@fuzz_settings(300)
@given(mutated(compound()))
def test_mutated_rtcp_is_packets_or_packet_error(raw):
    _rtcp_or_error(raw)


@fuzz_settings(200)
@given(st.binary(max_size=200))
def test_random_bytes(raw):
    _rtp_or_error(raw)
    _rtcp_or_error(raw)
    # RTCP with a version-2 first byte, so the parser gets past its first check.
    _rtcp_or_error(b"\x80" + raw)


# Inputs the fuzzing found, kept as plain examples.
FOUND_RTCP = [
    b"\x81\xcb\x00\x00",                      # BYE claiming one source, with none
    b"\x85\xcb\x00\x01\x00\x00\x00\x01",      # BYE claiming five sources, with one
    # An RR whose report block runs past its own length into the next packet.
    b"\x81\xc9\x00\x01\x00\x00\x00\x01" + b"\x80\xcb\x00\x05" + b"\0" * 20,
]


def test_found_rtcp():
    for raw in FOUND_RTCP:
        try:
            parse_rtcp(raw)
        except PacketError:
            pass
