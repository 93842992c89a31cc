"""rotordream.auth.origin: which browser requests come from a foreign page (pure functions)."""

import pytest

from rotordream.auth.origin import FOREIGN, NONE, TRUSTED, classify, is_foreign, request_origin

HOST = "camera.local:8080"


def test_no_origin_and_no_referer_is_not_a_browser():
    assert classify(None, None, HOST, False) == NONE
    assert classify("", "", HOST, False) == NONE
    assert not is_foreign(None, None, HOST, False)


@pytest.mark.parametrize("origin,referer,host,secure", [
    ("http://camera.local:8080", None, HOST, False),
    ("HTTP://Camera.Local:8080", None, HOST, False),       # scheme and host are case-blind
    (None, "http://camera.local:8080/?stream=stream1", HOST, False),
    ("http://camera.local", None, "camera.local", False),   # default ports
    ("http://camera.local:80", None, "camera.local", False),
    ("https://camera.local", None, "camera.local:443", True),
    ("http://[::1]:8080", None, "[::1]:8080", False),
    ("http://127.0.0.1:8080", "http://evil.example/", "127.0.0.1:8080", False),  # Origin wins
])
def test_same_origin(origin, referer, host, secure):
    assert classify(origin, referer, host, secure) == TRUSTED
    assert not is_foreign(origin, referer, host, secure)


@pytest.mark.parametrize("origin,referer,host,secure", [
    ("http://evil.example", None, HOST, False),
    (None, "http://evil.example/page.html", HOST, False),
    ("null", None, HOST, False),
    ("http://camera.local:9999", None, HOST, False),        # another port is another origin
    ("https://camera.local:8080", None, HOST, False),       # another scheme too
    ("http://camera.local:443", None, "camera.local", True),
    ("http://camera.local:8080", None, None, False),        # no Host to compare with
    ("http://camera.local:99999", None, HOST, False),       # not a valid origin
    ("file://", None, HOST, False),
    ("camera.local:8080", None, HOST, False),
    (None, "android-app://x/y", HOST, False),
    ("http://camera.local.evil.example:8080", None, HOST, False),
    ("http://camera.local:8080@evil.example", None, HOST, False),
])
def test_foreign(origin, referer, host, secure):
    assert classify(origin, referer, host, secure) == FOREIGN
    assert is_foreign(origin, referer, host, secure)


def test_configured_origins_are_trusted_however_written():
    allowed = ("https://nvr.example", "http://dash.example:8000/")
    for origin, referer in (("https://nvr.example", None), ("https://NVR.example:443", None),
                            (None, "https://nvr.example/app/view"),
                            ("http://dash.example:8000", None)):
        assert classify(origin, referer, HOST, False, allowed) == TRUSTED, (origin, referer)
    assert classify("https://other.example", None, HOST, False, allowed) == FOREIGN
    assert classify("http://nvr.example", None, HOST, False, allowed) == FOREIGN
    assert classify("http://anything.example", None, HOST, False, ("*",)) == TRUSTED
    assert classify("null", None, HOST, False, ("null",)) == TRUSTED


def test_request_origin():
    assert request_origin(" https://a.example ", None) == "https://a.example"
    assert request_origin(None, "https://a.example/x?y#z") == "https://a.example:443"
    assert request_origin(None, "not a url") == "not a url"
    assert request_origin(None, None) is None
