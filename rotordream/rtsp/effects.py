"""What the RTSP core asks of its adapter: steps to perform and effects to carry out.

A *step* is the core's answer to a request so far: an :class:`Answer`, or a
wait the adapter performs before calling ``then`` with the result. *Effects*
ride on an Answer (and on a recording's seek) and are carried out in order
once it is decided. Plain data: no I/O here, none in the core.
"""

from dataclasses import dataclass

from rotordream.rtsp.session import BYE, CLOSE, START, STOP, Session
from rotordream.rtsp.transport import Chosen


# -- steps ---------------------------------------------------------------

@dataclass
class Answer:
    """200 with ``headers`` and ``body``; the adapter then carries out ``effects`` in order."""

    headers: list
    body: bytes = b""
    effects: tuple = ()


@dataclass
class Authenticate:
    """Check the request's credentials; ``then(principal)`` is the next step."""

    method: str
    uri: str
    authorization: str
    token: str
    client: str
    then: object


@dataclass
class WaitKeyframe:
    """Wait up to ``timeout`` seconds for ``hub``'s keyframe; ``then(au)``, else 503."""

    hub: object
    timeout: float
    then: object


@dataclass
class DescribeRecording:
    """Ask the playback provider to describe ``rid``; ``then(info)`` (404 when unreadable)."""

    playback: object
    rid: str
    then: object


@dataclass(frozen=True)
class Replay:
    """ONVIF replay asked for by a PLAY (``Require: onvif-replay``): every RTP packet
    carries the ONVIF header extension (the frame's NTP time, clean point, end of footage,
    the PLAY's CSeq), and ``paced`` False (``Rate-Control: no``) sends as fast as a TCP
    client takes it."""

    cseq: int
    paced: bool = True


@dataclass
class PrepareRecording:
    """Carry out ``effects``, seek ``player`` to ``npt`` in ``replay`` mode (None: plain
    RTSP); ``then((start, seq, rtptime))``."""

    player: object
    npt: float
    then: object
    effects: tuple = ()
    replay: Replay = None


# -- effects --------------------------------------------------------------

@dataclass(frozen=True)
class UseTransport:
    """Point the session's RTP at the transport SETUP chose (a new target)."""

    session: Session
    chosen: Chosen
    connection: object


@dataclass(frozen=True)
class StartSending:
    """After the answer: add the session's target to its source, send an SR, schedule SRs."""

    session: Session


@dataclass(frozen=True)
class StopSending:
    """Remove the session's target from its source and stop its SR timer."""

    session: Session


@dataclass(frozen=True)
class SendBye:
    """Send RTCP SR + BYE to the session's target."""

    session: Session


@dataclass(frozen=True)
class CloseSource:
    """Release the session's source (a recording's file player)."""

    session: Session


EFFECTS = {STOP: StopSending, BYE: SendBye, CLOSE: CloseSource, START: StartSending}
