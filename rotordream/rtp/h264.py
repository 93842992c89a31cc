"""H.264 RTP packetization (RFC 6184, packetization-mode=1): single NAL, STAP-A, FU-A."""

import struct

from rotordream.h264 import is_parameter_set, nal_type

STAP_A = 24
FU_A = 28


def payloads(nals, mtu):
    """RTP payloads for one access unit's NAL units, each at most ``mtu`` bytes.

    SPS and PPS go together in one STAP-A ahead of the picture; a NAL larger
    than ``mtu`` is cut into FU-A fragments; others go as single NAL units.
    """
    out = []
    params = [n for n in nals if n and is_parameter_set(n)]
    rest = [n for n in nals if n and not is_parameter_set(n)]
    if params:
        nri = max(n[0] & 0x60 for n in params)
        stap = bytes([nri | STAP_A]) + b"".join(struct.pack("!H", len(n)) + n for n in params)
        if len(stap) <= mtu:
            out.append(stap)
        else:
            rest = params + rest
    for nal in rest:
        if len(nal) <= mtu:
            out.append(nal)
            continue
        header = nal[0]
        indicator = bytes([(header & 0xE0) | FU_A])
        kind = nal_type(nal)
        data = nal[1:]
        step = mtu - 2
        for start in range(0, len(data), step):
            first = start == 0
            last = start + step >= len(data)
            fu_header = bytes([(0x80 if first else 0) | (0x40 if last else 0) | kind])
            out.append(indicator + fu_header + data[start:start + step])
    return out


def depacketize(payload_list):
    """Rebuild NAL units from RTP payloads (for tests and tools)."""
    nals = []
    fu = None
    for p in payload_list:
        kind = p[0] & 0x1F
        if kind == STAP_A:
            i = 1
            while i + 2 <= len(p):
                size = struct.unpack("!H", p[i:i + 2])[0]
                nals.append(p[i + 2:i + 2 + size])
                i += 2 + size
        elif kind == FU_A:
            if p[1] & 0x80:
                fu = bytearray([(p[0] & 0xE0) | (p[1] & 0x1F)])
            if fu is not None:
                fu += p[2:]
                if p[1] & 0x40:
                    nals.append(bytes(fu))
                    fu = None
        else:
            nals.append(bytes(p))
    return nals
