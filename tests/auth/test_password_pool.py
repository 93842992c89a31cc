"""Password checks off the event loop: the bounded pool, joined checks, the cache, per-address
attempts; units with rotordream.testing's pools, and one with a real ThreadPool."""

import base64
import threading

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.python import threadpool

from rotordream.auth import checker
from rotordream.auth.service import AuthError, loggable_name
from rotordream.testing import ImmediateReactor, QueuedThreadPool, SyncThreadPool
from tests.support.auth import PASSWORD, digest_header, make_auth, pending, result


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def queued_auth(tmp_path, **auth):
    pool = QueuedThreadPool()
    reactor = ImmediateReactor()
    reactor.advance(1_800_000_000)
    service, _ = make_auth(tmp_path, pool=pool, clock=reactor, **auth)
    return service, pool, reactor


def test_checks_wait_for_the_pool_and_the_queue_is_bounded(tmp_path):
    auth, pool, _ = queued_auth(tmp_path, hash_threads=2, hash_queue=3,
                                attempts_per_address=0)
    waiting = [pending(auth.check_password("admin", "guess-%d" % i, "10.0.0.%d" % i))
               for i in range(5)]
    assert len(pool.queue) == 5  # 2 running + 3 waiting: nothing was hashed here
    with pytest.raises(AuthError) as e:
        result(auth.check_password("admin", "one-too-many", "10.0.0.9"))
    assert e.value.code == "RATE_LIMITED" and e.value.retry_after == 1
    assert len(pool.queue) == 5  # refused without queueing
    pool.run_next()
    assert len(waiting[0]) == 1 and waiting[0][0].check(AuthError)
    # One came back: one more may go in.
    pending(auth.check_password("admin", PASSWORD, "10.0.0.9"))
    assert len(pool.queue) == 5


def test_the_same_credentials_join_a_running_check_and_are_cached(tmp_path):
    auth, pool, reactor = queued_auth(tmp_path, hash_threads=1, hash_queue=1, cache_seconds=60)
    first = pending(auth.authenticate("DESCRIBE", "rtsp://cam/stream1",
                                      basic("admin", PASSWORD), client="10.0.0.1"))
    # 199 more, pipelined: they join the one check, the pool is not full for them.
    more = [pending(auth.authenticate("DESCRIBE", "rtsp://cam/stream1",
                                      basic("admin", PASSWORD), client="10.0.0.1"))
            for _ in range(199)]
    assert len(pool.queue) == 1
    pool.run_next()
    assert first[0].name == "admin" and all(m[0].name == "admin" for m in more)
    # Cached: answered at once, no pool work.
    assert result(auth.check_password("admin", PASSWORD, "10.0.0.2")).name == "admin"
    assert not pool.queue
    reactor.advance(61)
    pending(auth.check_password("admin", PASSWORD, "10.0.0.2"))
    assert len(pool.queue) == 1


def test_fast_paths_never_touch_the_pool(tmp_path):
    pool = SyncThreadPool()
    reactor = ImmediateReactor()
    reactor.advance(1_800_000_000)
    auth, _ = make_auth(tmp_path, pool=pool, clock=reactor)
    token = result(auth.login("admin", PASSWORD, "10.0.0.1"))["token"]
    assert pool.calls == 1
    header, _ = digest_header(auth, "GET", "/api/info", "admin", PASSWORD)
    for d in (auth.authenticate("GET", "/", "Bearer " + token, client="10.0.0.1"),
              auth.authenticate("GET", "/", token=token, client="10.0.0.1"),
              auth.authenticate("GET", "/", cookie=token, client="10.0.0.1"),
              auth.authenticate("GET", "/api/info", header, client="10.0.0.1"),
              auth.authenticate("GET", "/", basic("admin", PASSWORD), client="10.0.0.3"),
              auth.authenticate("GET", "/", client="10.0.0.1")):
        result(d)
    assert pool.calls == 1


