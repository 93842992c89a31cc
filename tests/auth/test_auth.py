"""Auth units with a Clock: Digest (RFC 7616), tokens, rate limits, users."""

import base64
import json
import os
import stat

import pytest
from twisted.internet.task import Clock

from rotordream.auth import digest
from rotordream.auth.ratelimit import RateLimiter
from rotordream.auth.service import AuthError
from rotordream.auth.users import UserError, UserStore
from tests.support.auth import digest_header, make_auth, result


def test_first_start_admin_from_config_and_env(tmp_path, monkeypatch):
    auth, _ = make_auth(tmp_path)
    assert result(auth.check_password("admin", "first-password")).role == "admin"
    assert stat.S_IMODE(os.stat(tmp_path / "state" / "users.json").st_mode) == 0o600
    assert "first-password" not in (tmp_path / "state" / "users.json").read_text()
    monkeypatch.setenv("ROTORDREAM_ADMIN_PASSWORD", "from-the-env")
    store = UserStore(str(tmp_path / "other"), "first-password")
    assert store.verify("admin", "from-the-env") and not store.verify("admin", "first-password")


def test_random_first_password_written_0600(tmp_path, monkeypatch):
    monkeypatch.delenv("ROTORDREAM_ADMIN_PASSWORD", raising=False)
    store = UserStore(str(tmp_path), "")
    path = tmp_path / "initial-admin-password"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert store.verify("admin", path.read_text().strip())


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_digest_accepts_right_and_refuses_wrong_replayed_and_stale(tmp_path, algorithm):
    auth, clock = make_auth(tmp_path)
    header, nonce = digest_header(auth, "GET", "/api/users", "admin", "first-password",
                                  algorithm)
    assert result(auth.authenticate("GET", "/api/users", header)).name == "admin"
    with pytest.raises(AuthError, match="replayed"):
        result(auth.authenticate("GET", "/api/users", header))
    header2, _ = digest_header(auth, "GET", "/api/users", "admin", "first-password",
                               algorithm, nc="00000002", nonce=nonce)
    assert result(auth.authenticate("GET", "/api/users", header2)).name == "admin"
    wrong, _ = digest_header(auth, "GET", "/api/users", "admin", "nope", algorithm)
    with pytest.raises(AuthError) as e:
        result(auth.authenticate("GET", "/api/users", wrong))
    assert not e.value.stale
    clock.advance(301)
    late, _ = digest_header(auth, "GET", "/api/users", "admin", "first-password", algorithm,
                            nc="00000003", nonce=nonce)
    with pytest.raises(AuthError) as e:
        result(auth.authenticate("GET", "/api/users", late))
    assert e.value.stale
    # A nonce we never issued: stale when the response is right (the client retries
    # on a fresh one), a failure when it is not.
    forged = nonce[:-2] + ("AA" if not nonce.endswith("AA") else "BB")
    bad, _ = digest_header(auth, "GET", "/api/users", "admin", "first-password", algorithm,
                           nonce=forged)
    with pytest.raises(AuthError, match="unknown nonce") as e:
        result(auth.authenticate("GET", "/api/users", bad))
    assert e.value.stale
    bad, _ = digest_header(auth, "GET", "/api/users", "admin", "nope", algorithm, nonce=forged)
    with pytest.raises(AuthError, match="wrong credentials") as e:
        result(auth.authenticate("GET", "/api/users", bad))
    assert not e.value.stale


def test_digest_params_parse_quoted_escapes_byte_by_byte_equivalent():
    text = 'username="a\\"b", realm="RotorDream", nc=00000001, qop=auth'
    assert digest.parse_params(text) == {"username": 'a"b', "realm": "RotorDream",
                                         "nc": "00000001", "qop": "auth"}
    with pytest.raises(digest.DigestError):
        digest.parse_params('username="unterminated')


def test_basic_bearer_anonymous_and_lockout(tmp_path):
    auth, clock = make_auth(tmp_path)
    basic = "Basic " + base64.b64encode(b"admin:first-password").decode()
    assert result(auth.authenticate("GET", "/", basic)).role == "admin"
    assert result(auth.authenticate("GET", "/")).authenticated is False
    assert result(auth.authenticate("GET", "/")).role == "viewer"
    login = result(auth.login("admin", "first-password", client="1.2.3.4"))
    assert result(auth.authenticate("GET", "/", "Bearer " + login["token"])).name == "admin"
    assert result(auth.authenticate("GET", "/", token=login["token"])).name == "admin"
    assert login["token"] not in (tmp_path / "state" / "tokens.json").read_text()
    auth.logout(login["token"])
    with pytest.raises(AuthError):
        result(auth.authenticate("GET", "/", "Bearer " + login["token"]))
    for _ in range(5):
        with pytest.raises(AuthError) as e:
            result(auth.check_password("admin", "wrong", client="5.6.7.8"))
        assert e.value.code == "UNAUTHORIZED"
    with pytest.raises(AuthError) as e:
        result(auth.check_password("admin", "first-password", client="5.6.7.8"))
    assert e.value.code == "RATE_LIMITED" and 0 < e.value.retry_after <= 300
    # Locked for this user name at that address only.
    assert result(auth.check_password("admin", "first-password", client="1.2.3.4")).name == \
        "admin"
    clock.advance(301)
    assert result(auth.check_password("admin", "first-password", client="5.6.7.8")).name == \
        "admin"


def test_tokens_expire(tmp_path):
    auth, clock = make_auth(tmp_path, token_lifetime=60)
    token = result(auth.login("admin", "first-password"))["token"]
    clock.advance(59)
    assert auth.check_token(token).name == "admin"
    clock.advance(2)
    with pytest.raises(AuthError):
        auth.check_token(token)


def test_rate_limiter_window():
    clock = Clock()
    limiter = RateLimiter(3, 60, clock)
    assert [limiter.hit("a") for _ in range(4)] == [0, 0, 0, 60]
    assert limiter.hit("b") == 0
    clock.advance(59)
    assert limiter.hit("a") == 1
    clock.advance(1)
    assert limiter.hit("a") == 0
    assert RateLimiter(0, 60, clock).hit("x") == 0


def test_user_store_rules(tmp_path):
    store = UserStore(str(tmp_path), "first-password")
    store.add("op", "operator-pass", "operator")
    with pytest.raises(UserError) as e:
        store.add("op", "operator-pass", "operator")
    assert e.value.code == "CONFLICT"
    for bad in ("", "a:b", "with space", "x" * 33, "new\nline"):
        with pytest.raises(UserError):
            store.add(bad, "password-1", "viewer")
    with pytest.raises(UserError):
        store.add("short", "pw", "viewer")
    with pytest.raises(UserError):
        store.delete("admin")
    store.set_role("op", "admin")
    store.set_role("admin", "viewer")  # another admin exists now
    again = UserStore(str(tmp_path), "ignored")
    assert again.role("admin") == "viewer" and again.role("op") == "admin"
    assert again.verify("op", "operator-pass")
    data = json.loads((tmp_path / "users.json").read_text())
    assert "operator-pass" not in json.dumps(data)
