"""The RTSP server without I/O: a request in, an answer and the effects to carry out.

:meth:`RTSPCore.receive` takes one parsed request of a connection and
returns a *step* (effects.py): an ``Answer`` (headers, body and effects such
as ``StartSending``), or a wait the adapter performs and feeds back
(``Authenticate``, ``WaitKeyframe``, ``DescribeRecording``,
``PrepareRecording``, each with a ``then`` giving the next step).
Refusals raise :class:`RtspError`. Which method is valid in which state, and
what a transition does, is the table of session.py; transport negotiation is
transport.py. The adapter (server.py) owns sockets, timers and Deferreds.

ONVIF replay (ONVIF Streaming Specification, "Playback"): a request may
``Require: onvif-replay`` of a recording (any other option tag, or that one on a
live stream, is 551 with ``Unsupported``); its PLAY may then give an absolute
``Range: clock=...`` (answered in kind), ``Rate-Control: no`` and ``Immediate``
(a PLAY always takes effect at once here), and the RTP carries the ONVIF header
extension (:class:`~rotordream.rtsp.effects.Replay`). Reverse playback (a
negative ``Scale``) is refused with 551.

Authentication: DESCRIBE and SETUP always; other requests only when they
name a UDP session of another connection, to compare the user with the
session's owner.

Why it is long: it is every method's request policy (live and recorded
streams, ONVIF replay's PLAY variants, admission, ownership, RTCP) over the one
set of sessions; splitting it would spread one decision over several modules.
"""

import collections
import random
import secrets

from rotordream.auth import roles, slots
from rotordream.rtp.packet import PacketError, ReceiverReport, parse_rtcp
from rotordream.rtp.sender import StreamFanout, TcpTarget, UdpTarget
from rotordream.rtsp import sdp, transport
from rotordream.rtsp.message import format_clock, parse_range_spec, split_url
from rotordream.rtsp.effects import (EFFECTS, Answer, Authenticate, DescribeRecording,
                                     PrepareRecording, Replay, StartSending, StopSending,
                                     UseTransport, WaitKeyframe)
from rotordream.rtsp.session import METHODS, SEEK, SENDING, START, Session, transition

RECORDING = "recording"   # the playback mount: /recording (latest) and /recording/<id>
MAX_SESSIONS_PER_CONNECTION = 8
AUTHENTICATED_METHODS = ("DESCRIBE", "SETUP")
KEYFRAME_WAIT = 5         # seconds a DESCRIBE waits for the first picture
REPLAY = "onvif-replay"   # the one option tag a client may Require (of a recording)


class RtspError(Exception):
    """Answer the request with ``status`` (extra headers, and a reason phrase if given)."""

    def __init__(self, status, message="", headers=(), reason=None):
        super().__init__(message)
        self.status = status
        self.headers = list(headers)
        self.reason = reason


def session_id(request):
    """The session id a request names in its Session header, or None."""
    value = request.headers.get("Session")
    return None if value is None else value.split(";")[0].strip()


