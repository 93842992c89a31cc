"""The one slot rule RTSP and WebRTC share (rotordream.auth.slots)."""

from rotordream.auth.slots import ADDRESS_CAP, ANONYMOUS_SHARE, FULL, refusal

LIMITS = dict(max_sessions=6, reserved=2, per_address=3)


def test_the_last_slots_are_kept_for_logged_in_users_whoever_holds_the_rest():
    # Three users and one anonymous client hold four of six: the last two stay free
    # for users, so a second anonymous client waits.
    assert refusal(4, 1, False, **LIMITS) == ANONYMOUS_SHARE
    assert refusal(4, 1, True, **LIMITS) is None
    assert refusal(5, 0, True, **LIMITS) is None
    assert refusal(6, 0, True, **LIMITS) == FULL
    assert refusal(6, 0, False, **LIMITS) == FULL


def test_anonymous_clients_are_capped_per_address_and_users_are_not():
    assert refusal(3, 3, False, **LIMITS) == ADDRESS_CAP
    assert refusal(3, 2, False, **LIMITS) is None
    assert refusal(3, 3, True, **LIMITS) is None
