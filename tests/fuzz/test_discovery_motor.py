"""Fuzz the other two wire formats: WS-Discovery datagrams (parse, serialize, probe matching)
and the motor controller's lines. Round trips hold; random or mutated input gives a message
or the module's error (DiscoveryError, CodecError), never anything else."""

import dataclasses
import string

from hypothesis import given
from hypothesis import strategies as st

from rotordream.discovery import message as wsd
from rotordream.motor import codec
from rotordream.scopes import FIXED_SCOPES, device_scopes
from tests.support.fuzz import fuzz_settings, hostile_text, mutated

# -- WS-Discovery -------------------------------------------------------------------

_TOKEN = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e, exclude_characters="<>&"),
                 min_size=1, max_size=30)
_URI = st.one_of(_TOKEN.map("urn:x:{}".format), st.sampled_from(
    list(FIXED_SCOPES) + ["onvif://www.onvif.org/name/cam", "http://[::1/x",
                              "http://[x]:99999/",
                              "onvif://www.onvif.org/%2e%2e/x", "http://a/../b", "mailto:"]))
_TYPES = st.lists(st.sampled_from(list(wsd.DEVICE_TYPES) + [("urn:x:1", "T"), ("urn:x:2", "U")]),
                  max_size=3, unique=True).map(tuple)
endpoints = st.builds(wsd.Endpoint, address=_URI, types=_TYPES,
                      scopes=st.lists(_URI, max_size=3).map(tuple),
                      xaddrs=st.lists(_URI, max_size=2).map(tuple),
                      metadata_version=st.integers(0, 2 ** 40))
_COMMON = dict(message_id=_TOKEN, relates_to=st.none() | _TOKEN, reply_to=st.none() | _TOKEN,
               to=st.none() | _TOKEN, soap=st.sampled_from([wsd.SOAP12, wsd.SOAP11]),
               app_sequence=st.none() | st.tuples(st.integers(0, 2 ** 40),
                                                  st.integers(0, 2 ** 40)))
messages = st.one_of(
    st.builds(wsd.Message, st.sampled_from([wsd.HELLO, wsd.BYE]),
              endpoints=endpoints.map(lambda e: (e,)), **_COMMON),
    st.builds(wsd.Message, st.sampled_from([wsd.PROBE_MATCHES, wsd.RESOLVE_MATCHES]),
              endpoints=st.lists(endpoints, max_size=3).map(tuple), **_COMMON),
    st.builds(lambda m, scopes, match_by: dataclasses.replace(
        m, scopes=scopes, match_by=match_by if scopes is not None else None),
        st.builds(wsd.Message, st.just(wsd.PROBE), types=st.none() | _TYPES, **_COMMON),
        st.none() | st.lists(_URI, max_size=3).map(tuple),
        st.none() | st.sampled_from([wsd.MATCH_RFC3986, wsd.MATCH_STRCMP0, "urn:other"])),
    st.builds(wsd.Message, st.just(wsd.RESOLVE), address=_URI, **_COMMON),
)


def expected(m):
    """What parse gives back for ``m``: the default To filled in, Bye's endpoint bare."""
    to = m.to or (wsd.ANONYMOUS if m.kind in (wsd.PROBE_MATCHES, wsd.RESOLVE_MATCHES)
                  else wsd.DISCOVERY_URN)
    if m.kind == wsd.BYE:
        m = dataclasses.replace(m, endpoints=(wsd.Endpoint(m.endpoints[0].address,
                                                           metadata_version=0),))
    return dataclasses.replace(m, to=to)


OURS = wsd.Endpoint("urn:uuid:5f0c8a3e-0000-4000-8000-000000000001", wsd.DEVICE_TYPES,
                    device_scopes("cam", "here", "00:11:22:33:44:55"),
                    ("http://192.0.2.1/onvif/device_service",), 1)


def discovery_outcome(raw):
    """Parse ``raw`` and do what the service does with a message; None for DiscoveryError."""
    try:
        m = wsd.parse(raw)
    except wsd.DiscoveryError:
        return None
    assert m.kind in wsd.KINDS and m.message_id
    if m.kind == wsd.PROBE:
        assert wsd.probe_matches_endpoint(m, OURS) in (True, False)
        wsd.parse(wsd.serialize(wsd.probe_matches(m, OURS, (1, 2))))
    if m.kind == wsd.RESOLVE:
        assert wsd.same_address(m.address, OURS.address) in (True, False)
        wsd.parse(wsd.serialize(wsd.resolve_matches(m, OURS, (1, 2))))
    return m


@fuzz_settings(200)
@given(messages)
def test_discovery_round_trip(m):
    assert wsd.parse(wsd.serialize(m)) == expected(m)


@fuzz_settings(300)
@given(mutated(messages.map(wsd.serialize), max_ops=8))
def test_mutated_datagrams_give_message_or_discovery_error(raw):
    discovery_outcome(raw)


@fuzz_settings(100)
@given(st.binary(max_size=200))
def test_random_datagrams(raw):
    assert discovery_outcome(raw) is None


@fuzz_settings(200)
@given(st.lists(_URI | hostile_text(), max_size=3), st.lists(_URI | hostile_text(), max_size=3),
       st.none() | st.sampled_from(list(wsd._PREFIX_RULES) + [wsd.MATCH_STRCMP0, "x"]))
def test_scope_matching_is_true_or_false(wanted, offered, match_by):
    assert wsd.scopes_match(wanted, offered, match_by) in (True, False)


def test_found_scope():
    # urlsplit raised ValueError on an unclosed IPv6 bracket from a Probe's Scopes.
    assert wsd.scope_matches("http://[::1/x", "http://a/b") is False
    assert wsd.scope_matches("onvif://www.onvif.org/", "http://[x") is False


# -- motor lines ------------------------------------------------------------------

_WORD = st.text(string.ascii_letters + string.digits + "._-+:/", min_size=1, max_size=10)
_VALUE = st.text(string.ascii_letters + string.digits + "._-+:/=", max_size=10)
_FIELDS = st.dictionaries(_WORD, _VALUE, max_size=4)
replies = st.one_of(
    st.builds(codec.Reply, st.integers(0, 65535), st.just(True), _FIELDS),
    st.builds(lambda seq, code, words: codec.Reply(seq, False, code=code,
                                                   message=" ".join(words)),
              st.integers(0, 65535), _WORD, st.lists(_WORD, max_size=4)),
    st.builds(codec.Report, _FIELDS))
commands = st.builds(codec.Command, st.integers(0, 65535), _WORD.map(str.upper),
                     st.lists(_WORD, max_size=4))


def _line(obj):
    return obj.encode().rstrip(b"\n")


def motor_outcome(parse, raw):
    try:
        return parse(raw)
    except codec.CodecError:
        return None


@fuzz_settings(200)
@given(replies)
def test_controller_lines_round_trip(reply):
    line = _line(reply)
    if len(line) <= codec.MAX_LINE:
        assert codec.parse_from_controller(line) == reply


@fuzz_settings(150)
@given(commands)
def test_host_lines_round_trip(command):
    line = _line(command)
    if len(line) <= codec.MAX_LINE:
        assert codec.parse_from_host(line) == command


@fuzz_settings(300)
@given(mutated(st.one_of(replies, commands).map(_line)) | st.binary(max_size=220))
def test_mutated_lines_give_message_or_codec_error(raw):
    for parse in (codec.parse_from_controller, codec.parse_from_host):
        result = motor_outcome(parse, raw)
        if result is not None:
            # A damaged line that still checks out re-encodes to one that parses the same.
            assert parse(_line(result)) == result or len(_line(result)) > codec.MAX_LINE
