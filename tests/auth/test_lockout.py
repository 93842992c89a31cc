"""Lockout per (user name, address) with backoff, and the per-user ceiling, on a Clock."""

import pytest
from twisted.internet.task import Clock

from rotordream.auth.ratelimit import Lockout
from rotordream.auth.service import AuthError
from tests.support.auth import PASSWORD, digest_header, make_auth, result


def refused(d):
    with pytest.raises(AuthError) as e:
        result(d)
    return e.value


def test_lockout_doubles_on_repeat_up_to_the_longest_and_is_forgiven():
    clock = Clock()
    lock = Lockout(3, 300, 1000, clock)
    durations = []
    for _ in range(5):
        assert [lock.failed("k") for _ in range(2)] == [0, 0]
        durations.append(lock.failed("k"))
        assert lock.retry_after("k") == durations[-1]
        clock.advance(durations[-1])
        assert lock.retry_after("k") == 0
    assert durations == [300, 600, 1000, 1000, 1000]
    # Quiet for longer than the longest lockout: back to the short one.
    clock.advance(1001)
    assert [lock.failed("k") for _ in range(3)] == [0, 0, 300]
    lock.reset("k")
    assert lock.retry_after("k") == 0
    # Failures spread wider than the window never lock.
    for _ in range(10):
        assert lock.failed("slow") == 0
        clock.advance(150)
    assert Lockout(0, 300, 1000, clock).failed("x") == 0


def test_a_flood_of_new_keys_does_not_unlock_a_guesser():
    clock = Clock()
    lock = Lockout(2, 300, 1000, clock)
    lock.MAX_KEYS = 50
    lock.failed(("admin", "10.0.0.66"))
    lock.failed(("admin", "10.0.0.66"))
    for i in range(500):
        lock.failed(("user%d" % i, "10.0.0.66"))
    assert lock.retry_after(("admin", "10.0.0.66")) > 0
    assert len(lock._keys) <= 50


def test_a_guesser_locks_only_itself_out(tmp_path):
    auth, clock = make_auth(tmp_path, login_failures=5, login_window=300, lockout_max=3600)
    for _ in range(5):
        assert refused(auth.check_password("admin", "guess", "10.0.0.66")).code == \
            "UNAUTHORIZED"
    e = refused(auth.check_password("admin", PASSWORD, "10.0.0.66"))
    assert e.code == "RATE_LIMITED" and e.retry_after == 300
    # The real admin (and an NVR) elsewhere: Basic, login, Digest all still work.
    assert result(auth.check_password("admin", PASSWORD, "10.0.0.1")).name == "admin"
    assert result(auth.login("admin", PASSWORD, "10.0.0.2"))["principal"].name == "admin"
    header, _ = digest_header(auth, "GET", "/api/info", "admin", PASSWORD)
    assert result(auth.authenticate("GET", "/api/info", header, client="10.0.0.3")).name == \
        "admin"
    # Digest from the guesser's address is locked too (one lockout for every protocol).
    header, _ = digest_header(auth, "GET", "/api/info", "admin", PASSWORD)
    assert refused(auth.authenticate("GET", "/api/info", header,
                                     client="10.0.0.66")).code == "RATE_LIMITED"
    # Other names from the guesser's address are not locked.
    auth.users.add("op", "operator-pass", "operator")
    assert result(auth.check_password("op", "operator-pass", "10.0.0.66")).name == "op"
    # After the lockout: five more guesses lock it twice as long.
    clock.advance(300)
    for _ in range(5):
        refused(auth.check_password("admin", "guess", "10.0.0.66"))
    assert refused(auth.check_password("admin", PASSWORD, "10.0.0.66")).retry_after == 600


def test_a_correct_password_clears_that_address_failures(tmp_path):
    auth, _ = make_auth(tmp_path, login_failures=3)
    for _ in range(2):
        refused(auth.check_password("admin", "typo", "10.0.0.1"))
    result(auth.check_password("admin", PASSWORD, "10.0.0.1"))
    for _ in range(2):
        refused(auth.check_password("admin", "typo", "10.0.0.1"))
    assert result(auth.check_password("admin", PASSWORD, "10.0.0.1")).name == "admin"


def test_the_per_user_ceiling_stops_guessing_from_many_addresses(tmp_path):
    auth, clock = make_auth(tmp_path, login_failures=5, user_failures=20, login_window=300)
    for i in range(20):
        refused(auth.check_password("admin", "guess", "10.1.0.%d" % i))
    e = refused(auth.check_password("admin", PASSWORD, "10.0.0.1"))
    assert e.code == "RATE_LIMITED" and "this user" in e.message
    clock.advance(300)
    assert result(auth.check_password("admin", PASSWORD, "10.0.0.1")).name == "admin"


def test_absurd_user_names_are_counted_under_a_bounded_key(tmp_path):
    auth, _ = make_auth(tmp_path, login_failures=2)
    name = "x" * 100000
    refused(auth.check_password(name, "guess", "10.0.0.1"))
    refused(auth.check_password(name, "guess", "10.0.0.1"))
    assert refused(auth.check_password(name, "guess", "10.0.0.1")).code == "RATE_LIMITED"
    assert all(len(key[0]) <= 65 for key in auth.lockouts._keys)


class Refused(Exception):
    """A challenge-response refusal; ``counts`` when it proves a wrong password."""

    def __init__(self, counts):
        super().__init__("refused")
        self.counts = counts


def test_challenge_responses_share_the_lockout_and_only_wrong_passwords_count(tmp_path):
    auth, clock = make_auth(tmp_path, login_failures=3, login_window=300, lockout_max=3600)

    def respond(ok, counts=True):
        def verify():
            if ok:
                return "admin"
            raise Refused(counts)
        return auth.verify_response("admin", "10.0.0.66", "onvif", "WS-Security", verify,
                                    Refused, lambda e: e.counts)

    # Refusals that say nothing about the password (a stale nonce) never lock.
    for _ in range(10):
        with pytest.raises(Refused):
            respond(False, counts=False)
    assert auth.failures.get("onvif", 0) == 0
    # A correct response clears the address's failures.
    for _ in range(2):
        with pytest.raises(Refused):
            respond(False)
    assert respond(True).name == "admin"
    for _ in range(3):
        with pytest.raises(Refused):
            respond(False)
    assert auth.failures["onvif"] == 5
    # Locked now for every way of proving the password, the right one included.
    with pytest.raises(AuthError) as e:
        respond(True)
    assert e.value.code == "RATE_LIMITED" and e.value.retry_after == 300
    assert refused(auth.check_password("admin", PASSWORD, "10.0.0.66")).code == "RATE_LIMITED"
    clock.advance(300)
    assert respond(True).name == "admin"