def test_the_cache_holds_no_password_and_forgets_a_changed_or_deleted_user(tmp_path):
    pool = SyncThreadPool()
    reactor = ImmediateReactor()
    reactor.advance(1_800_000_000)
    auth, _ = make_auth(tmp_path, pool=pool, clock=reactor)
    auth.users.add("op", "operator-pass", "operator")
    result(auth.check_password("op", "operator-pass", "10.0.0.1"))
    result(auth.check_password("admin", PASSWORD, "10.0.0.1"))
    assert pool.calls == 2
    cache = auth.checker._cache
    assert len(cache) == 2
    for key, (name, _) in cache.items():
        assert isinstance(key, bytes) and len(key) == 32
        assert b"operator-pass" not in key and PASSWORD.encode() not in key
    # Another run keys the cache differently (the HMAC key is made at each start).
    (tmp_path / "again").mkdir()
    other, _ = make_auth(tmp_path / "again")
    assert other.checker._id("op", "operator-pass") != auth.checker._id("op", "operator-pass")
    auth.users.set_password("op", "a-new-password")
    with pytest.raises(AuthError):
        result(auth.check_password("op", "operator-pass", "10.0.0.1"))
    assert pool.calls == 3  # the old password was checked again, and refused
    result(auth.check_password("admin", PASSWORD, "10.0.0.1"))
    assert pool.calls == 3  # admin's entry stayed
    auth.users.delete("op")
    with pytest.raises(AuthError):
        result(auth.check_password("op", "a-new-password", "10.0.0.1"))


def test_a_password_changed_during_its_check_is_not_accepted_or_cached(tmp_path):
    auth, pool, _ = queued_auth(tmp_path)
    auth.users.add("op", "operator-pass", "operator")
    waiting = pending(auth.check_password("op", "operator-pass", "10.0.0.1"))
    auth.users.set_password("op", "a-new-password")
    pool.run_next()
    assert waiting[0].check(AuthError) and "changed" in waiting[0].value.message
    assert not auth.checker._cache
    assert auth.lockouts.retry_after(("op", "10.0.0.1")) == 0


def test_password_checks_per_address_are_limited_and_cache_hits_are_free(tmp_path):
    pool = SyncThreadPool()
    reactor = ImmediateReactor()
    reactor.advance(1_800_000_000)
    auth, _ = make_auth(tmp_path, pool=pool, clock=reactor, attempts_per_address=3,
                        attempts_window=60, login_failures=100)
    result(auth.check_password("admin", PASSWORD, "10.0.0.1"))
    for i in range(2):
        with pytest.raises(AuthError) as e:
            result(auth.check_password("user%d" % i, "guess", "10.0.0.1"))
        assert e.value.code == "UNAUTHORIZED"
    with pytest.raises(AuthError) as e:
        result(auth.check_password("someone", "guess", "10.0.0.1"))
    assert e.value.code == "RATE_LIMITED" and 0 < e.value.retry_after <= 60
    assert pool.calls == 3
    # The admin's verified password still works from there (the cache), and others
    # still hash from their own addresses.
    assert result(auth.check_password("admin", PASSWORD, "10.0.0.1")).name == "admin"
    with pytest.raises(AuthError) as e:
        result(auth.check_password("someone", "guess", "10.0.0.2"))
    assert e.value.code == "UNAUTHORIZED"
    reactor.advance(60)
    with pytest.raises(AuthError) as e:
        result(auth.check_password("someone", "guess", "10.0.0.1"))
    assert e.value.code == "UNAUTHORIZED"


def test_logged_names_are_bounded_and_escaped():
    assert loggable_name("admin") == "'admin'"
    long = loggable_name("x" * 100000 + "\n")
    assert len(long) < 100 and "100001 characters" in long and "\n" not in long
    assert "\\n" in loggable_name("evil\nINFO forged line")
    assert loggable_name(None) == "<NoneType>"


@pytest_twisted.inlineCallbacks
def test_a_real_thread_pool_hashes_off_the_reactor_thread(tmp_path):
    from twisted.internet import reactor
    pool = threadpool.ThreadPool(minthreads=0, maxthreads=2, name="test-auth")
    pool.start()
    try:
        auth, _ = make_auth(tmp_path, pool=pool, clock=reactor)
        seen = []
        real = checker.verify_password

        def spy(password, stored):
            seen.append(threading.current_thread())
            return real(password, stored)
        checker.verify_password = spy
        try:
            checks = [auth.check_password("admin", PASSWORD, "10.0.0.1"),
                      auth.check_password("admin", "wrong-one", "10.0.0.1"),
                      auth.check_password("nobody", "wrong-two", "10.0.0.2")]
            outcomes = yield defer.DeferredList(checks, consumeErrors=True)
        finally:
            checker.verify_password = real
        assert outcomes[0] == (True, auth.principal_for_user("admin"))
        assert not outcomes[1][0] and outcomes[1][1].check(AuthError)
        assert not outcomes[2][0] and outcomes[2][1].check(AuthError)
        assert len(seen) == 3 and threading.main_thread() not in seen
        assert auth.checker.running == 0
    finally:
        pool.stop()
