"""Who gets a WebRTC slot and who may touch a session: the policy alone, then the service
on a Clock with real aiortc offers (ICE on 127.0.0.1, no peer) expiring unanswered."""

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.task import Clock

from rotordream.auth import roles
from rotordream.config import WebRTC
from rotordream.media.hub import StreamHub
from rotordream.webrtc import WebRTCError, access
from rotordream.webrtc.sessions import WebRTCService, use_host_addresses
from tests.media.test_hub import au

CONFIG = WebRTC(max_sessions=6, max_sessions_per_address=2, reserved_sessions=2,
                offer_timeout=30)
VIEWER = roles.Principal("watcher", "viewer")
ADMIN = roles.Principal("admin", "admin")
OPERATOR = roles.Principal("op", "operator")
ANONYMOUS = roles.anonymous()


class Held:
    """A live session as the policy sees it."""

    def __init__(self, caller, key=None):
        self.user = caller.principal.name
        self.authenticated = caller.authenticated
        self.client = caller.client
        self.key = key or access.new_key()


def anon(client, key=None):
    return access.Caller(ANONYMOUS, client, key)


def refusal(sessions, caller, config=CONFIG):
    with pytest.raises(WebRTCError) as e:
        access.admit(sessions, caller, config)
    assert e.value.status == 429 and e.value.code == "RATE_LIMITED"
    assert e.value.extra["retry_after"] == config.offer_timeout
    return e.value


def test_anonymous_clients_are_capped_per_address_and_leave_the_reserve_to_users():
    held = []
    for client in ("10.0.0.2", "10.0.0.2"):
        access.admit(held, anon(client), CONFIG)
        held.append(Held(anon(client)))
    e = refusal(held, anon("10.0.0.2"))
    assert "max_sessions_per_address" in e.message and e.extra["limit"] == 2
    for client in ("10.0.0.3", "10.0.0.3"):
        access.admit(held, anon(client), CONFIG)
        held.append(Held(anon(client)))
    # Four of six taken by anonymous clients: the last two are for signed-in users.
    e = refusal(held, anon("10.0.0.4"))
    assert "signed-in" in e.message and e.extra["limit"] == 4
    # Users have no per-address cap: both from one address.
    for principal in (VIEWER, ADMIN):
        caller = access.Caller(principal, "10.0.0.2")
        access.admit(held, caller, CONFIG)
        held.append(Held(caller))
    e = refusal(held, access.Caller(ADMIN, "10.0.0.9"))
    assert "all 6" in e.message and e.extra["limit"] == 6
    # A reserve as large as the total leaves anonymous clients nothing.
    refusal([], anon("10.0.0.5"), WebRTC(max_sessions=2, reserved_sessions=5))


def test_an_anonymous_session_is_its_openers_by_key_and_address():
    key = access.new_key()
    assert len(key) == access.KEY_LENGTH == 43
    mine = Held(anon("10.0.0.2"), key)
    assert access.owns(mine, anon("10.0.0.2", key))
    assert not access.owns(mine, anon("10.0.0.2"))                  # no key: a neighbour
    assert not access.owns(mine, anon("10.0.0.2", access.new_key()))
    assert not access.owns(mine, anon("10.0.0.3", key))             # a stolen key
    assert not access.owns(mine, anon("10.0.0.2", key[:-1]))
    assert not access.owns(mine, anon("10.0.0.2", key + "x"))
    assert not access.owns(mine, anon("10.0.0.2", "é" * 43))
    # Signed-in users: by name, from anywhere; never an anonymous session, even their own.
    theirs = Held(access.Caller(VIEWER, "10.0.0.2"))
    assert access.owns(theirs, access.Caller(VIEWER, "10.0.0.7"))
    assert not access.owns(theirs, anon("10.0.0.2", theirs.key))
    assert not access.owns(mine, access.Caller(VIEWER, "10.0.0.2", key))
    # Operators and admins manage every session; viewers only their own.
    for principal in (OPERATOR, ADMIN):
        assert access.may_manage(mine, access.Caller(principal, "10.0.0.9"))
    assert not access.may_manage(mine, access.Caller(VIEWER, "10.0.0.2"))


def test_a_key_is_reused_only_by_the_client_it_was_given_to():
    key = access.new_key()
    held = [Held(anon("10.0.0.2"), key)]
    assert access.key_for(held, anon("10.0.0.2", key)) == key      # a second tab
    assert access.key_for(held, anon("10.0.0.3", key)) != key      # not from elsewhere
    chosen = "a" * 43                                               # nor one made up
    assert access.key_for(held, anon("10.0.0.2", chosen)) not in (chosen, key)


# -- the service: offers on a Clock ---------------------------------------------------------

@pytest.fixture
def service():
    use_host_addresses(["127.0.0.1"])
    hubs = {name: StreamHub(name) for name in ("stream1", "stream2")}
    for hub in hubs.values():
        hub.publish(au(0, True))
    clock = Clock()
    svc = WebRTCService(hubs, clock, CONFIG, wall=lambda: 1_800_000_000)
    yield svc, clock
    use_host_addresses(())


def _settle(d):
    """The Deferred's result or its WebRTCError, without raising."""
    return d.addErrback(lambda f: f.trap(WebRTCError) and f.value)


@pytest_twisted.inlineCallbacks
def test_unanswered_offers_expire_on_the_clock_and_free_their_slots(service):
    svc, clock = service
    first = yield svc.offer("stream1", anon("10.0.0.2"))
    key = first["key"]
    second = yield svc.offer("stream2", anon("10.0.0.2", key))
    assert second["key"] == key and first["id"] != second["id"] and len(first["id"]) >= 22
    refused = yield _settle(defer.maybeDeferred(svc.offer, "stream1",
                                                anon("10.0.0.2", key)))
    assert isinstance(refused, WebRTCError) and refused.status == 429
    # The opener lists and may end its own; a neighbour without the key sees nothing.
    assert {s["id"] for s in svc.visible(anon("10.0.0.2", key))} == {first["id"],
                                                                      second["id"]}
    assert svc.visible(anon("10.0.0.2")) == []
    with pytest.raises(WebRTCError) as e:
        svc.switch(first["id"], "stream2", anon("10.0.0.2"))
    assert e.value.status == 403
    listing = svc.visible(access.Caller(OPERATOR, "10.0.0.9"))
    assert {s["client"] for s in listing} == {"10.0.0.2"}
    # Nobody answers: after offer_timeout both end and the address may offer again.
    clock.advance(CONFIG.offer_timeout - 1)
    assert len(svc.sessions) == 2
    clock.advance(1)
    assert svc.sessions == {}
    third = yield svc.offer("stream1", anon("10.0.0.2", key))
    assert third["key"] != key    # its sessions are gone: the old key is not adopted
    yield svc.stopService()
