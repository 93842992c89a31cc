"""RTSP sessions without I/O: the state table, who owns a session, when it ends, who gets one.

States (RFC 2326 appendix A) and what each transition does are the table
``TABLE``: the server asks :func:`transition` and never tests a state itself.

Expiry is one rule, :meth:`Session.expired`:

- A session SET UP and never PLAYed ends ``setup_timeout`` seconds after its
  SETUP, whatever its connection sends meanwhile.
- A played session (PLAYING, or READY after a PAUSE) ends ``session_timeout``
  seconds after its last sign of life. The only signs of life
  (:meth:`Session.alive`) are: a request whose Session header names it,
  accepted from its owner (any method: OPTIONS, GET_PARAMETER,
  SET_PARAMETER, PLAY, PAUSE); for UDP, an RTCP compound holding a receiver
  report that reaches the server's ports from the client's RTCP address
  given at SETUP; for TCP, such a compound on the session's interleaved
  RTCP channel of its own connection. Other requests on the connection and
  other sessions' traffic keep nothing alive.

Ownership, :meth:`Session.owned_by`: a TCP-interleaved session belongs to its
connection. A UDP or multicast session belongs to its connection and, on any other
connection, to requests from the same source address by the same
authenticated user as its SETUP (anonymous clients are one identity per
address). Anyone else naming the id is told 454 Session Not Found.

Slots: :func:`rotordream.auth.slots.refusal`, the rule WebRTC follows too.
"""

from dataclasses import dataclass

INIT, READY, PLAYING = "INIT", "READY", "PLAYING"

# What a transition does (carried out by the server after deciding it):
START = "start"    # start sending RTP (after the answer)
STOP = "stop"      # stop sending RTP
SEEK = "seek"      # PLAY while playing: a recording seeks when Range says where, live ignores it
BYE = "bye"        # tell the client the stream ended (RTCP BYE)
CLOSE = "close"    # release the session's source


@dataclass(frozen=True)
class Transition:
    """The state after a method, and what the server does on the way."""

    state: str
    effects: tuple = ()


# (state, method) -> Transition. A method missing for a state is answered 455.
# TEARDOWN is also how a session ends when its connection closes or it expires.
TABLE = {
    (INIT, "SETUP"): Transition(READY),
    (INIT, "TEARDOWN"): Transition(INIT, (STOP, CLOSE)),
    (READY, "SETUP"): Transition(READY),                 # a new transport
    (READY, "PLAY"): Transition(PLAYING, (START,)),
    (READY, "PAUSE"): Transition(READY, (STOP,)),
    (READY, "TEARDOWN"): Transition(INIT, (STOP, CLOSE)),
    (PLAYING, "PLAY"): Transition(PLAYING, (SEEK,)),
    (PLAYING, "PAUSE"): Transition(READY, (STOP,)),
    (PLAYING, "TEARDOWN"): Transition(INIT, (STOP, BYE, CLOSE)),
}
# SETUP while PLAYING (valid per RFC 2326 appendix A) is left out: no transport change
# under a playing stream (455).
SENDING = {PLAYING}   # states in which RTP flows
TRANSITIONS = {key: t.state for key, t in TABLE.items()}
# Methods valid in every state that do not change it.
STATELESS = {"OPTIONS", "DESCRIBE", "GET_PARAMETER", "SET_PARAMETER"}
METHODS = sorted(STATELESS | {m for _, m in TABLE})


def transition(state, method):
    """The :class:`Transition` of ``method`` in ``state``, or None when it is not valid."""
    if method in STATELESS:
        return Transition(state)
    return TABLE.get((state, method))


def next_state(state, method):
    """The state after ``method``, or None when the method is not valid in ``state``."""
    t = transition(state, method)
    return None if t is None else t.state


class Session:
    """One RTSP session: its stream, owner, transport target, state and timestamps."""

    def __init__(self, session_id, stream, connection, principal, address, now):
        self.id = session_id
        self.stream = stream
        self.connection = connection
        self.user = principal.name if principal.authenticated else None
        self.address = address
        self.state = INIT
        self.target = None
        self.source = None   # the StreamFanout (live) or FilePlayer (recording) it plays
        self.created = now
        self.played = False
        self.last_seen = now
        self.sr_loop = None  # the adapter's SR timer while sending
        self.replay = False  # set up with Require: onvif-replay (a recording only)

    @property
    def authenticated(self):
        """True when its SETUP carried valid credentials."""
        return self.user is not None

    @property
    def transport_name(self):
        """"tcp", "udp", "multicast" or None before a transport is set."""
        return self.target.transport_name if self.target is not None else None

    def owned_by(self, connection, principal=None, address=None):
        """May a request on ``connection`` (by ``principal`` from ``address``) use this session?"""
        if connection is self.connection:
            return True
        if self.transport_name not in ("udp", "multicast") or principal is None:
            return False
        user = principal.name if principal.authenticated else None
        return user == self.user and address == self.address

    def alive(self, now):
        """A sign of life (see the module docstring); only counts once the session played."""
        self.last_seen = now

    def expired(self, now, setup_timeout, session_timeout):
        """True when the session has outlived its rule (see the module docstring)."""
        if not self.played:
            return now - self.created >= setup_timeout
        return now - self.last_seen >= session_timeout
