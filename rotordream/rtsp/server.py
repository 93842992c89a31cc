"""The RTSP server: a thin Twisted adapter over message.py, session.py, sdp.py and fanout.py.

The connection protocol parses bytes into requests (and interleaved RTCP),
the server answers them; RTP goes out through the shared stream fanouts over
UDP (one server port pair for everyone) or interleaved on the connection.
"""

import random
import secrets
import time
from urllib.parse import parse_qs, unquote, urlsplit

from twisted.internet import defer, protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from rotordream.auth import roles
from rotordream.auth.service import AuthError
from rotordream.rtp.packet import PacketError, ReceiverReport, parse_rtcp
from rotordream.rtsp import sdp
from rotordream.rtsp.fanout import StreamFanout, TcpTarget, UdpTarget
from rotordream.rtsp.message import (ParseError, Request, RequestParser, Response, http_date,
                                     parse_pair, parse_range, parse_transport)
from rotordream.rtsp.session import INIT, METHODS, PLAYING, next_state

log = Logger()

SERVER_NAME = "RotorDream RTSP"
RECORDING = "recording"   # the playback mount: /recording (latest) and /recording/<id>
SR_INTERVAL = 5.0
MAX_SESSIONS_PER_CONNECTION = 8


class RtspError(Exception):
    """Answer the request with ``status`` (and optional extra headers)."""

    def __init__(self, status, message="", headers=()):
        super().__init__(message)
        self.status = status
        self.headers = list(headers)


class Session:
    """One RTSP session: its stream, transport target and state."""

    def __init__(self, session_id, stream, connection, clock):
        self.id = session_id
        self.stream = stream
        self.connection = connection
        self.state = INIT
        self.target = None
        self.source = None   # the StreamFanout (live) or FilePlayer (recording) it plays
        self.last_seen = clock.seconds()
        self.created = time.time()
        self.sr_loop = None


class RtcpPort(protocol.DatagramProtocol):
    """The server's RTP or RTCP UDP socket; RTCP from clients keeps sessions alive."""

    def __init__(self, server):
        self.server = server

    def datagramReceived(self, data, addr):
        self.server.rtcp_received(data, addr)


class RTSPConnection(protocol.Protocol):
    """One RTSP control connection (requests and interleaved frames)."""

    def __init__(self, server):
        self.server = server
        self.parser = RequestParser()
        self.sessions = {}
        self.pinned = None  # "tcp" or "udp" after a ?tcp / ?udp URL

    def connectionMade(self):
        peer = self.transport.getPeer()
        self.client_host = getattr(peer, "host", "127.0.0.1")

    def dataReceived(self, data):
        try:
            events = self.parser.feed(data)
        except ParseError as e:
            log.info("bad RTSP request from {peer}: {e}", peer=self.client_host, e=e.message)
            headers = [("CSeq", e.cseq)] if e.cseq else []
            self._send(Response(e.status, headers + [("Server", SERVER_NAME)],
                                (e.message + "\r\n").encode()))
            self.transport.loseConnection()
            return
        for session in self.sessions.values():
            session.last_seen = self.server.clock.seconds()  # any TCP traffic keeps alive
        for event in events:
            if isinstance(event, Request):
                d = defer.maybeDeferred(self.server.handle, self, event)
                d.addCallback(self._send)
            else:
                self.server.interleaved_received(self, event)

    def _send(self, response):
        if response is not None and self.transport is not None and self.connected:
            self.transport.write(bytes(response))

    def connectionLost(self, reason):
        for session in list(self.sessions.values()):
            self.server.teardown(session)


class RTSPFactory(protocol.Factory):
    """Makes connections for the server."""

    def __init__(self, server):
        self.server = server

    def buildProtocol(self, addr):
        p = RTSPConnection(self.server)
        p.factory = self
        return p


