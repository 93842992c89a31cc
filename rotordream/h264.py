"""H.264 bitstream facts without I/O: NAL unit types, Annex B framing, parameter sets, keyframes.

The one place that knows how to read an H.264 NAL header (ITU-T H.264
7.3.1): media (encoder, hub), RTP packetization (rtp/h264.py), WebRTC and
recording all take these names from here.
"""

NAL_SLICE = 1    # a coded slice of a non-IDR picture
NAL_IDR = 5      # a coded slice of an IDR picture (a keyframe)
NAL_SEI = 6
NAL_SPS = 7      # sequence parameter set
NAL_PPS = 8      # picture parameter set
NAL_AUD = 9      # access unit delimiter

PARAMETER_SETS = (NAL_SPS, NAL_PPS)
START_CODE = b"\x00\x00\x00\x01"


def nal_type(nal):
    """The nal_unit_type (low five bits of the first byte) of a NAL unit; None when empty."""
    return nal[0] & 0x1F if nal else None


def split_annexb(data):
    """Split an Annex B byte string into NAL units (start codes removed)."""
    nals = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        start = i + 3
        j = data.find(b"\x00\x00\x01", start)
        end = len(data) if j < 0 else j
        # A 4-byte start code leaves a zero at the end of the previous NAL.
        nal = data[start:end]
        if j >= 0 and nal.endswith(b"\x00"):
            nal = nal.rstrip(b"\x00")
        if nal:
            nals.append(nal)
        i = j
    return nals


def join_annexb(nals):
    """NAL units as one Annex B byte string (a 4-byte start code before each)."""
    return b"".join(START_CODE + n for n in nals)


def is_parameter_set(nal):
    """True for an SPS or a PPS."""
    return nal_type(nal) in PARAMETER_SETS


def parameter_sets(nals, sps=b"", pps=b""):
    """(sps, pps): the last SPS and PPS among ``nals``, else the ones given."""
    for nal in nals:
        kind = nal_type(nal)
        if kind == NAL_SPS:
            sps = nal
        elif kind == NAL_PPS:
            pps = nal
    return sps, pps


def first_parameter_sets(nals):
    """(sps, pps): the first SPS and the first PPS among ``nals`` (b"" when missing)."""
    sps = next((n for n in nals if nal_type(n) == NAL_SPS), b"")
    pps = next((n for n in nals if nal_type(n) == NAL_PPS), b"")
    return sps, pps


def is_keyframe(nals):
    """True when the access unit holds an IDR slice (a decoder can start there)."""
    return any(nal_type(n) == NAL_IDR for n in nals)
