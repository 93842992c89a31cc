"""The pure H.264 module: NAL types, Annex B framing, parameter sets, keyframes."""

from rotordream import h264
from tests.rtp.test_rtp import encoded_units


def test_annexb_round_trip_with_three_and_four_byte_start_codes():
    nals = [b"\x67\x42\x00\x1f", b"\x68\xce\x3c\x80", b"\x65\x88\x84\x00\x10"]
    assert h264.split_annexb(h264.join_annexb(nals)) == nals
    mixed = b"\x00\x00\x01" + nals[0] + b"\x00\x00\x00\x01" + nals[1] + b"\x00\x00\x01" + nals[2]
    assert h264.split_annexb(mixed) == nals
    assert h264.split_annexb(b"") == [] and h264.split_annexb(b"\x00\x00\x01") == []


def test_types_parameter_sets_and_keyframes_of_real_encoder_output():
    units = encoded_units(8)
    first = units[0]
    assert first.keyframe and h264.is_keyframe(first.nals)
    sps, pps = h264.parameter_sets(first.nals)
    assert h264.nal_type(sps) == h264.NAL_SPS and h264.nal_type(pps) == h264.NAL_PPS
    assert h264.first_parameter_sets(first.nals) == (sps, pps)
    assert all(h264.is_parameter_set(n) for n in (sps, pps))
    for unit in units:
        assert h264.is_keyframe(unit.nals) == unit.keyframe
    later = [u for u in units if not u.keyframe][0]
    assert h264.parameter_sets(later.nals, b"s", b"p") == (b"s", b"p")
    assert h264.first_parameter_sets(later.nals) == (b"", b"")
    assert h264.nal_type(b"") is None
