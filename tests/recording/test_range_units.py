"""The HTTP Range parser (rotordream.web.byteranges): RFC 9110 §14 forms, and abusive
requests (too many ranges, overlapping ones) refused, never amplified."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rotordream.web.byteranges import RangeNotSatisfiable, header_value, parse_range

SIZE = 1000


@pytest.mark.parametrize("header,expected", [
    ("bytes=0-499", [(0, 499)]),
    (b"bytes=0-499", [(0, 499)]),
    ("bytes=500-", [(500, 999)]),
    ("bytes=-200", [(800, 999)]),
    ("bytes=-5000", [(0, 999)]),          # a suffix longer than the file: all of it
    ("bytes=900-5000", [(900, 999)]),     # a last position past the end is clamped
    ("bytes=999-999", [(0 + 999, 999)]),
    ("BYTES=0-0", [(0, 0)]),              # the unit is case-insensitive
    ("bytes=0-0, -1", [(0, 0), (999, 999)]),
    ("bytes= 0-9 ,\t20-29,", [(0, 9), (20, 29)]),  # list whitespace and empty elements
    ("bytes=500-599,0-99", [(500, 599), (0, 99)]),  # kept in the order asked
    ("bytes=0-9,10-19", [(0, 9), (10, 19)]),       # adjacent is not overlapping
    ("bytes=0-9,2000-3000", [(0, 9)]),             # unsatisfiable parts are dropped
    ("bytes=00000000000000000000000000000010-19", [(10, 19)]),
    ("bytes=0-99999999999999999999999999999999999", [(0, 999)]),
])
def test_valid_ranges(header, expected):
    assert parse_range(header, SIZE, 8) == expected


@pytest.mark.parametrize("header", [
    "bytes", "bytes=", "bytes=,", "items=0-1", "bytes=abc", "bytes=5-1", "bytes=-",
    "bytes=1-2-3", "bytes=1_0-20", "bytes=+1-2", "bytes=\u0661-2", "bytes=0x10-20",
    "bytes=1 -2", "bytes=0-1,5-1", "", "=0-1", "bytes 0-1",
])
def test_invalid_headers_are_ignored(header):
    # Ignored: the whole file is sent with 200, as RFC 9110 §14.2 asks.
    assert parse_range(header, SIZE, 8) is None


@pytest.mark.parametrize("header", [
    "bytes=1000-", "bytes=5000-6000", "bytes=-0", "bytes=1000-1000,2000-",
])
def test_unsatisfiable(header):
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, SIZE, 8)


def test_an_empty_file_satisfies_no_range():
    for header in ("bytes=0-", "bytes=-1", "bytes=0-0"):
        with pytest.raises(RangeNotSatisfiable):
            parse_range(header, 0, 8)


def test_more_ranges_than_allowed_are_refused():
    ok = ",".join("%d-%d" % (i * 10, i * 10 + 4) for i in range(8))
    assert len(parse_range("bytes=" + ok, SIZE, 8)) == 8
    with pytest.raises(RangeNotSatisfiable, match="more than 8"):
        parse_range("bytes=" + ok + ",900-901", SIZE, 8)
    # Counted before anything is resolved: 10,000 parts cost one split.
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=" + ",".join(["0-1"] * 10000), SIZE, 8)


@pytest.mark.parametrize("header", [
    "bytes=0-970,0-970", "bytes=0-499,400-", "bytes=-600,0-500", "bytes=10-20,15-15",
    "bytes=500-,0-999",
])
def test_overlapping_ranges_are_refused(header):
    with pytest.raises(RangeNotSatisfiable, match="overlap"):
        parse_range(header, SIZE, 8)


def test_the_amplification_request_of_the_report():
    # 300 overlapping parts of bytes=0-970000 on a 1 MB file: refused, not 291 MB.
    header = "bytes=" + ",".join(["0-970000"] * 300)
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, 1000000, 8)
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=" + ",".join(["0-970000"] * 8), 1000000, 8)


def test_max_ranges_below_one_ignores_ranges():
    assert parse_range("bytes=0-1", SIZE, 0) is None


def test_never_more_bytes_than_the_file():
    # Whatever is accepted is a set of disjoint ranges inside the file.
    for header in ("bytes=0-9,20-29,-5", "bytes=-2000", "bytes=990-,0-0", "bytes=0-"):
        ranges = parse_range(header, SIZE, 8)
        assert sum(last - first + 1 for first, last in ranges) <= SIZE
        assert all(0 <= first <= last < SIZE for first, last in ranges)


def test_header_value_round_trips():
    ranges = parse_range("bytes=-5, 0-9", SIZE, 8)
    assert header_value(ranges) == b"bytes=995-999,0-9"
    assert parse_range(header_value(ranges), SIZE, 8) == ranges


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.one_of(st.text(max_size=80),
                 st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 3000)),
                                    st.one_of(st.none(), st.integers(0, 3000))),
                          max_size=12).map(lambda parts: "bytes=" + ",".join(
                              "%s-%s" % ("" if a is None else a, "" if b is None else b)
                              for a, b in parts))),
       st.integers(0, 2000), st.integers(1, 10))
def test_any_header_is_ignored_refused_or_disjoint_ranges_inside_the_file(header, size, most):
    try:
        ranges = parse_range(header, size, most)
    except RangeNotSatisfiable:
        return
    if ranges is None:
        return
    assert 1 <= len(ranges) <= most
    assert all(0 <= first <= last < size for first, last in ranges)
    ordered = sorted(ranges)
    assert all(b[0] > a[1] for a, b in zip(ordered, ordered[1:]))
