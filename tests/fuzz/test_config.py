"""Fuzz configuration loading: random tables, keys and values of every TOML type, and mutated
TOML text. The outcome is a Config or a one-line ConfigError, never anything else; an accepted
Config written back as TOML loads as the same Config."""

import dataclasses
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rotordream import config
from tests.support.fuzz import NUMBERS, fuzz_settings, hostile_text, mutated

SECTIONS = {f.name: f.default_factory for f in dataclasses.fields(config.Config)}
FIELDS = {(name, f.name): config._field_type(f)
          for name, cls in SECTIONS.items() for f in dataclasses.fields(cls)}

_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
_SCALARS = st.one_of(
    st.integers(-2 ** 70, 2 ** 70), st.integers(-3, 70000), st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True), _TEXT, hostile_text().filter(
        lambda t: "\ud800" not in t), st.datetimes(), st.dates(), st.times())
any_value = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_TEXT, inner, max_size=3)), max_leaves=8)

_ENDPOINTS = st.one_of(
    st.builds("{}:{}".format, st.sampled_from(["tcp", "tcp6", "ssl", "TCP", "udp", "unix"]),
              st.one_of(st.integers(0, 70000).map(str), st.sampled_from(NUMBERS))),
    st.sampled_from(["", "tcp:8080:interface=127.0.0.1", "unix:/tmp/x.sock", "tcp:80:bogus",
                     "systemd:domain=INET:index=0", "tcp:", "ssl:443:x=y"]))
_SPECIAL = {
    ("server", "source"): st.sampled_from(["testsrc", "file:/x.mp4", "v4l2:/dev/video0",
                                           "file:", "v4l2", "rtsp://x"]),
    ("server", "motor"): st.one_of(st.sampled_from(["sim", "none", "serial:/dev/ttyS0",
                                                    "serial:", "serial:/dev/x:0"]),
                                   st.sampled_from(NUMBERS).map("serial:/dev/x:{}".format)),
    ("auth", "anonymous"): st.sampled_from(["admin", "operator", "viewer", "guest", "root"]),
    ("video", "profile"): st.sampled_from(["baseline", "main", "high", "extended"]),
}


def valid_ish(section, key):
    """A value of the field's own type, often (not always) acceptable."""
    if (section, key) in _SPECIAL:
        return _SPECIAL[(section, key)]
    if (section, key) in config._ENDPOINT_KEYS:
        return _ENDPOINTS
    return {"int": st.integers(0, 70000), "bool": st.booleans(), "str": _TEXT,
            "float": st.floats(min_value=1e-3, max_value=1e6),
            "tuple": st.lists(_TEXT, max_size=3)}[FIELDS[(section, key)]]


@st.composite
def tables(draw):
    """A parsed-TOML-like dict: known and unknown sections and keys, right and wrong values."""
    data = {}
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.integers(0, 9)) == 0:
            data[draw(_TEXT)] = draw(any_value)  # an unknown section, or not a table
            continue
        section = draw(st.sampled_from(sorted(SECTIONS)))
        table = data.setdefault(section, {})
        for _ in range(draw(st.integers(0, 4))):
            key = draw(st.sampled_from(sorted(k for s, k in FIELDS if s == section)))
            roll = draw(st.integers(0, 9))
            if roll == 0:
                table[draw(_TEXT)] = draw(any_value)
            elif roll < 3:
                table[key] = draw(any_value)
            else:
                table[key] = draw(valid_ish(section, key))
    return data


# -- a small TOML writer (the standard library only reads TOML) ----------------

