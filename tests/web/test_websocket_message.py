"""The control WebSocket's messages without I/O: ControlSession on a real CameraState."""

import json

import pytest
from twisted.internet import defer

from rotordream.auth.roles import anonymous
from rotordream.auth.service import AuthError
from rotordream.state import CameraState
from rotordream.testing import FakeAuth
from rotordream.web.ws_message import ControlSession

OPERATOR, ADMIN = FakeAuth.OPERATOR, FakeAuth.ADMIN


class SlowAuth(FakeAuth):
    """Password checks answer when the test says (as the hashing pool would)."""

    def __init__(self):
        self.checks = []

    def check_password(self, username, password, client=None, protocol="http"):
        d = defer.Deferred()
        self.checks.append((d, username, password))
        return d

    def answer(self):
        d, username, password = self.checks.pop(0)
        try:
            d.callback(FakeAuth.check_password(self, username, password))
        except AuthError:
            d.errback()


def session(principal=None, auth=None):
    replies = []
    s = ControlSession(CameraState(), auth or FakeAuth(), principal or anonymous(),
                       send=replies.append)
    s.replies = replies
    return s


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
    s.receive('{"username": "op", "password": "wrong"}')
    [reply] = s.replies
    assert reply["code"] == "UNAUTHORIZED" and s.principal.authenticated is False
    s.receive('{"username": "op", "password": "secret"}')
    reply = s.replies[-1]
    assert reply["authenticated"] is True and reply["user"] == "op"
    assert reply["role"] == "operator"
    assert reply["permissions"] == sorted(OPERATOR.permissions)
    assert "camera.control" in reply["permissions"]
    assert s.handle('{"brightness": 3}')[0]["info"] == ["brightness"]
    [reply] = s.handle('{"token": "tok"}')
    assert reply["role"] == "admin"
    assert s.handle('{"token": 5}')[0]["code"] == "UNAUTHORIZED"


def test_messages_after_a_login_are_answered_after_it_in_order():
    auth = SlowAuth()
    s = session(auth=auth)
    s.receive('{"username": "op", "password": "secret"}')
    s.receive('{"brightness": 7}')
    s.refuse({"error": "binary frames are not accepted; send JSON text", "key": None,
              "code": "BAD_REQUEST"})
    s.receive('{"get": ["brightness"]}')
    assert s.replies == []  # nothing answered before the login
    auth.answer()
    assert [sorted(r) for r in s.replies] == [
        ["authenticated", "permissions", "role", "user"], ["brightness", "info"],
        ["code", "error", "key"], ["brightness"]]
    assert s.state.get("brightness") == 7  # written as op, the login's principal
    # A wrong password: what waited is answered as the unchanged principal (anonymous).
    s2 = session(auth=auth)
    s2.receive('{"username": "op", "password": "wrong"}')
    s2.receive('{"contrast": 3}')
    auth.answer()
    assert s2.replies[0]["code"] == "UNAUTHORIZED" and s2.replies[1]["code"] == "UNAUTHORIZED"
    assert s2.replies[1]["key"] == "contrast"


def test_what_waits_for_a_login_is_bounded_and_the_rest_refused_at_once():
    auth = SlowAuth()
    s = session(auth=auth)
    s.receive('{"username": "op", "password": "secret"}')
    for _ in range(ControlSession.MAX_WAITING + 3):
        s.receive('{"get": ["brightness"]}')
    assert [r["code"] for r in s.replies] == ["RATE_LIMITED"] * 3
    auth.answer()
    assert len(s.replies) == 3 + 1 + ControlSession.MAX_WAITING
    # Closed while a login runs: its answer and the waiting messages go nowhere.
    s.receive('{"username": "op", "password": "secret"}')
    s.receive('{"get": ["brightness"]}')
    sent = len(s.replies)
    s.close()
    auth.answer()
    assert len(s.replies) == sent
