"""HTTP Range (RFC 9110 §14) for a file of known size: a pure parser, no request in sight.

:func:`parse_range` turns a ``Range`` header value into the byte ranges to send,
or says to ignore it (serve the whole file) or to refuse it (416). Abusive
requests are refused rather than served (RFC 9110 §14.2 allows either): more
than ``max_ranges`` ranges, or ranges that overlap, which could otherwise make
one small request send the same bytes hundreds of times.
"""

import re

# One range-spec: "first-last", "first-" or "-suffix" (ASCII digits only: int() would
# also take "1_000", "+5" and non-ASCII digits).
_SPEC = re.compile(r"\A([0-9]*)-([0-9]*)\Z")
_OWS = " \t"
# A position longer than this is past any file we serve; int() of very long digit
# strings is slow (and refused past 4300 digits).
_MAX_DIGITS = 20


class RangeNotSatisfiable(ValueError):
    """The Range header is valid but is refused: answer 416 with ``bytes */size``."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def _number(digits):
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= _MAX_DIGITS else 10 ** _MAX_DIGITS


def parse_range(header, size, max_ranges):
    """The ``(first, last)`` byte positions (inclusive) to send, in the order asked.

    ``header`` is the Range value (str or bytes), ``size`` the file's length.
    Returns None when the header must be ignored (not a ``bytes`` range, bad syntax,
    or ``max_ranges`` < 1): the whole file is then sent with 200. Raises
    :class:`RangeNotSatisfiable` when no range overlaps the file, when there are
    more than ``max_ranges`` ranges, or when two of them overlap.
    """
    if max_ranges < 1 or header is None:
        return None
    if isinstance(header, bytes):
        header = header.decode("latin-1")
    unit, sep, ranges = header.partition("=")
    if not sep or unit.strip(_OWS).lower() != "bytes":
        return None
    # A list element may be empty and may have whitespace around it (RFC 9110 §5.6.1).
    specs = [s.strip(_OWS) for s in ranges.split(",")]
    specs = [s for s in specs if s]
    if not specs:
        return None
    if len(specs) > max_ranges:
        raise RangeNotSatisfiable("more than %d ranges" % max_ranges)
    parsed = []
    for spec in specs:
        m = _SPEC.match(spec)
        if m is None or (not m.group(1) and not m.group(2)):
            return None
        first = _number(m.group(1)) if m.group(1) else None
        last = _number(m.group(2)) if m.group(2) else None
        if first is not None and last is not None and last < first:
            return None  # invalid, so the whole header is ignored (§14.1.1)
        parsed.append((first, last))
    out = []
    for first, last in parsed:
        if first is None:  # a suffix: the last `last` bytes
            if last == 0 or size == 0:
                continue
            first, last = max(0, size - last), size - 1
        elif first >= size:
            continue
        else:
            last = size - 1 if last is None else min(last, size - 1)
        out.append((first, last))
    if not out:
        raise RangeNotSatisfiable("no range overlaps the %d bytes" % size)
    ordered = sorted(out)
    for (_, prev_last), (first, _) in zip(ordered, ordered[1:]):
        if first <= prev_last:
            raise RangeNotSatisfiable("overlapping ranges")
    return out


def header_value(ranges):
    """A canonical Range header for resolved ``ranges`` (what a file server then sees)."""
    return ("bytes=" + ",".join("%d-%d" % r for r in ranges)).encode("ascii")
