"""The RTSP server: a thin Twisted adapter over message.py, session.py, sdp.py and fanout.py.

Connections (connection.py) hand it one request at a time; it answers with a
Response or a Deferred of one. Who may use a session, when sessions expire
and who gets a new one are the rules of session.py. RTP goes out through the
shared stream fanouts over UDP (one server port pair for everyone) or
interleaved on the connection.

Authentication goes through ``maybeDeferred(auth.authenticate, ...)``: the
check may run in a thread pool. DESCRIBE and SETUP are always authenticated;
other requests only when they name a UDP session of another connection, to
compare the user with the session's owner.
"""

import random
import secrets
import time

from twisted.internet import defer, protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from rotordream.auth import roles
from rotordream.auth.service import AuthError
from rotordream.rtp.packet import PacketError, ReceiverReport, parse_rtcp
from rotordream.rtsp import sdp
from rotordream.rtsp.connection import RTSPConnection, RTSPFactory  # noqa: F401 (public here)
from rotordream.rtsp.fanout import StreamFanout, TcpTarget, UdpTarget
from rotordream.rtsp.message import (SERVER_NAME, Response, client_ports, http_date,
                                     interleaved_channels, parse_range, parse_transport,
                                     split_url)
from rotordream.rtsp.session import (ADDRESS_CAP, FULL, INIT, METHODS, PLAYING, Session,
                                     next_state, refusal)

log = Logger()

RECORDING = "recording"   # the playback mount: /recording (latest) and /recording/<id>
SR_INTERVAL = 5.0
MAX_SESSIONS_PER_CONNECTION = 8
AUTHENTICATED_METHODS = ("DESCRIBE", "SETUP")


class RtspError(Exception):
    """Answer the request with ``status`` (extra headers, and a reason phrase if given)."""

    def __init__(self, status, message="", headers=(), reason=None):
        super().__init__(message)
        self.status = status
        self.headers = list(headers)
        self.reason = reason


class RtcpPort(protocol.DatagramProtocol):
    """The server's RTP or RTCP UDP socket; RTCP from clients keeps sessions alive."""

    def __init__(self, server):
        self.server = server

    def datagramReceived(self, data, addr):
        self.server.rtcp_received(data, addr)


def session_id(request):
    """The session id a request names in its Session header, or None."""
    value = request.headers.get("Session")
    return None if value is None else value.split(";")[0].strip()


