"""RTSP session states and transitions, in one table (RFC 2326 appendix A)."""

INIT, READY, PLAYING = "INIT", "READY", "PLAYING"

# (state, method) -> next state. A method missing for a state is answered 455.
TRANSITIONS = {
    (INIT, "SETUP"): READY,
    (INIT, "TEARDOWN"): INIT,
    (READY, "SETUP"): READY,
    (READY, "PLAY"): PLAYING,
    (READY, "PAUSE"): READY,
    (READY, "TEARDOWN"): INIT,
    (PLAYING, "PLAY"): PLAYING,
    (PLAYING, "PAUSE"): READY,
    (PLAYING, "SETUP"): PLAYING,
    (PLAYING, "TEARDOWN"): INIT,
}
# Methods valid in every state that do not change it.
STATELESS = {"OPTIONS", "DESCRIBE", "GET_PARAMETER", "SET_PARAMETER"}
METHODS = sorted(STATELESS | {m for _, m in TRANSITIONS})


def next_state(state, method):
    """The state after ``method``, or None when the method is not valid in ``state``."""
    if method in STATELESS:
        return state
    return TRANSITIONS.get((state, method))
