"""Fuzz the RTSP request parser: random bytes, and real requests mutated, fed whole and in
random pieces. Only ParseError may come out, and the pieces must parse as the whole does."""

import re
import string
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rotordream.rtsp.message import Interleaved, ParseError, Request, RequestParser
from tests.support.fuzz import chunked, fuzz_settings, hostile_number, hostile_text, mutated

METHODS = ["OPTIONS", "DESCRIBE", "SETUP", "PLAY", "PAUSE", "TEARDOWN", "GET_PARAMETER",
           "SET_PARAMETER", "ANNOUNCE", "RECORD"]
URIS = ["rtsp://h/stream1", "rtsp://127.0.0.1:8554/stream1/trackID=0", "*",
        "rtsp://[::1]:554/stream2?tcp", "rtsp://[::1/stream1", "rtsp://h/recording/abc",
        "rtsp://h/stream1?token=%00%ff", "/stream1"]
_NAME = st.text(string.ascii_letters + string.digits + "-_.", min_size=1, max_size=16).filter(
    lambda n: n.lower() not in ("cseq", "content-length"))
# Values as a parser hands them back: no CR or LF, no surrounding white space.
_VALUE = st.text(st.characters(exclude_characters="\r\n", exclude_categories=["Cs"]),
                 max_size=40).map(str.strip)
_URI = st.one_of(st.sampled_from(URIS),
                 st.text(st.characters(exclude_characters="\r\n ", exclude_categories=["Cs"]),
                         min_size=1, max_size=60))


@st.composite
def requests(draw):
    """(bytes, expected event tuple) of one well-formed request."""
    method = draw(st.one_of(st.sampled_from(METHODS),
                            st.from_regex(r"[A-Z][A-Z_]{0,31}", fullmatch=True)))
    uri = draw(_URI)
    cseq = str(draw(st.integers(0, 999_999_999)))
    headers = [("CSeq", cseq)] + draw(st.lists(st.tuples(_NAME, _VALUE), max_size=8))
    body = draw(st.one_of(st.just(b""), st.binary(max_size=200)))
    if body:
        headers.append(("Content-Length", str(len(body))))
    head = "%s %s RTSP/1.0\r\n" % (method, uri) + "".join("%s: %s\r\n" % h for h in headers)
    return head.encode() + b"\r\n" + body, ("request", method, uri, "RTSP/1.0", headers, body)


@st.composite
def frames(draw):
    """(bytes, expected event tuple) of one interleaved frame."""
    channel = draw(st.integers(0, 255))
    data = draw(st.binary(max_size=100))
    return b"$" + struct.pack("!BH", channel, len(data)) + data, ("frame", channel, data)


def either(valid, hostile=None):
    """Mostly ``valid``, sometimes a hostile string in its place."""
    return st.one_of(valid, valid, hostile if hostile is not None else hostile_text())


@st.composite
def hostile_requests(draw):
    """The bytes of a request whose every field may be replaced by something hostile."""
    method = draw(either(st.sampled_from(METHODS)))
    uri = draw(either(_URI))
    version = draw(either(st.just("RTSP/1.0"), st.sampled_from(["RTSP/2.0", "HTTP/1.1", "RTSP/"])))
    body = draw(st.binary(max_size=64))
    headers = [(draw(either(st.just("CSeq"))),
                draw(either(st.integers(0, 999).map(str), hostile_number()))),
               ("Content-Length", draw(either(st.just(str(len(body))), hostile_number())))]
    headers += draw(st.lists(st.tuples(either(_NAME), either(_VALUE)), max_size=4))
    headers = draw(st.permutations(headers))
    head = "%s %s %s\r\n" % (method, uri, version) + "".join("%s: %s\r\n" % h for h in headers)
    return head.encode() + b"\r\n" + body


def stream():
    """A pipeline of requests and interleaved frames, with keep-alive CRLFs between some."""
    item = st.one_of(requests(), frames(), st.just((b"\r\n", None)))
    return st.lists(item, min_size=1, max_size=5)


def as_tuple(event):
    if isinstance(event, Request):
        return ("request", event.method, event.uri, event.version, event.headers.items(),
                event.body)
    assert isinstance(event, Interleaved)
    return ("frame", event.channel, event.data)


def run(pieces):
    """Feed the pieces in order: (event tuples, ParseError status or None)."""
    parser = RequestParser()
    events = []
    for piece in pieces:
        try:
            events += [as_tuple(e) for e in parser.feed(piece)]
        except ParseError as e:
            assert 400 <= e.status <= 599 and isinstance(e.message, str)
            return events, e.status
    return events, None


def error_cseq(raw):
    """The CSeq a ParseError for ``raw`` carries (echoed in the error response), or None."""
    try:
        RequestParser().feed(raw)
    except ParseError as e:
        return e.cseq
    return None


_TOKEN = re.compile(r"[A-Z][A-Z_]{0,31}\Z")


