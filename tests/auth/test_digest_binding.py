"""Digest responses bound to their request target (RFC 7616 section 3.4.6) and to this run."""

import pytest

from rotordream.auth import digest
from rotordream.auth.service import AuthError
from tests.support.auth import PASSWORD, digest_header, digest_value, make_auth, result


def refused(d):
    with pytest.raises(AuthError) as e:
        result(d)
    return e.value


@pytest.mark.parametrize("param_uri, target, same", [
    ("/api/info", "/api/info", True),
    ("/api/info", "/api/users", False),
    ("/api/info?x=1", "/api/info?x=2", False),
    ("/api/info", "/api/info?x=1", False),
    ("http://192.0.2.1:8080/api/info?x=1", "/api/info?x=1", True),
    ("https://cam.local/api/info", "/api/info", True),
    ("http://cam.local", "/", True),
    ("rtsp://127.0.0.1:8554/stream1", "rtsp://127.0.0.1:8554/stream1", True),
    ("rtsp://cam.local:8554/stream1/trackID=0", "rtsp://127.0.0.1:8554/stream1/trackID=0",
     True),
    ("rtsp://127.0.0.1:8554/stream2", "rtsp://127.0.0.1:8554/stream1", False),
    ("*", "*", True),
    ("*", "/", False),
    ("", "/", False),
    ("http://[bad/", "/", False),
])
def test_uri_matches(param_uri, target, same):
    assert digest.uri_matches(param_uri, target) is same


def test_a_response_for_one_target_is_refused_on_another(tmp_path):
    auth, _ = make_auth(tmp_path, login_failures=100)
    header, nonce = digest_header(auth, "POST", "/api/info", "admin", PASSWORD)
    e = refused(auth.authenticate("POST", "/api/users", header, client="10.0.0.1"))
    assert "uri" in e.message and not e.stale
    # Unused on the wrong target, it still works where it was made for.
    assert result(auth.authenticate("POST", "/api/info", header, client="10.0.0.1")).name == \
        "admin"
    # The absolute form of the same target is the same target.
    value = digest_value("POST", "http://192.0.2.1/api/info", "admin", PASSWORD, nonce,
                         nc="00000002")
    assert result(auth.authenticate("POST", "/api/info", value, client="10.0.0.1")).name == \
        "admin"
    # RTSP: the URL the client used.
    url = "rtsp://192.0.2.1:8554/stream1"
    value = digest_value("DESCRIBE", url, "admin", PASSWORD, nonce, nc="00000003")
    assert result(auth.authenticate("DESCRIBE", url, value, client="10.0.0.1")).name == "admin"
    value = digest_value("DESCRIBE", url, "admin", PASSWORD, nonce, nc="00000004")
    refused(auth.authenticate("DESCRIBE", "rtsp://192.0.2.1:8554/recording", value,
                              client="10.0.0.1"))


def test_a_header_from_before_a_restart_is_refused_after_it(tmp_path):
    auth, clock = make_auth(tmp_path)
    header, _ = digest_header(auth, "GET", "/api/users", "admin", PASSWORD)
    session = result(auth.login("admin", PASSWORD, "10.0.0.1"))
    # A new run on the same state dir, a second later.
    clock.advance(1)
    again, _ = make_auth(tmp_path, clock=clock)
    e = refused(again.authenticate("GET", "/api/users", header, client="10.0.0.1"))
    assert e.stale and "nonce" in e.message  # the client may retry on a fresh nonce
    # Sessions are persisted by design, and so is their CSRF token.
    assert result(again.authenticate("GET", "/", token=session["token"])).name == "admin"
    assert again.csrf_for(session["token"]) == session["csrf"]
    # A fresh challenge from the new run works.
    header, _ = digest_header(again, "GET", "/api/users", "admin", PASSWORD)
    assert result(again.authenticate("GET", "/api/users", header)).name == "admin"


def test_odd_responses_are_refused_not_crashed(tmp_path):
    auth, _ = make_auth(tmp_path)
    header, _ = digest_header(auth, "GET", "/", "admin", PASSWORD)
    for bad in (header.replace('response="', 'response="\u00e9'),
                header.replace('uri="/"', 'uri="\u00e9"')):
        refused(auth.authenticate("GET", "/", bad, client="10.0.0.1"))
