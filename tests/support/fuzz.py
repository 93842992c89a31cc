"""What every fuzz target shares: one reproducible settings profile, byte mutation, chunking,
and a watch on Twisted's log for failures.

CI runs a fixed, derandomized, database-less search (the same examples every run).
``ROTORDREAM_FUZZ_SCALE=20`` multiplies every example budget for a longer local hunt, and
``ROTORDREAM_FUZZ_RANDOM=1`` draws fresh random examples instead of the fixed ones.
"""

import contextlib
import gc
import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from twisted.logger import globalLogPublisher

SCALE = float(os.environ.get("ROTORDREAM_FUZZ_SCALE", "1"))
RANDOM = os.environ.get("ROTORDREAM_FUZZ_RANDOM") == "1"


def fuzz_settings(max_examples, **kw):
    """Hypothesis settings for one target: ``max_examples`` (scaled), no deadline, reproducible."""
    return settings(max_examples=max(1, int(max_examples * SCALE)), deadline=None,
                    derandomize=not RANDOM, database=None, print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much,
                                           HealthCheck.function_scoped_fixture,
                                           HealthCheck.large_base_example],
                    **kw)


# Byte strings that break parsers more often than random bytes do: separators, limits
# around integer widths, non-ASCII digits (str.isdigit() is true, int() may fail),
# IPv6 brackets, XML markup and entities.
INTERESTING = [
    b"", b"\r\n", b"\r\n\r\n", b"\n", b"\r", b"\x00", b"\xff", b"\xc0\x80", b" ", b"\t",
    b";", b",", b"=", b"-", b":", b"/", b"?", b"$", b"0", b"-1", b"255", b"256", b"65535",
    b"65536", b"70000", b"2147483648", b"4294967296", b"18446744073709551616",
    b"9" * 40, b"1e309", b"nan", b"inf", "\u00b2".encode(), "\u0661\u0662".encode(),
    "\uff11".encode(), b"%", b"%00", b"%ff", b"%2F", b"[", b"]", b"[::1", b"..", b"<", b">",
    b"&", b"&amp;", b"&#0;", b"&#x110000;", b"<![CDATA[", b"]]>", b"<!DOCTYPE a>",
    b"<!ENTITY", b"\"", b"'", b"\\", b"\xef\xbb\xbf", b"\xed\xa0\x80",
]


def hostile_text():
    """Short strings that are almost, or not at all, what a field expects."""
    token = st.sampled_from([t.decode("utf-8", "replace") for t in INTERESTING])
    number = st.integers(-2 ** 70, 2 ** 70).map(str)
    return st.one_of(token, number, st.tuples(st.one_of(token, number), token, number).map(
        "".join), st.text(st.characters(exclude_categories=["Cs"]), max_size=12))


# Numbers as a hostile client writes them: Unicode digits (str.isdigit() is true for "²",
# int() takes "١٢" and "１"), signs, underscores, exponents, huge, hex.
NUMBERS = ["\u00b2", "\u0661\u0662", "\uff11", "\u0663" + "4", "1\u00b2", " 1", "+1", "-1",
           "1_0", "0x10", "1e3", "1.5", "", "00", "0" * 30 + "1", "9" * 30, "4294967296",
           "65536", "70000", "-0", "nan", "inf"]


def hostile_number():
    """A numeric field's value that is not a plain small decimal number."""
    return st.one_of(st.sampled_from(NUMBERS), st.integers(-2 ** 70, 2 ** 70).map(str))


@st.composite
def mutated(draw, seeds, max_ops=6):
    """Bytes drawn from ``seeds`` (a strategy) after a few random edits.

    Edits: flip a byte, insert random or interesting bytes, delete or duplicate a span,
    overwrite a span with an interesting token, truncate.
    """
    data = bytearray(draw(seeds))
    for _ in range(draw(st.integers(0, max_ops))):
        op = draw(st.sampled_from(("flip", "insert", "token", "delete", "dup", "replace",
                                   "truncate")))
        pos = draw(st.integers(0, len(data)))
        if op == "flip" and data:
            pos = min(pos, len(data) - 1)
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "token":
            data[pos:pos] = draw(st.sampled_from(INTERESTING))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 16))]
        elif op == "dup":
            span = data[pos:pos + draw(st.integers(1, 32))]
            data[pos:pos] = span * draw(st.integers(1, 4))
        elif op == "replace":
            end = pos + draw(st.integers(0, 8))
            data[pos:end] = draw(st.sampled_from(INTERESTING))
        elif op == "truncate":
            del data[pos:]
    return bytes(data)


@st.composite
def chunked(draw, data, max_cuts=8):
    """``data`` split at a few random points (the pieces join back to ``data``)."""
    if not data:
        return [data]
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(data) - 1)),
                                    max_size=max_cuts))))
    bounds = [0] + cuts + [len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:]) if a < b]


class LoggedFailures:
    """Twisted log events that carry a failure or a traceback, gathered while watching."""

    def __init__(self):
        self.events = []

    def __call__(self, event):
        text = str(event.get("log_format") or "") + str(event.get("log_text") or "")
        if "log_failure" in event or "Traceback" in text or "Unhandled" in text:
            self.events.append(event)

    def describe(self):
        """The failures, one formatted traceback each."""
        out = []
        for event in self.events:
            failure = event.get("log_failure")
            out.append(failure.getTraceback() if failure is not None else repr(event))
        return "\n".join(out)


@contextlib.contextmanager
def watch_log(collect=True):
    """Collect failures logged inside the block.

    With ``collect``, a garbage collection at the end flushes the "Unhandled error in
    Deferred" of Deferreds caught in reference cycles (slow: once per test, not per example).
    """
    seen = LoggedFailures()
    globalLogPublisher.addObserver(seen)
    try:
        yield seen
        if collect:
            gc.collect()
    finally:
        globalLogPublisher.removeObserver(seen)


def assert_no_failures(seen):
    """Fail with the logged tracebacks, if any."""
    assert not seen.events, "failures were logged:\n" + seen.describe()
