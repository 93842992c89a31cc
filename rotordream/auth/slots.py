"""Who may open another viewing session (RTSP, WebRTC): one rule for every protocol.

At most ``max_sessions`` in all. The last ``reserved`` of them are kept for
authenticated users: a client without credentials gets a session only while
fewer than ``max_sessions - reserved`` are open, and at most ``per_address``
from its address. Authenticated users have no per-address cap, so a logged-in
viewer can watch while anonymous clients hold everything they may.
"""

FULL = "full"                  # every slot is taken
ANONYMOUS_SHARE = "anonymous"  # the rest is kept for authenticated users
ADDRESS_CAP = "address"        # this address holds all an anonymous client may


def refusal(open_sessions, anonymous_here, authenticated, max_sessions, reserved,
            per_address):
    """None when a new session may start, else FULL, ANONYMOUS_SHARE or ADDRESS_CAP.

    ``open_sessions``: how many are open; ``anonymous_here``: how many of them
    anonymous clients at the caller's address hold.
    """
    if open_sessions >= max_sessions:
        return FULL
    if authenticated:
        return None
    if open_sessions >= max_sessions - reserved:
        return ANONYMOUS_SHARE
    if anonymous_here >= per_address:
        return ADDRESS_CAP
    return None