class RTSPCore:
    """Sessions and request policy for every RTSP connection (no I/O, no timers)."""

    def __init__(self, config, fanouts, auth, clock, playback=None):
        """``config``: the [rtsp] section; ``playback``: the recordings provider or None."""
        self.config = config
        self.fanouts = fanouts
        self.auth = auth          # for challenges; the adapter checks credentials
        self.clock = clock        # anything with seconds()
        self.playback = playback
        self.sessions_by_id = {}
        self.anonymous = collections.Counter()  # address -> its sessions without credentials
        self.udp_server_port = None   # the RTP port of the server's pair, once bound
        self.multicast_groups = {}    # {stream: transport.Group} once the socket is bound
        # Totals of ended sessions: RTP packets by transport, slow-client drops by protocol.
        self.ended_packets, self.ended_drops = {}, {}

    # -- requests -------------------------------------------------------

    def receive(self, conn, request):
        """The first step answering ``request`` on ``conn``."""
        method = request.method
        if method not in METHODS:
            raise RtspError(405, "unknown method",
                            [("Allow", ", ".join(METHODS)), ("Public", ", ".join(METHODS))])
        segments, query = self._url(request)
        self._check_required(request, segments)
        handler = getattr(self, "do_" + method)
        if not self._needs_principal(conn, request):
            return handler(conn, request, None)
        token = (query.get("token") or [None])[0]
        if token:
            conn.token = token  # SETUP URLs come from Content-Base, without the query

        def authenticated(principal):
            if not conn.connected:
                raise RtspError(503, "the connection closed meanwhile")
            return handler(conn, request, principal)
        return Authenticate(method, request.uri, request.headers.get("Authorization"),
                            token or conn.token, conn.client_host, authenticated)

    @staticmethod
    def required(request):
        """The option tags a request Requires."""
        return [t.strip() for t in (request.headers.get("Require") or "").split(",")
                if t.strip()]

    def _check_required(self, request, segments):
        """551 with Unsupported for option tags we do not offer for this URL."""
        recording = bool(segments) and segments[0] == RECORDING and self.playback is not None
        unsupported = [t for t in self.required(request)
                       if t != REPLAY or not recording and request.uri != "*"]
        if unsupported:
            raise RtspError(551, "unsupported option", [("Unsupported", ", ".join(unsupported))])

    def refused(self, error):
        """The RtspError for an AuthError from the credential check."""
        if error.code == "RATE_LIMITED":
            return RtspError(503, error.message,
                             [("Retry-After", "%d" % (error.retry_after or 1))],
                             reason="Service Unavailable: too many login attempts")
        return RtspError(401, error.message, self._challenges(error.stale))

    def _challenges(self, stale=False):
        return [("WWW-Authenticate", c) for c in self.auth.challenges(stale=stale)]

    def _needs_principal(self, conn, request):
        if request.method in AUTHENTICATED_METHODS:
            return True
        session = self.sessions_by_id.get(session_id(request))
        return session is not None and session.connection is not conn and \
            session.transport_name in (transport.UDP, transport.MULTICAST)

    @staticmethod
    def _url(request):
        try:
            return split_url(request.uri)
        except ValueError:
            raise RtspError(400, "unparsable URL", reason="Bad Request: unparsable URL") \
                from None

    def _stream(self, conn, request):
        """(mount, recording id or None, track, query) of a request URL."""
        segments, query = self._url(request)
        if not segments:
            raise RtspError(404, "no such stream")
        mount, rest, rid = segments[0], segments[1:], None
        if mount == RECORDING:
            if self.playback is None:
                raise RtspError(404, "recording is not available")
            if rest and not rest[0].startswith("trackID="):
                rid, rest = rest[0], rest[1:]
        elif mount not in self.fanouts:
            raise RtspError(404, "no such stream")
        track = rest[0] if rest else None
        if "tcp" in query or "udp" in query:
            # Clients build SETUP URLs from Content-Base without the query: the pin
            # given on DESCRIBE holds for the rest of the connection.
            conn.pinned = "tcp" if "tcp" in query else "udp"
        return mount, rid, track, query

    def _authorize(self, principal):
        if not principal.can(roles.STREAM_WATCH):
            if principal.authenticated:
                raise RtspError(403, "not allowed to watch")
            raise RtspError(401, "log in to watch", self._challenges())

    def _session(self, conn, request, principal):
        """The session the request names, if its owner asks (a sign of life); else 454."""
        sid = session_id(request)
        if sid is None:
            return None
        session = self.sessions_by_id.get(sid)
        if session is None or not session.owned_by(conn, principal, conn.client_host):
            raise RtspError(454, "session not found")
        session.alive(self.clock.seconds())
        return session

    def _session_header(self, session):
        return ("Session", "%s;timeout=%d" % (session.id, self.config.session_timeout))

    def do_OPTIONS(self, conn, request, principal):
        try:
            self._session(conn, request, principal)
        except RtspError:
            pass
        return Answer([("Public", ", ".join(METHODS))])

    def do_GET_PARAMETER(self, conn, request, principal):
        session = self._session(conn, request, principal)
        return Answer([self._session_header(session)] if session else [])

    do_SET_PARAMETER = do_GET_PARAMETER

    def do_DESCRIBE(self, conn, request, principal):
        stream, rid, track, query = self._stream(conn, request)
        self._authorize(principal)
        base = request.uri.split("?")[0].rstrip("/") + "/"
        if stream == RECORDING:
            return self._describe_recording(conn, rid, base)

        # "?multicast" asks for the stream's group in the SDP (when multicast is on).
        group = self.multicast_groups.get(stream) if "multicast" in query else None

        def answer(au):
            body = sdp.describe(random.getrandbits(31), conn.server_host, stream, au.sps,
                                au.pps, au.width, au.height, au.fps, multicast=group)
            return Answer([("Content-Type", "application/sdp"), ("Content-Base", base)], body)

        hub = self.fanouts[stream].hub
        latest = hub.latest
        if latest is not None and latest.sps:
            return answer(latest)
        return WaitKeyframe(hub, KEYFRAME_WAIT, answer)

    def _describe_recording(self, conn, rid, base):
        def answer(info):
            body = sdp.describe(random.getrandbits(31), conn.server_host,
                                "recording " + info["id"], info["sps"], info["pps"],
                                info["width"], info["height"], info["fps"],
                                npt_range="0-%.3f" % info["duration"])
            return Answer([("Content-Type", "application/sdp"), ("Content-Base", base)], body)
        return DescribeRecording(self.playback, rid, answer)

    def do_SETUP(self, conn, request, principal):
        stream, rid, track, query = self._stream(conn, request)
        self._authorize(principal)
        if track not in (None, "trackID=0"):
            raise RtspError(404, "no such track")
        session = self._session(conn, request, principal)
        if session is not None:
            if session.stream != stream and not session.stream.startswith(stream + "/"):
                raise RtspError(459, "one stream per session")
            if transition(session.state, "SETUP") is None:
                raise RtspError(455, "already playing")
        else:
            self._admit(conn, principal)
        chosen = self._choose_transport(conn, request, session, stream)
        if session is None:
            session = self._new_session(conn, principal, stream, rid)
        if REPLAY in self.required(request):
            session.replay = True
        value = transport.reply(chosen, session.source.ssrc, self.udp_server_port)
        session.state = transition(session.state, "SETUP").state
        return Answer([("Transport", value), self._session_header(session)],
                      effects=(UseTransport(session, chosen, conn),))

    def _choose_transport(self, conn, request, session, stream):
        used = [ch for s in conn.sessions.values() if s is not session
                and isinstance(s.target, TcpTarget)
                for ch in (s.target.rtp_channel, s.target.rtcp_channel)]
        try:
            return transport.negotiate(request.headers.get("Transport", ""), conn.pinned,
                                       used, udp=self.udp_server_port is not None,
                                       group=self.multicast_groups.get(stream))
        except transport.Missing as e:
            raise RtspError(461, e.problem) from None
        except transport.Unsupported as e:
            raise RtspError(461, e.problem or "unsupported transport",
                            reason="Unsupported Transport" +
                            (": " + e.problem if e.problem else "")) from None

    def _admit(self, conn, principal):
        """Raise the refusal when ``principal`` on ``conn`` may not start a session now."""
        cfg = self.config
        here = self.anonymous[conn.client_host]
        why = slots.refusal(len(self.sessions_by_id), here, principal.authenticated,
                            cfg.max_sessions, cfg.reserved_sessions,
                            cfg.max_sessions_per_address)
        if why is not None:
            if why == slots.FULL:
                raise RtspError(503, "too many sessions", [("Retry-After", "5")],
                                reason="Service Unavailable: all sessions are in use")
            # The slots left need credentials: a 401 makes clients that have them
            # (FFmpeg, GStreamer send none until challenged) log in and get one.
            raise RtspError(401, "log in for a session", self._challenges(),
                            reason="Unauthorized: log in for more sessions from this address"
                            if why == slots.ADDRESS_CAP else
                            "Unauthorized: the sessions left are for logged-in users")
        if len(conn.sessions) >= MAX_SESSIONS_PER_CONNECTION:
            raise RtspError(503, "too many sessions on this connection",
                            reason="Service Unavailable: too many sessions on this connection")

    def _new_session(self, conn, principal, stream, rid):
        session = Session(secrets.token_hex(8), stream, conn, principal, conn.client_host,
                          self.clock.seconds())
        if stream == RECORDING:
            try:
                session.source = self.playback.player(rid, self.config.mtu)
            except KeyError:
                raise RtspError(404, "no such recording")
            session.stream = "%s/%s" % (RECORDING, session.source.id)
        else:
            session.source = self.fanouts[stream]
        self.sessions_by_id[session.id] = session
        if not session.authenticated:
            self.anonymous[session.address] += 1
        conn.sessions[session.id] = session
        return session

    def _require_session(self, conn, request, principal, method):
        session = self._session(conn, request, principal)
        if session is None:
            raise RtspError(454, "session not found")
        step = transition(session.state, method)
        if step is None:
            raise RtspError(455, "%s is not valid in state %s" % (method, session.state),
                            [("Allow", "SETUP, TEARDOWN, OPTIONS")])
        return session, step

    def do_PLAY(self, conn, request, principal):
        session, step = self._require_session(conn, request, principal, "PLAY")
        source = session.source
        if not isinstance(source, StreamFanout):
            return self._play_recording(session, request, step)
        # A live stream starts now whatever Range asks (a "seek" is a no-op).
        headers = [self._session_header(session), ("Range", "npt=now-")]
        effects = ()
        if START in step.effects:
            seq, rtptime = source.start_info()
            headers.append(self._rtp_info(request, seq, rtptime))
            effects = (StartSending(session),)  # after the reply: the GOP burst and an SR
        self._played(session, step.state)
        return Answer(headers, effects=effects)

    def _played(self, session, state):
        session.state = state
        session.played = True
        session.alive(self.clock.seconds())

    @staticmethod
    def _rtp_info(request, seq, rtptime):
        base = request.uri.split("?")[0].rstrip("/")
        control = base if base.endswith("trackID=0") else base + "/trackID=0"
        return ("RTP-Info", "url=%s;seq=%d;rtptime=%d" % (control, seq, rtptime))

    def _play_recording(self, session, request, step):
        """PLAY of a recording: seek to the keyframe at or before Range's start (npt, or an
        absolute clock time), then pace (or, replayed without rate control, stream)."""
        player = session.source
        try:
            unit, start, _ = parse_range_spec(request.headers.get("Range"))
        except ValueError:
            raise RtspError(457, "Range must be npt=<seconds>- or clock=<utc time>-")
        npt = start
        if unit == "clock":
            # From before the recording: its beginning; from after it: nothing to play.
            npt = max(0.0, start - player.start)
            if npt > player.duration:
                raise RtspError(457, "the recording spans %s-%s"
                                % (format_clock(player.start),
                                   format_clock(player.start + player.duration)))
        replay = self._replay(session, request)
        effects = ()
        if SEEK in step.effects:
            if npt is None:
                return Answer([self._session_header(session)])
            effects = (StopSending(session),)   # a seek while playing: at once (Immediate)

        def ready(info):
            begin, seq, rtptime = info
            if session.id not in self.sessions_by_id:
                raise RtspError(454, "session not found")
            self._played(session, step.state)
            if unit == "clock":
                span = "clock=%s-%s" % (format_clock(player.start + begin),
                                        format_clock(player.start + player.duration))
            else:
                span = "npt=%.3f-%.3f" % (begin, player.duration)
            headers = [self._session_header(session), ("Range", span),
                       self._rtp_info(request, seq, rtptime)]
            if replay is not None and request.headers.get("Rate-Control"):
                headers.append(("Rate-Control", "yes" if replay.paced else "no"))
            return Answer(headers, effects=(StartSending(session),))
        return PrepareRecording(player, npt, ready, effects, replay)

    def _replay(self, session, request):
        """The :class:`Replay` of a PLAY of a session set up (or played) for ONVIF replay,
        else None; 551 for reverse playback."""
        scale = request.headers.get("Scale")
        if scale is not None:
            try:
                value = float(scale)
            except ValueError:
                raise RtspError(456, "Scale is a number") from None
            if value < 0:
                raise RtspError(551, "reverse playback is not supported",
                                [("Unsupported", "Scale")])
        if not (session.replay or REPLAY in self.required(request)):
            return None
        session.replay = True
        rate = (request.headers.get("Rate-Control") or "yes").strip().lower()
        # Without rate control only a TCP client can hold the sender back.
        paced = rate != "no" or session.transport_name != "tcp"
        return Replay(int(request.cseq or 0) & 0xFF, paced)

    def do_PAUSE(self, conn, request, principal):
        session, step = self._require_session(conn, request, principal, "PAUSE")
        session.state = step.state
        return Answer([self._session_header(session)], effects=self._effects(session, step))

    def do_TEARDOWN(self, conn, request, principal):
        session, step = self._require_session(conn, request, principal, "TEARDOWN")
        return Answer([("Session", session.id)], effects=self.end(session))

    # -- ending sessions ------------------------------------------------

    def end(self, session):
        """Forget ``session``; the effects that stop its RTP (the table's TEARDOWN row)."""
        if session.id not in self.sessions_by_id:
            return ()
        step = transition(session.state, "TEARDOWN")
        effects = self._effects(session, step)
        session.state = step.state
        del self.sessions_by_id[session.id]
        if not session.authenticated:
            self.anonymous[session.address] -= 1
            if not self.anonymous[session.address]:
                del self.anonymous[session.address]
        t = session.target
        if t is not None:
            self.ended_packets[t.transport_name] = \
                self.ended_packets.get(t.transport_name, 0) + t.packets
            proto = getattr(session.connection, "protocol", "rtsp")
            self.ended_drops[proto] = self.ended_drops.get(proto, 0) + t.dropped_units
        session.connection.sessions.pop(session.id, None)
        return effects

    @staticmethod
    def _effects(session, step):
        return tuple(EFFECTS[name](session) for name in step.effects if name in EFFECTS)

    def sending(self, session):
        """Should RTP flow to ``session`` now (it still exists, in a state that sends)?"""
        return session.id in self.sessions_by_id and session.state in SENDING

    def expired(self, now):
        """The sessions whose time is up (the rule of session.Session.expired)."""
        cfg = self.config
        return [s for s in list(self.sessions_by_id.values())
                if s.expired(now, cfg.setup_timeout, cfg.session_timeout)]

    # -- RTCP from clients ----------------------------------------------

    def rtcp_received(self, data, addr):
        """UDP RTCP from a client: a receiver report from its RTCP address keeps it alive."""
        for session in self.sessions_by_id.values():
            t = session.target
            if isinstance(t, UdpTarget) and t.rtcp_addr[0] == addr[0] and \
                    t.rtcp_addr[1] == addr[1]:
                self._note_rtcp(session, data)

    def interleaved_received(self, conn, frame):
        """An interleaved frame: RTCP on the odd channel of one of this connection's sessions."""
        for session in conn.sessions.values():
            t = session.target
            if isinstance(t, TcpTarget) and frame.channel == t.rtcp_channel:
                self._note_rtcp(session, frame.data)

    def _note_rtcp(self, session, data):
        try:
            packets = parse_rtcp(data)
        except PacketError:
            return
        reports = [p for p in packets if isinstance(p, ReceiverReport)]
        if not reports:
            return
        session.alive(self.clock.seconds())
        # Only a block about what this session sends says how its viewer receives it.
        ssrc = session.source.ssrc if session.source is not None else None
        for block in (b for r in reports for b in r.reports if b.ssrc == ssrc):
            session.target.loss = block.fraction_lost / 256.0
            session.target.jitter = block.jitter