def toml_value(v):
    """``v`` as a TOML value."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        # JSON escapes control characters as TOML wants; TOML forbids a raw DEL, and
        # escaped surrogate pairs (what ensure_ascii writes for astral characters).
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join("%s = %s" % (toml_value(k), toml_value(x))
                               for k, x in v.items()) + "}"
    return v.isoformat()  # datetime, date, time


def toml_document(data):
    """``data`` (a dict of tables and values) as a TOML document."""
    top = ["%s = %s" % (toml_value(k), toml_value(v)) for k, v in data.items()
           if not isinstance(v, dict)]
    for name, table in data.items():
        if isinstance(table, dict):
            top.append("[%s]" % toml_value(name))
            top += ["%s = %s" % (toml_value(k), toml_value(v)) for k, v in table.items()]
    return "\n".join(top) + "\n"


def as_tables(cfg):
    """A Config as the dict of tables that describes it."""
    return {f.name: dataclasses.asdict(getattr(cfg, f.name))
            for f in dataclasses.fields(config.Config)}


# -- checks ----------------------------------------------------------------------

def check_config(cfg):
    """Every field has its declared type and passes the documented bounds."""
    for (section, key), ftype in FIELDS.items():
        value = getattr(getattr(cfg, section), key)
        if ftype == "int":
            assert isinstance(value, int) and not isinstance(value, bool) and value >= 0
            if (section, key) in config._POSITIVE:
                assert value > 0
        elif ftype == "float":
            assert isinstance(value, float) and math.isfinite(value) and value > 0
        elif ftype == "tuple":
            assert isinstance(value, tuple) and all(isinstance(v, str) for v in value)
        else:
            assert isinstance(value, {"bool": bool, "str": str}[ftype])
        if isinstance(value, str):
            assert "\0" not in value
    config.parse_source(cfg.server.source)
    config.parse_motor(cfg.server.motor)


def outcome(fn, *args):
    """The Config ``fn`` returns, or None for a ConfigError (which must be one line)."""
    try:
        cfg = fn(*args)
    except config.ConfigError as e:
        assert str(e) and "\n" not in str(e), repr(str(e))
        return None
    check_config(cfg)
    return cfg


@pytest.fixture(scope="module")
def conf_file(tmp_path_factory):
    """The path each example writes its TOML to."""
    return tmp_path_factory.mktemp("fuzzconf") / "rotordream.toml"


def load_text(path, raw):
    """load() of a file holding ``raw``: the Config, or None for a ConfigError."""
    path.write_bytes(raw)
    return outcome(config.load, str(path))


@fuzz_settings(400)
@given(tables())
def test_from_dict_gives_config_or_config_error(data):
    outcome(config.from_dict, data)


@fuzz_settings(200)
@given(tables())
def test_accepted_config_round_trips_through_toml(conf_file, data):
    cfg = outcome(config.from_dict, data)
    if cfg is not None:
        assert load_text(conf_file, toml_document(as_tables(cfg)).encode()) == cfg
        assert outcome(config.from_dict, as_tables(cfg)) == cfg


@fuzz_settings(300)
@given(mutated(tables().map(lambda d: toml_document(d).encode())))
def test_mutated_toml_gives_config_or_config_error(conf_file, raw):
    load_text(conf_file, raw)


@fuzz_settings(100)
@given(st.binary(max_size=200))
def test_random_bytes_give_config_or_config_error(conf_file, raw):
    load_text(conf_file, raw)


# Inputs the fuzzing found, kept as plain examples.
FOUND_TABLES = {
    "superscript-port": {"server": {"http": "tcp:\u00b2"}},
    "superscript-baud": {"server": {"motor": "serial:/dev/ttyS0:\u00b2"}},
    "nan-timeout": {"motor": {"command_timeout": float("nan")}},
    "inf-timeout": {"motor": {"command_timeout": float("inf")}},
    "nul-in-path": {"server": {"state_dir": "/var/lib/a\0b"}},
    "rtp-port-70000": {"rtsp": {"rtp_port_min": 70000, "rtp_port_max": 70010}},
    "rtp-range-inverted": {"rtsp": {"rtp_port_min": 50010, "rtp_port_max": 50000}},
}
FOUND_FILES = {
    "not-utf8": b"[server]\nsource = '\xff'\n",
    "nested-arrays": b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n",
    "nested-inline-tables": b"a = " + b"{b = " * 5000 + b"1" + b"}" * 5000 + b"\n",
}


@pytest.mark.parametrize("data", FOUND_TABLES.values(), ids=FOUND_TABLES.keys())
def test_found_tables(data):
    assert outcome(config.from_dict, data) is None


@pytest.mark.parametrize("raw", FOUND_FILES.values(), ids=FOUND_FILES.keys())
def test_found_files(conf_file, raw):
    assert load_text(conf_file, raw) is None
