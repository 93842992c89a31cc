"""The control WebSocket's messages without I/O: ControlSession on a real CameraState."""

import json

import pytest

from rotordream.auth.roles import Principal, anonymous
from rotordream.auth.service import AuthError
from rotordream.state import CameraState
from rotordream.web.ws_message import ControlSession

OPERATOR = Principal("op", "operator")
ADMIN = Principal("admin", "admin")


class FakeAuth:
    """The two AuthService calls a session makes, with one known user and token."""

    def check_password(self, username, password, client=None):
        if (username, password) == ("op", "secret"):
            return OPERATOR
        raise AuthError("wrong username or password")

    def check_token(self, token):
        if token == "tok":
            return ADMIN
        raise AuthError("unknown or expired token")


def session(principal=None):
    return ControlSession(CameraState(), FakeAuth(), principal or anonymous())


@pytest.mark.parametrize("text, key", [
    ("{not json", None),
    ("[1, 2]", None),
    ('"brightness"', None),
    ("{}", None),
    ("[" * 5000 + "]" * 5000, None),
    ('{"a":' * 3000 + "1" + "}" * 3000, None),
    ('{"no-such-key": 1}', "no-such-key"),
    ('{"get": 5}', "get"),
    ('{"get": ["brightness"], "contrast": 3}', "get"),
])
def test_bad_input_is_one_error_reply(text, key):
    s = session(OPERATOR)
    before = s.state.read("*", ADMIN)
    [reply] = s.handle(text)
    assert set(reply) >= {"error", "key", "code"}
    assert reply["key"] == key
    assert s.state.read("*", ADMIN) == before


@pytest.mark.parametrize("changes, code", [
    ({"brightness": "high"}, "BAD_REQUEST"),
    ({"brightness": 101}, "INVALID_VALUE"),
    ({"brightness": 10, "fps": 1000}, "INVALID_VALUE"),
    ({"cam1-exists": False}, "FORBIDDEN"),
])
def test_rejected_batches_change_nothing(changes, code):
    s = session(OPERATOR)
    before = s.state.read("*", ADMIN)
    [reply] = s.handle(json.dumps(changes))
    assert reply["code"] == code
    assert s.state.read("*", ADMIN) == before


def test_anonymous_reads_but_may_not_write():
    s = session()
    [reply] = s.handle('{"get": ["brightness"]}')
    assert reply == {"brightness": s.state.get("brightness")}
    [reply] = s.handle('{"brightness": 7}')
    assert reply["code"] == "UNAUTHORIZED" and reply["key"] == "brightness"
    assert s.state.get("brightness") != 7


def test_set_batch_is_confirmed_with_info():
    s = session(OPERATOR)
    [reply] = s.handle('{"brightness": 7, "contrast": 9, "cam1-light": true}')
    assert reply == {"brightness": 7, "contrast": 9, "cam1-light": True,
                     "info": ["brightness", "contrast", "cam1-light"]}
    assert s.state.get("contrast") == 9


def test_get_star_never_shows_admin_only_keys_to_a_viewer():
    viewer = session()
    everything = viewer.handle('{"get": "*"}')[0]
    assert "brightness" in everything and "discovery-mode" not in everything
    assert "discovery-mode" in session(ADMIN).handle('{"get": "*"}')[0]
    assert viewer.readable({"discovery-mode": "nondiscoverable"}) is None
    assert viewer.readable({"discovery-mode": "x", "gain": 3}) == {"gain": 3}


def test_in_band_login_by_password_and_token_changes_who_writes():
    s = session()
    [reply] = s.handle('{"username": "op", "password": "wrong"}')
    assert reply["code"] == "UNAUTHORIZED" and s.principal.authenticated is False
    [reply] = s.handle('{"username": "op", "password": "secret"}')
    assert reply["authenticated"] is True and reply["user"] == "op"
    assert reply["role"] == "operator"
    assert reply["permissions"] == sorted(OPERATOR.permissions)
    assert "camera.control" in reply["permissions"]
    assert s.handle('{"brightness": 3}')[0]["info"] == ["brightness"]
    [reply] = s.handle('{"token": "tok"}')
    assert reply["role"] == "admin"
    assert s.handle('{"token": 5}')[0]["code"] == "UNAUTHORIZED"