class RTSPServer:
    """Sessions, mounts and RTP transport for all RTSP connections."""

    def __init__(self, ctx, clock=None):
        cfg = ctx.config.rtsp
        self.ctx = ctx
        self.clock = clock or ctx.reactor
        self.auth = ctx.auth
        self.max_sessions = cfg.max_sessions
        self.timeout = cfg.session_timeout
        self.setup_timeout = cfg.setup_timeout
        self.reserved_sessions = cfg.reserved_sessions
        self.max_sessions_per_address = cfg.max_sessions_per_address
        self.client_queue = cfg.client_queue
        self.listener = None
        self.fanouts = {name: StreamFanout(name, hub, cfg.mtu)
                        for name, hub in ctx.pipeline.hubs.items()}
        self.sessions_by_id = {}
        self.rtp_port = RtcpPort(self)
        self.rtcp_port = RtcpPort(self)
        self.udp_ports = None
        self.rejected = 0
        self._reaper = LoopingCall(self.reap)
        self._reaper.clock = self.clock

    @property
    def port(self):
        """The RTSP port actually listened on (None before start)."""
        if self.listener is not None and self.listener.port is not None:
            return self.listener.port.getHost().port
        return None

    @property
    def reap_interval(self):
        """Seconds between expiry checks: a tenth of the shorter timeout."""
        return max(0.25, min(self.setup_timeout, self.timeout) / 10.0)

    # -- lifecycle ------------------------------------------------------

    def start(self, reactor):
        """Bind the RTP/RTCP port pair and start reaping expired sessions."""
        cfg = self.ctx.config.rtsp
        last_error = None
        for port in range(cfg.rtp_port_min - cfg.rtp_port_min % 2, cfg.rtp_port_max, 2):
            try:
                rtp = reactor.listenUDP(port, self.rtp_port)
            except Exception as e:
                last_error = e
                continue
            try:
                rtcp = reactor.listenUDP(port + 1, self.rtcp_port)
            except Exception as e:
                rtp.stopListening()
                last_error = e
                continue
            self.udp_ports = (rtp, rtcp)
            break
        else:
            log.error("no free RTP port pair in {lo}-{hi} ({e}); UDP transport is off",
                      lo=cfg.rtp_port_min, hi=cfg.rtp_port_max, e=last_error)
        self._reaper.start(self.reap_interval, now=False)

    def stop(self):
        """Tear every session down and release the UDP ports."""
        for session in list(self.sessions_by_id.values()):
            self.teardown(session)
        if self._reaper.running:
            self._reaper.stop()
        if self.udp_ports:
            for p in self.udp_ports:
                p.stopListening()
            self.udp_ports = None

    def sessions(self):
        """The sessions as dicts, for the status API."""
        out = []
        for s in self.sessions_by_id.values():
            t = s.target
            out.append({"session": s.id, "stream": s.stream, "state": s.state,
                        "client": s.address,
                        "transport": t.transport_name if t else None,
                        "packets": t.packets if t else 0,
                        "loss": t.loss if t else None, "jitter": t.jitter if t else None,
                        "dropped_units": t.dropped_units if t else 0})
        return out

    def reap(self):
        """End the sessions whose time is up (the rule of session.Session.expired)."""
        now = self.clock.seconds()
        for session in list(self.sessions_by_id.values()):
            if session.expired(now, self.setup_timeout, self.timeout):
                log.info("RTSP session {id} of {client} expired ({why})", id=session.id,
                         client=session.address,
                         why="no keep-alive" if session.played else "SETUP without PLAY")
                self.teardown(session)

    # -- requests -------------------------------------------------------

    def handle(self, conn, request):
        """Answer one request; returns a Deferred of a Response."""
        headers = [("CSeq", request.cseq), ("Server", SERVER_NAME),
                   ("Date", http_date(time.time()))]

        def done(r):
            extra, body = r
            return Response(200, headers + extra, body)

        def failed(f):
            if f.check(RtspError):
                return Response(f.value.status, headers + f.value.headers,
                                reason=f.value.reason)
            log.failure("RTSP {method} failed", f, method=request.method)
            return Response(500, headers)

        return defer.maybeDeferred(self._dispatch, conn, request).addCallbacks(done, failed)

    def _dispatch(self, conn, request):
        method = request.method
        if method not in METHODS:
            raise RtspError(405, "unknown method",
                            [("Allow", ", ".join(METHODS)), ("Public", ", ".join(METHODS))])
        query = self._url(request)[1]
        handler = getattr(self, "do_" + method)
        if not self._needs_principal(conn, request):
            return handler(conn, request, None)
        token = (query.get("token") or [None])[0]
        if token:
            conn.token = token  # SETUP URLs come from Content-Base, without the query
        d = defer.maybeDeferred(self.auth.authenticate, request.method, request.uri,
                                authorization=request.headers.get("Authorization"),
                                token=token or conn.token, client=conn.client_host)

        def authenticated(principal):
            if not conn.connected:
                raise RtspError(503, "the connection closed meanwhile")
            return handler(conn, request, principal)
        return d.addCallbacks(authenticated, self._refused)

    def _refused(self, failure):
        failure.trap(AuthError)
        e = failure.value
        if e.code == "RATE_LIMITED":
            raise RtspError(503, e.message, [("Retry-After", "%d" % (e.retry_after or 1))],
                            reason="Service Unavailable: too many login attempts")
        raise RtspError(401, e.message, self._challenges(e.stale))

    def _challenges(self, stale=False):
        return [("WWW-Authenticate", c) for c in self.auth.challenges(stale=stale)]

    def _needs_principal(self, conn, request):
        if request.method in AUTHENTICATED_METHODS:
            return True
        session = self.sessions_by_id.get(session_id(request))
        return session is not None and session.connection is not conn and \
            session.transport_name == "udp"

    def _url(self, request):
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

    @property
    def playback(self):
        """The recordings' playback provider, when the recorder runs."""
        return getattr(self.ctx, "playback", None)

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
        return ("Session", "%s;timeout=%d" % (session.id, self.timeout))

    def do_OPTIONS(self, conn, request, principal):
        try:
            self._session(conn, request, principal)
        except RtspError:
            pass
        return [("Public", ", ".join(METHODS))], b""

    def do_GET_PARAMETER(self, conn, request, principal):
        session = self._session(conn, request, principal)
        extra = [self._session_header(session)] if session else []
        return extra, b""

    do_SET_PARAMETER = do_GET_PARAMETER

    def do_DESCRIBE(self, conn, request, principal):
        stream, rid, track, query = self._stream(conn, request)
        self._authorize(principal)
        base = request.uri.split("?")[0].rstrip("/") + "/"
        if stream == RECORDING:
            return self._describe_recording(conn, rid, base)
        fanout = self.fanouts[stream]

        def answer(au):
            host = conn.transport.getHost().host
            body = sdp.describe(random.getrandbits(31), host, stream, au.sps, au.pps, au.width,
                                au.height, au.fps)
            return [("Content-Type", "application/sdp"), ("Content-Base", base)], body

        latest = fanout.hub.latest
        if latest is not None and latest.sps:
            return answer(latest)

        def no_video_yet(result, timeout):
            raise RtspError(503, "no video yet", [("Retry-After", "1")])

        d = fanout.hub.keyframe()
        d.addTimeout(5, self.clock, onTimeoutCancel=no_video_yet)
        return d.addCallback(answer)

    def _describe_recording(self, conn, rid, base):
        try:
            d = self.playback.describe(rid)
        except KeyError:
            raise RtspError(404, "no such recording")

        def answer(info):
            host = conn.transport.getHost().host
            body = sdp.describe(random.getrandbits(31), host, "recording " + info["id"],
                                info["sps"], info["pps"], info["width"], info["height"],
                                info["fps"], npt_range="0-%.3f" % info["duration"])
            return [("Content-Type", "application/sdp"), ("Content-Base", base)], body

        def unreadable(f):
            if f.check(RtspError):
                return f
            log.failure("recording {rid} cannot be described", f, rid=rid)
            raise RtspError(404, "recording unreadable")
        return d.addCallbacks(answer, unreadable)

    def do_SETUP(self, conn, request, principal):
        stream, rid, track, query = self._stream(conn, request)
        self._authorize(principal)
        if track not in (None, "trackID=0"):
            raise RtspError(404, "no such track")
        session = self._session(conn, request, principal)
        if session is not None:
            if session.stream != stream and not session.stream.startswith(stream + "/"):
                raise RtspError(459, "one stream per session")
            if session.state == PLAYING:
                raise RtspError(455, "already playing")
        if session is None:
            self._admit(conn, principal)
        kind, pair = self._choose_transport(conn, request, session)
        if session is None:
            session = self._new_session(conn, principal, stream, rid)
        fanout = session.source
        if kind == "tcp":
            session.target = TcpTarget(conn.transport, pair[0], pair[1], self.client_queue)
            transport = "RTP/AVP/TCP;unicast;interleaved=%d-%d;ssrc=%08X" % (
                pair[0], pair[1], fanout.ssrc)
        else:
            # RTP goes to the address the SETUP came from, never to a "destination".
            session.target = UdpTarget(self.rtp_port, self.rtcp_port, conn.client_host,
                                       pair[0], pair[1])
            sp = self.udp_ports[0].getHost().port
            transport = "RTP/AVP;unicast;client_port=%d-%d;server_port=%d-%d;ssrc=%08X" % (
                pair[0], pair[1], sp, sp + 1, fanout.ssrc)
        session.state = next_state(session.state, "SETUP")
        return [("Transport", transport), self._session_header(session)], b""

    def _choose_transport(self, conn, request, session):
        """("tcp", channels) or ("udp", client ports) of the first usable offer; else 461."""
        offers = parse_transport(request.headers.get("Transport", ""))
        if not offers:
            raise RtspError(461, "Transport header missing")
        used = {ch for s in conn.sessions.values() if s is not session
                and isinstance(s.target, TcpTarget)
                for ch in (s.target.rtp_channel, s.target.rtcp_channel)}
        problem = None
        for offer in offers:
            proto = offer["protocol"]
            if proto not in ("RTP/AVP", "RTP/AVP/UDP", "RTP/AVP/TCP") or "multicast" in offer:
                continue
            is_tcp = proto == "RTP/AVP/TCP"
            if conn.pinned and (conn.pinned == "tcp") != is_tcp:
                continue
            try:
                if is_tcp:
                    pair = interleaved_channels(offer.get("interleaved", "0-1"))
                    if used.intersection(pair):
                        raise ValueError("interleaved channels already in use")
                    return "tcp", pair
                if "client_port" in offer and self.udp_ports is not None:
                    return "udp", client_ports(offer["client_port"])
            except ValueError as e:
                problem = problem or str(e)
        raise RtspError(461, problem or "unsupported transport",
                        reason="Unsupported Transport" + (": " + problem if problem else ""))

    def _admit(self, conn, principal):
        """Raise the refusal when ``principal`` on ``conn`` may not start a session now."""
        why = refusal(self.sessions_by_id.values(), principal.authenticated, conn.client_host,
                      self.max_sessions, self.reserved_sessions, self.max_sessions_per_address)
        if why is not None:
            self.rejected += 1
            if why == FULL:
                raise RtspError(503, "too many sessions", [("Retry-After", "5")],
                                reason="Service Unavailable: all sessions are in use")
            # The slots left need credentials: a 401 makes clients that have them
            # (FFmpeg, GStreamer send none until challenged) log in and get one.
            raise RtspError(401, "log in for a session", self._challenges(),
                            reason="Unauthorized: log in for more sessions from this address"
                            if why == ADDRESS_CAP else
                            "Unauthorized: the sessions left are for logged-in users")
        if len(conn.sessions) >= MAX_SESSIONS_PER_CONNECTION:
            raise RtspError(503, "too many sessions on this connection",
                            reason="Service Unavailable: too many sessions on this connection")

    def _new_session(self, conn, principal, stream, rid):
        session = Session(secrets.token_hex(8), stream, conn, principal, conn.client_host,
                          self.clock.seconds())
        if stream == RECORDING:
            try:
                session.source = self.playback.player(rid, self.ctx.config.rtsp.mtu)
            except KeyError:
                raise RtspError(404, "no such recording")
            session.stream = "%s/%s" % (RECORDING, session.source.id)
        else:
            session.source = self.fanouts[stream]
        self.sessions_by_id[session.id] = session
        conn.sessions[session.id] = session
        return session

    def _require_session(self, conn, request, principal, method):
        session = self._session(conn, request, principal)
        if session is None:
            raise RtspError(454, "session not found")
        new = next_state(session.state, method)
        if new is None:
            raise RtspError(455, "%s is not valid in state %s" % (method, session.state),
                            [("Allow", "SETUP, TEARDOWN, OPTIONS")])
        return session, new

    def do_PLAY(self, conn, request, principal):
        session, new = self._require_session(conn, request, principal, "PLAY")
        fanout = session.source
        if not isinstance(fanout, StreamFanout):
            return self._play_recording(session, request, new)
        # A live stream starts now whatever Range asks; the reply's Range says so.
        extra = [self._session_header(session), ("Range", "npt=now-")]
        if session.state != PLAYING:
            seq, rtptime = fanout.start_info()
            extra.append(self._rtp_info(request, seq, rtptime))
            # Reply first, then the burst of the cached GOP and an early SR.
            self.clock.callLater(0, self._start_playing, session, fanout)
        self._played(session, new)
        return extra, b""

    def _played(self, session, state):
        session.state = state
        session.played = True
        session.alive(self.clock.seconds())

    @staticmethod
    def _rtp_info(request, seq, rtptime):
        base = request.uri.split("?")[0].rstrip("/")
        control = base if base.endswith("trackID=0") else base + "/trackID=0"
        return ("RTP-Info", "url=%s;seq=%d;rtptime=%d" % (control, seq, rtptime))

    def _play_recording(self, session, request, new):
        """PLAY of a recording: seek to the keyframe at or before Range's start, then pace."""
        player = session.source
        try:
            npt = parse_range(request.headers.get("Range"))
        except ValueError:
            raise RtspError(457, "Range must be npt=<seconds>-")
        if session.state == PLAYING:
            if npt is None:
                return [self._session_header(session)], b""
            self._stop_sending(session)  # a seek while playing
        d = player.prepare(npt)

        def ready(info):
            start, seq, rtptime = info
            if session.id not in self.sessions_by_id:
                raise RtspError(454, "session not found")
            self._played(session, new)
            self.clock.callLater(0, self._start_playing, session, player)
            return [self._session_header(session),
                    ("Range", "npt=%.3f-%.3f" % (start, player.duration)),
                    self._rtp_info(request, seq, rtptime)], b""
        return d.addCallback(ready)

    def _start_playing(self, session, fanout):
        if session.id not in self.sessions_by_id or session.state != PLAYING:
            return
        fanout.add(session.target)
        self._send_sr(session, fanout)
        session.sr_loop = LoopingCall(self._send_sr, session, fanout)
        session.sr_loop.clock = self.clock
        session.sr_loop.start(SR_INTERVAL, now=False)

    def _send_sr(self, session, fanout):
        report = session.target.sender_report(fanout.ssrc, fanout.cname)
        if report is not None:
            session.target.send_rtcp(report)

    def do_PAUSE(self, conn, request, principal):
        session, new = self._require_session(conn, request, principal, "PAUSE")
        self._stop_sending(session)
        session.state = new
        return [self._session_header(session)], b""

    def do_TEARDOWN(self, conn, request, principal):
        session, new = self._require_session(conn, request, principal, "TEARDOWN")
        self.teardown(session)
        return [("Session", session.id)], b""

    def _stop_sending(self, session):
        if session.sr_loop is not None and session.sr_loop.running:
            session.sr_loop.stop()
        session.sr_loop = None
        if session.target is not None and session.source is not None:
            session.source.remove(session.target)

    def teardown(self, session):
        """End a session: stop sending, say BYE, forget it."""
        if session.id not in self.sessions_by_id:
            return
        self._stop_sending(session)
        if session.target is not None and session.state == PLAYING:
            try:
                session.target.send_rtcp(session.source.bye(session.target))
            except Exception:
                pass
        if hasattr(session.source, "close"):
            session.source.close()
        session.state = INIT
        del self.sessions_by_id[session.id]
        session.connection.sessions.pop(session.id, None)

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
        if reports[0].reports:
            block = reports[0].reports[0]
            session.target.loss = block.fraction_lost / 256.0
            session.target.jitter = block.jitter
