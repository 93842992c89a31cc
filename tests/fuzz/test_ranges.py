"""Fuzz the HTTP Range parser (rotordream.web.byteranges): any header gives None (ignore), the
byte ranges to send, or RangeNotSatisfiable, never anything else; what it returns is inside
the file, at most max_ranges, never overlapping (no amplification), agrees with a plain
reading of RFC 9110 §14.1.2, and parses back the same from its canonical header."""

from hypothesis import given
from hypothesis import strategies as st

from rotordream.web.byteranges import RangeNotSatisfiable, header_value, parse_range
from tests.support.fuzz import NUMBERS, fuzz_settings, hostile_text, mutated

SIZES = st.integers(0, 5000) | st.sampled_from([0, 1, 2 ** 40])
MAX_RANGES = st.integers(0, 10)
_POS = st.integers(0, 6000) | st.integers(0, 10 ** 30)
specs = st.one_of(st.tuples(_POS, _POS), st.tuples(_POS, st.none()),
                  st.tuples(st.none(), _POS))


def spec_text(spec):
    first, last = spec
    return "%s-%s" % ("" if first is None else first, "" if last is None else last)


def model(spec_list, size, max_ranges):
    """RFC 9110 §14.1.2 read plainly, with this server's refusals (count, overlap)."""
    if max_ranges < 1 or not spec_list:
        return "ignore"
    if len(spec_list) > max_ranges:
        return "refuse"
    if any(f is not None and l is not None and l < f for f, l in spec_list):
        return "ignore"
    out = []
    for first, last in spec_list:
        if first is None:
            if last > 0 and size > 0:
                out.append((max(0, size - last), size - 1))
        elif first < size:
            out.append((first, size - 1 if last is None else min(last, size - 1)))
    if not out:
        return "refuse"
    ordered = sorted(out)
    if any(b[0] <= a[1] for a, b in zip(ordered, ordered[1:])):
        return "refuse"
    return out


def outcome(header, size, max_ranges):
    try:
        ranges = parse_range(header, size, max_ranges)
    except RangeNotSatisfiable as e:
        assert isinstance(e.reason, str)
        return "refuse"
    if ranges is None:
        return "ignore"
    assert 1 <= len(ranges) <= max_ranges
    for first, last in ranges:
        assert 0 <= first <= last < size
    ordered = sorted(ranges)
    assert all(b[0] > a[1] for a, b in zip(ordered, ordered[1:]))  # never the same byte twice
    assert sum(last - first + 1 for first, last in ranges) <= size
    assert parse_range(header_value(ranges), size, max_ranges) == ranges
    return ranges


def headers():
    """Range headers as clients write them: the unit, list whitespace, empty elements."""
    return st.builds(
        lambda unit, ws, parts: unit + "=" + ",".join(ws + spec_text(p) + ws for p in parts),
        st.sampled_from(["bytes", "BYTES", "Bytes", " bytes"]), st.sampled_from(["", " ", "\t"]),
        st.lists(specs, max_size=12))


@fuzz_settings(400)
@given(st.lists(specs, max_size=12), SIZES, MAX_RANGES)
def test_matches_the_rfc_reading(spec_list, size, max_ranges):
    header = "bytes=" + ",".join(spec_text(s) for s in spec_list)
    assert outcome(header, size, max_ranges) == model(spec_list, size, max_ranges)


@fuzz_settings(300)
@given(mutated(headers().map(str.encode)), SIZES, MAX_RANGES)
def test_mutated_headers(raw, size, max_ranges):
    outcome(raw, size, max_ranges)
    outcome(raw.decode("latin-1"), size, max_ranges)


@fuzz_settings(200)
@given(st.one_of(st.text(max_size=40), hostile_text(),
                 st.lists(st.sampled_from(NUMBERS + ["-", ",", "=", " "]), max_size=8).map(
                     lambda parts: "bytes=" + "".join(parts))), SIZES, MAX_RANGES)
def test_random_headers(header, size, max_ranges):
    outcome(header, size, max_ranges)


def test_many_overlapping_ranges_are_refused_not_amplified():
    # Issue 13 item 9: 300 copies of a big range made 291 MB from a 1 MB file.
    assert outcome("bytes=" + ",".join(["0-970000"] * 300), 1_000_000, 8) == "refuse"
    assert outcome("bytes=" + ",".join(["0-970000"] * 2), 1_000_000, 8) == "refuse"
