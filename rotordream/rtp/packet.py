"""RTP and RTCP packets as dataclasses with ``parse`` and ``__bytes__`` (RFC 3550)."""

import struct
from dataclasses import dataclass, field


class PacketError(ValueError):
    """Bytes that are not a valid RTP/RTCP packet."""


@dataclass
class RtpPacket:
    """One RTP packet (no CSRCs, no extension: what we send)."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False

    def __bytes__(self):
        return struct.pack("!BBHII", 0x80, (self.marker << 7) | self.payload_type,
                           self.sequence & 0xFFFF, self.timestamp & 0xFFFFFFFF,
                           self.ssrc) + self.payload

    @classmethod
    def parse(cls, data):
        """Parse RTP bytes (CSRCs and extensions are skipped)."""
        if len(data) < 12 or data[0] >> 6 != 2:
            raise PacketError("not an RTP packet")
        b0, b1, seq, ts, ssrc = struct.unpack("!BBHII", data[:12])
        offset = 12 + 4 * (b0 & 0x0F)
        if b0 & 0x10:
            if len(data) < offset + 4:
                raise PacketError("truncated RTP extension")
            offset += 4 + 4 * struct.unpack("!H", data[offset + 2:offset + 4])[0]
        end = len(data)
        if b0 & 0x20:
            end -= data[-1]
        if offset > end:
            raise PacketError("truncated RTP packet")
        return cls(b1 & 0x7F, seq, ts, ssrc, bytes(data[offset:end]), bool(b1 & 0x80))


def rtp_header(payload_type, sequence, timestamp, ssrc, marker):
    """The 12-byte RTP header, for packetizers that build many packets fast."""
    return struct.pack("!BBHII", 0x80, (marker << 7) | payload_type, sequence & 0xFFFF,
                       timestamp & 0xFFFFFFFF, ssrc)


@dataclass
class ReportBlock:
    """A reception report about one source."""

    ssrc: int
    fraction_lost: int
    packets_lost: int
    highest_sequence: int
    jitter: int
    lsr: int
    dlsr: int

    def __bytes__(self):
        lost = (self.fraction_lost << 24) | (self.packets_lost & 0xFFFFFF)  # 24-bit signed
        return struct.pack("!IIIIII", self.ssrc, lost, self.highest_sequence, self.jitter,
                           self.lsr, self.dlsr)


def _rtcp(packet_type, count, body):
    """One RTCP packet: header (version 2, ``count`` in the low 5 bits) and ``body``."""
    if not 0 <= count <= 31:
        raise ValueError("an RTCP packet carries at most 31 reports or sources")
    return struct.pack("!BBH", 0x80 | count, packet_type, len(body) // 4) + body


@dataclass
class SenderReport:
    """RTCP SR (PT 200)."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: list = field(default_factory=list)

    def __bytes__(self):
        body = struct.pack("!IQIII", self.ssrc, self.ntp_timestamp, self.rtp_timestamp & 0xFFFFFFFF,
                           self.packet_count & 0xFFFFFFFF, self.octet_count & 0xFFFFFFFF)
        return _rtcp(200, len(self.reports), body + b"".join(map(bytes, self.reports)))


@dataclass
class ReceiverReport:
    """RTCP RR (PT 201)."""

    ssrc: int
    reports: list = field(default_factory=list)

    def __bytes__(self):
        body = struct.pack("!I", self.ssrc) + b"".join(map(bytes, self.reports))
        return _rtcp(201, len(self.reports), body)


@dataclass
class Bye:
    """RTCP BYE (PT 203)."""

    sources: list

    def __bytes__(self):
        return _rtcp(203, len(self.sources), b"".join(struct.pack("!I", s) for s in self.sources))


def sdes_cname(ssrc, cname):
    """An RTCP SDES packet carrying a CNAME (sent with every SR, as RFC 3550 asks)."""
    item = bytes([1, len(cname)]) + cname.encode()
    chunk = struct.pack("!I", ssrc) + item + b"\x00"
    chunk += b"\x00" * (-len(chunk) % 4)
    return struct.pack("!BBH", 0x81, 202, len(chunk) // 4) + chunk


def _report_blocks(data, offset, end, count):
    blocks = []
    for _ in range(count):
        if end < offset + 24:  # the packet's own length, not the compound's
            raise PacketError("truncated report block")
        ssrc, lost_word, highest, jitter, lsr, dlsr = struct.unpack(
            "!IIIIII", data[offset:offset + 24])
        lost = lost_word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        blocks.append(ReportBlock(ssrc, lost_word >> 24, lost, highest, jitter, lsr, dlsr))
        offset += 24
    return blocks


def parse_rtcp(data):
    """Parse a compound RTCP packet into SR/RR/Bye objects (others are skipped)."""
    out = []
    offset = 0
    if len(data) < 4:
        raise PacketError("not an RTCP packet")
    while offset + 4 <= len(data):
        b0, pt, length = struct.unpack("!BBH", data[offset:offset + 4])
        if b0 >> 6 != 2:
            raise PacketError("not an RTCP packet")
        end = offset + 4 + 4 * length
        if end > len(data):
            raise PacketError("truncated RTCP packet")
        count = b0 & 0x1F
        if pt == 200 and end - offset >= 28:
            ssrc, ntp, rtp, pc, oc = struct.unpack("!IQIII", data[offset + 4:offset + 28])
            out.append(SenderReport(ssrc, ntp, rtp, pc, oc,
                                    _report_blocks(data, offset + 28, end, count)))
        elif pt == 201 and end - offset >= 8:
            ssrc = struct.unpack("!I", data[offset + 4:offset + 8])[0]
            out.append(ReceiverReport(ssrc, _report_blocks(data, offset + 8, end, count)))
        elif pt == 203:
            if end < offset + 4 + 4 * count:
                raise PacketError("truncated RTCP BYE")
            sources = struct.unpack("!%dI" % count, data[offset + 4:offset + 4 + 4 * count])
            out.append(Bye(list(sources)))
        offset = end
    if offset != len(data):
        raise PacketError("RTCP packet with %d trailing bytes" % (len(data) - offset))
    return out