class RTSPServer:
    """Sessions, mounts and RTP transport for all RTSP connections."""

    def __init__(self, ctx, clock=None):
        cfg = ctx.config.rtsp
        self.ctx = ctx
        self.clock = clock or ctx.reactor
        self.auth = ctx.auth
        self.max_sessions = cfg.max_sessions
        self.timeout = cfg.session_timeout
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

    # -- lifecycle ------------------------------------------------------

    def start(self, reactor):
        """Bind the RTP/RTCP port pair and start reaping idle sessions."""
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
        self._reaper.start(max(1.0, self.timeout / 6.0), now=False)

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
                        "client": s.connection.client_host,
                        "transport": t.transport_name if t else None,
                        "packets": t.packets if t else 0,
                        "loss": t.loss if t else None, "jitter": t.jitter if t else None,
                        "dropped_units": t.dropped_units if t else 0})
        return out

    def reap(self):
        """Drop sessions that sent no keep-alive within the timeout."""
        now = self.clock.seconds()
        for session in list(self.sessions_by_id.values()):
            if now - session.last_seen > self.timeout:
                log.info("RTSP session {id} timed out", id=session.id)
                self.teardown(session)

    # -- requests -------------------------------------------------------

    def handle(self, conn, request):
        """Answer one request; returns a Response or a Deferred of one."""
        headers = [("CSeq", request.cseq), ("Server", SERVER_NAME),
                   ("Date", http_date(time.time()))]
        try:
            method = request.method
            if method not in METHODS:
                raise RtspError(405, "unknown method",
                                [("Allow", ", ".join(METHODS)), ("Public", ", ".join(METHODS))])
            result = getattr(self, "do_" + method)(conn, request)
        except RtspError as e:
            return Response(e.status, headers + e.headers)
        except Exception:
            log.failure("RTSP {method} failed", method=request.method)
            return Response(500, headers)

        def done(r):
            extra, body = r
            return Response(200, headers + extra, body)

        def failed(f):
            if f.check(RtspError):
                return Response(f.value.status, headers + f.value.headers)
            log.failure("RTSP {method} failed", f, method=request.method)
            return Response(500, headers)

        if isinstance(result, defer.Deferred):
            return result.addCallbacks(done, failed)
        return done(result)

    def _url(self, request):
        parts = urlsplit(request.uri)
        path = unquote(parts.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        segments = [s for s in path.split("/") if s]
        return parts, segments, query

    def _stream(self, conn, request):
        """(mount, recording id or None, track, query) of a request URL."""
        parts, segments, query = self._url(request)
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

    def _authorize(self, conn, request, query):
        token = (query.get("token") or [None])[0]
        try:
            principal = self.auth.authenticate(request.method, request.uri,
                                               authorization=request.headers.get("Authorization"),
                                               token=token, client=conn.client_host)
        except AuthError as e:
            raise RtspError(401, e.message, [("WWW-Authenticate", c)
                                             for c in self.auth.challenges(stale=e.stale)])
        if not principal.can(roles.STREAM_WATCH):
            if principal.authenticated:
                raise RtspError(403, "not allowed to watch")
            raise RtspError(401, "log in to watch",
                            [("WWW-Authenticate", c) for c in self.auth.challenges()])
        return principal

    def _session(self, conn, request):
        sid = request.headers.get("Session")
        if sid is None:
            return None
        sid = sid.split(";")[0].strip()
        session = self.sessions_by_id.get(sid)
        if session is None or session.connection is not conn and session.target and \
                session.target.transport_name == "tcp":
            raise RtspError(454, "session not found")
        session.last_seen = self.clock.seconds()
        return session

    def _session_header(self, session):
        return ("Session", "%s;timeout=%d" % (session.id, self.timeout))

    def do_OPTIONS(self, conn, request):
        self._session_or_none(conn, request)
        return [("Public", ", ".join(METHODS))], b""

    def _session_or_none(self, conn, request):
        try:
            return self._session(conn, request)
        except RtspError:
            return None

    def do_GET_PARAMETER(self, conn, request):
        session = self._session(conn, request)
        extra = [self._session_header(session)] if session else []
        return extra, b""

    do_SET_PARAMETER = do_GET_PARAMETER

    def do_DESCRIBE(self, conn, request):
        stream, rid, track, query = self._stream(conn, request)
        self._authorize(conn, request, query)
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

    def do_SETUP(self, conn, request):
        stream, rid, track, query = self._stream(conn, request)
        self._authorize(conn, request, query)
        if track not in (None, "trackID=0"):
            raise RtspError(404, "no such track")
        session = self._session(conn, request)
        if session is not None and session.stream != stream and \
                not session.stream.startswith(stream + "/"):
            raise RtspError(459, "one stream per session")
        offers = parse_transport(request.headers.get("Transport", ""))
        if not offers:
            raise RtspError(461, "Transport header missing")
        pinned = conn.pinned
        chosen = None
        for offer in offers:
            proto = offer["protocol"]
            if proto not in ("RTP/AVP", "RTP/AVP/UDP", "RTP/AVP/TCP"):
                continue
            if "multicast" in offer:
                continue
            is_tcp = proto == "RTP/AVP/TCP"
            if pinned and (pinned == "tcp") != is_tcp:
                continue
            if not is_tcp and ("client_port" not in offer or self.udp_ports is None):
                continue
            chosen = offer
            break
        if chosen is None:
            raise RtspError(461, "unsupported transport")
        if session is None:
            if len(self.sessions_by_id) >= self.max_sessions:
                self.rejected += 1
                raise RtspError(503, "too many sessions", [("Retry-After", "5")])
            if len(conn.sessions) >= MAX_SESSIONS_PER_CONNECTION:
                raise RtspError(503, "too many sessions on this connection")
            session = Session(secrets.token_hex(8), stream, conn, self.clock)
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
        if session.state == PLAYING:
            raise RtspError(455, "already playing")
        fanout = session.source
        try:
            if chosen["protocol"] == "RTP/AVP/TCP":
                ch = parse_pair(chosen.get("interleaved", "0-1"))
                session.target = TcpTarget(conn.transport, ch[0], ch[1], self.client_queue)
                transport = "RTP/AVP/TCP;unicast;interleaved=%d-%d;ssrc=%08X" % (
                    ch[0], ch[1], fanout.ssrc)
            else:
                cp = parse_pair(chosen["client_port"])
                session.target = UdpTarget(self.rtp_port, self.rtcp_port, conn.client_host,
                                           cp[0], cp[1])
                sp = self.udp_ports[0].getHost().port
                transport = "RTP/AVP;unicast;client_port=%d-%d;server_port=%d-%d;ssrc=%08X" % (
                    cp[0], cp[1], sp, sp + 1, fanout.ssrc)
        except (ValueError, TypeError):
            raise RtspError(400, "bad port or channel numbers")
        session.state = next_state(session.state, "SETUP")
        return [("Transport", transport), self._session_header(session)], b""

    def _require_session(self, conn, request, method):
        session = self._session(conn, request)
        if session is None:
            raise RtspError(454, "session not found")
        new = next_state(session.state, method)
        if new is None:
            raise RtspError(455, "%s is not valid in state %s" % (method, session.state),
                            [("Allow", "SETUP, TEARDOWN, OPTIONS")])
        return session, new

    def do_PLAY(self, conn, request):
        session, new = self._require_session(conn, request, "PLAY")
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
        session.state = new
        return extra, b""

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
            session.state = new
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

    def do_PAUSE(self, conn, request):
        session, new = self._require_session(conn, request, "PAUSE")
        self._stop_sending(session)
        session.state = new
        return [self._session_header(session)], b""

    def do_TEARDOWN(self, conn, request):
        session, new = self._require_session(conn, request, "TEARDOWN")
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
        """UDP RTCP from a client: keep its session alive, note loss and jitter."""
        for session in self.sessions_by_id.values():
            t = session.target
            if isinstance(t, UdpTarget) and t.rtcp_addr[0] == addr[0] and \
                    t.rtcp_addr[1] == addr[1]:
                self._note_rtcp(session, data)

    def interleaved_received(self, conn, frame):
        """An interleaved frame: RTCP on an odd channel of one of this connection's sessions."""
        for session in conn.sessions.values():
            t = session.target
            if isinstance(t, TcpTarget) and frame.channel == t.rtcp_channel:
                self._note_rtcp(session, frame.data)

    def _note_rtcp(self, session, data):
        session.last_seen = self.clock.seconds()
        try:
            packets = parse_rtcp(data)
        except PacketError:
            return
        for p in packets:
            if isinstance(p, ReceiverReport) and p.reports:
                block = p.reports[0]
                session.target.loss = block.fraction_lost / 256.0
                session.target.jitter = block.jitter