def check_events(events):
    """What the server may rely on in a parsed request (no header value or URI holds a CR
    or LF: the server echoes some of them into its response)."""
    for event in events:
        if event[0] == "request":
            _, method, uri, version, headers, _ = event
            assert _TOKEN.match(method), method
            assert version == "RTSP/1.0" and " " not in uri
            cseq = dict((k.lower(), v) for k, v in reversed(headers))["cseq"]
            # int() accepts "١٢" and str.isdigit() accepts "²": only ASCII digits are a CSeq.
            assert cseq.isascii() and cseq.isdigit(), cseq
            for name, value in headers + [("uri", uri)]:
                assert "\r" not in name + value and "\n" not in name + value, (name, value)


@fuzz_settings(150)
@given(stream(), st.data())
def test_well_formed_pipelines_parse_back_exactly(items, data):
    raw = b"".join(b for b, _ in items)
    expected = [e for _, e in items if e is not None]
    assert run([raw]) == (expected, None)
    assert run(data.draw(chunked(raw))) == (expected, None)


@fuzz_settings(60)
@given(stream())
def test_byte_by_byte_equals_whole(items):
    raw = b"".join(b for b, _ in items)
    assert run([raw[i:i + 1] for i in range(len(raw))]) == run([raw])


def _seeds():
    joined = stream().map(lambda items: b"".join(b for b, _ in items))
    return st.one_of(joined, st.lists(hostile_requests(), min_size=1, max_size=3).map(b"".join))


@fuzz_settings(300)
@given(mutated(_seeds()), st.data())
def test_mutated_requests_give_parse_error_or_sane_requests(raw, data):
    whole = run([raw])
    check_events(whole[0])
    pieces = run(data.draw(chunked(raw)))
    # Pieces may deliver the requests before an error that the whole feed raised at once.
    if whole[1] is None:
        assert pieces == whole
    else:
        assert pieces[1] == whole[1] and pieces[0][:len(whole[0])] == whole[0]


@fuzz_settings(200)
@given(st.binary(max_size=300), st.data())
def test_random_bytes_give_parse_error_or_sane_requests(raw, data):
    whole = run([raw])
    check_events(whole[0])
    pieces = run(data.draw(chunked(raw)))
    assert pieces[1] == whole[1]


@st.composite
def line_break_requests(draw):
    """A request with a bare CR or LF inside its URI or one header value (CSeq included)."""
    raw, _ = draw(requests())
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    which = draw(st.integers(0, len(lines) - 1))
    line = lines[which]
    start = line.index(b" ") + 1 if which == 0 else line.index(b":") + 2
    end = line.rindex(b" ") if which == 0 else len(line)
    if end <= start:
        line = line[:start] + b"x" + line[start:]
        end = start + 1
    at = draw(st.integers(start + 1, end)) if end > start + 1 else end
    line = line[:at] + draw(st.sampled_from([b"\n", b"\r", b"\nInjected: 1", b"\r\x0b"])) + \
        line[at:]
    if which == 0 and draw(st.booleans()):
        line = line.replace(b"RTSP/1.0", b"RTSP/2.0")  # the 505 answer echoes the CSeq
    lines[which] = line
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@fuzz_settings(100)
@given(line_break_requests())
def test_no_line_break_survives_in_a_header_value_or_uri(raw):
    check_events(run([raw])[0])
    assert "\r" not in (error_cseq(raw) or "") and "\n" not in (error_cseq(raw) or "")


# Inputs the fuzzing found, kept as plain examples. A bare CR or LF kept in a header value
# or the URI was echoed by the server (CSeq of a 505, Content-Base, RTP-Info): forged headers.
FOUND = {
    "content-length-superscript":
        b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: \xc2\xb2\r\n\r\n",
    "cseq-arabic-indic": b"OPTIONS * RTSP/1.0\r\nCSeq: \xd9\xa1\xd9\xa2\r\n\r\n",
    "cseq-fullwidth": b"OPTIONS * RTSP/1.0\r\nCSeq: \xef\xbc\x91\r\n\r\n",
}
FOUND_LINE_BREAKS = {
    "lf-after-method": b"OPTIONS\n * RTSP/1.0\r\nCSeq: 1\r\n\r\n",
    "lf-in-value": b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX: a\nInjected: 1\r\n\r\n",
    "lf-in-uri": b"DESCRIBE rtsp://h/stream1/\nInjected:1 RTSP/1.0\r\nCSeq: 1\r\n\r\n",
    "cr-in-cseq-of-505": b"OPTIONS * RTSP/2.0\r\nCSeq: 1\rInjected: 1\r\n\r\n",
}


@pytest.mark.parametrize("raw", FOUND.values(), ids=FOUND.keys())
def test_found_inputs(raw):
    check_events(run([raw])[0])


@pytest.mark.parametrize("raw", FOUND_LINE_BREAKS.values(), ids=FOUND_LINE_BREAKS.keys())
def test_found_line_breaks(raw):
    check_events(run([raw])[0])
    assert "\r" not in (error_cseq(raw) or "") and "\n" not in (error_cseq(raw) or "")
