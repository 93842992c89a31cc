"""The RTSP server's Twisted adapter: carries out what the sans-IO core (core.py) decides.

Connections (connection.py) hand it one request at a time; the core answers
with a step, and this adapter performs it: credential checks (the auth
service may answer in a thread pool), waits for a keyframe or a recording,
the RTP targets (the server's UDP port pair, or interleaved on the
connection), the RTCP sender-report timers and the expiry reaper. Multicast
sessions share their stream's group target (multicast.py) on a socket of its
own, bound when ``[rtsp] multicast_group`` is set.
"""

import time

from twisted.internet import defer, protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from rotordream.auth.service import AuthError
from rotordream.interfaces import IStreamServer
from rotordream.netutil import bound_send_buffer, unsent_bytes, write_now
from rotordream.rtp.sender import StreamFanout, TcpTarget, UdpTarget
from rotordream.rtsp import core, effects, multicast, transport
from rotordream.rtsp.core import RtspError
from rotordream.rtsp.message import SERVER_NAME, Response, http_date

log = Logger()

SR_INTERVAL = 5.0


class RtcpPort(protocol.DatagramProtocol):
    """The server's RTP or RTCP UDP socket; RTCP from clients keeps sessions alive."""

    def __init__(self, server):
        self.server = server

    def datagramReceived(self, data, addr):
        self.server.rtcp_received(data, addr)


@implementer(IStreamServer)
class RTSPServer:
    """Sessions, mounts and RTP transport for all RTSP connections."""

    def __init__(self, config, hubs, auth, clock, playback=None):
        """``config`` is the ``[rtsp]`` section, ``hubs`` the stream hubs by name, ``auth``
        the AuthService, ``playback`` the recordings provider (None: no /recording mount)."""
        self.clock = clock
        cfg = self.rtsp_config = config
        self.client_queue = cfg.client_queue
        fanouts = {name: StreamFanout(name, hub, cfg.mtu, clock, cfg.catchup_rate)
                   for name, hub in hubs.items()}
        self.core = core.RTSPCore(cfg, fanouts, auth, clock, playback)
        self.listener = None
        self.rtp_port = RtcpPort(self)
        self.rtcp_port = RtcpPort(self)
        self._udp_ports = None
        self.multicast = None       # multicast.MulticastGroups while its socket is bound
        self._multicast_port = None
        self._reaper = LoopingCall(self.reap)
        self._reaper.clock = clock

    def reconfigure(self, config):
        """Apply a reloaded ``[rtsp]`` section: session limits and timeouts, client queue,
        catch-up rate.

        Sessions already running keep going; ``mtu``, the RTP port range and the tunnel
        limits are fixed at start (the reloader reports them as needing a restart).
        """
        self.rtsp_config = self.core.config = config
        self.client_queue = config.client_queue
        for fanout in self.core.fanouts.values():
            fanout.catchup_rate = config.catchup_rate

    auth = property(lambda self: self.core.auth,
                    lambda self, auth: setattr(self.core, "auth", auth),
                    doc="The auth service that checks credentials and makes challenges.")
    sessions_by_id = property(lambda self: self.core.sessions_by_id, doc="Sessions by id.")

    @property
    def udp_ports(self):
        """The bound (RTP, RTCP) UDP ports, or None."""
        return self._udp_ports

    @udp_ports.setter
    def udp_ports(self, ports):
        self._udp_ports = ports
        self.core.udp_server_port = ports[0].getHost().port if ports else None

    @property
    def port(self):
        """The RTSP port actually listened on (None before start)."""
        if self.listener is not None and self.listener.port is not None:
            return self.listener.port.getHost().port
        return None

    @property
    def reap_interval(self):
        """Seconds between expiry checks: a tenth of the shorter timeout."""
        cfg = self.rtsp_config
        return max(0.25, min(cfg.setup_timeout, cfg.session_timeout) / 10.0)

    # -- lifecycle ------------------------------------------------------

    def start(self, reactor):
        """Bind the RTP/RTCP port pair and start reaping expired sessions."""
        cfg = self.rtsp_config
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
        self._start_multicast(reactor)
        self._reaper.start(self.reap_interval, now=False)

    def _start_multicast(self, reactor):
        cfg = self.rtsp_config
        groups = transport.multicast_groups(cfg, list(self.core.fanouts))
        if not groups:
            return
        sender = multicast.SocketPort()
        try:
            self._multicast_port = reactor.listenUDP(0, sender,
                                                     interface=cfg.multicast_interface)
            multicast.configure_socket(self._multicast_port.getHandle(), cfg.multicast_ttl,
                                       cfg.multicast_interface)
        except Exception as e:
            log.error("multicast socket on {interface!r} failed ({e}); multicast is off",
                      interface=cfg.multicast_interface, e=e)
            if self._multicast_port is not None:
                self._multicast_port.stopListening()
                self._multicast_port = None
            return
        self.multicast = multicast.MulticastGroups(self.core.fanouts, groups, sender,
                                                   self.clock, SR_INTERVAL)
        self.core.multicast_groups = groups

    def stop(self):
        """Tear every session down and release the UDP ports."""
        for session in list(self.sessions_by_id.values()):
            self.teardown(session)
        if self._reaper.running:
            self._reaper.stop()
        if self.multicast is not None:
            self.multicast.release_all()
            self.core.multicast_groups = {}
            self.multicast = None
            self._multicast_port.stopListening()
            self._multicast_port = None
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

    def counters(self):
        """Totals for metrics: ``clients`` (sessions) and ``slow_drops`` (access
        units skipped for slow clients) by protocol ("rtsp", "rtsp_http"), ``packets``
        (RTP sent) by transport ("udp", "tcp"), and the latest RTCP receiver reports
        of the sessions that sent one: ``loss`` (fractions) and ``jitter`` (seconds)."""
        core_ = self.core
        clients = {"rtsp": 0, "rtsp_http": 0}
        drops = dict.fromkeys(clients, 0)
        drops.update(core_.ended_drops)
        packets = {"udp": 0, "tcp": 0}
        packets.update(core_.ended_packets)
        packets.pop("multicast", None)   # per-session views: the groups' own count is below
        loss, jitter = [], []
        for s in core_.sessions_by_id.values():
            proto = getattr(s.connection, "protocol", "rtsp")
            clients[proto] = clients.get(proto, 0) + 1
            t = s.target
            if t is None:
                continue
            if isinstance(t, multicast.MulticastView):
                continue
            drops[proto] = drops.get(proto, 0) + t.dropped_units
            packets[t.transport_name] = packets.get(t.transport_name, 0) + t.packets
            if t.loss is not None:
                loss.append(t.loss)
            if t.jitter is not None:
                jitter.append(t.jitter / 90000.0)  # RTP clock units of H.264 (90 kHz)
        if self.multicast is not None:
            packets["multicast"] = self.multicast.packets   # each sent once to its group
        return {"clients": clients, "slow_drops": drops, "packets": packets,
                "loss": loss, "jitter": jitter}

    def reap(self):
        """End the sessions whose time is up."""
        for session in self.core.expired(self.clock.seconds()):
            log.info("RTSP session {session} of {client} expired ({reason})",
                     event="rtsp_session_expired", session=session.id, client=session.address,
                     user=session.user or "anonymous", stream=session.stream,
                     reason="no keep-alive" if session.played else "SETUP without PLAY")
            self.teardown(session)

    def teardown(self, session):
        """End a session: stop sending, say BYE, forget it."""
        self._carry_out(self.core.end(session))

    # -- requests -------------------------------------------------------

    def handle(self, conn, request):
        """Answer one request; returns a Deferred of a Response."""
        headers = [("CSeq", request.cseq), ("Server", SERVER_NAME),
                   ("Date", http_date(time.time()))]

        def done(answer):
            return Response(200, headers + answer.headers, answer.body)

        def failed(f):
            if f.check(RtspError):
                return Response(f.value.status, headers + f.value.headers,
                                reason=f.value.reason)
            log.failure("RTSP {method} failed", f, method=request.method)
            return Response(500, headers)

        return defer.maybeDeferred(self._step, conn, self.core.receive, conn, request) \
            .addCallbacks(done, failed)

    def _step(self, conn, fn, *args):
        """Take one step of the core for a request on ``conn``; perform the waits it asks
        for until an Answer."""
        step = fn(*args)
        if isinstance(step, effects.Answer):
            self._carry_out(step.effects, conn)
            return step
        if isinstance(step, effects.Authenticate):
            d = defer.maybeDeferred(self.auth.authenticate, step.method, step.uri,
                                    authorization=step.authorization, token=step.token,
                                    client=step.client, protocol="rtsp")
            return d.addCallbacks(lambda principal: self._step(conn, step.then, principal),
                                  self._refused)
        if isinstance(step, effects.WaitKeyframe):
            def no_video_yet(result, timeout):
                raise RtspError(503, "no video yet", [("Retry-After", "1")])
            d = step.hub.keyframe()
            d.addTimeout(step.timeout, self.clock, onTimeoutCancel=no_video_yet)
            return d.addCallback(lambda au: self._step(conn, step.then, au))
        if isinstance(step, effects.DescribeRecording):
            return self._describe_recording(conn, step)
        if isinstance(step, effects.PrepareRecording):
            self._carry_out(step.effects, conn)
            return step.player.prepare(step.npt, step.replay).addCallback(
                lambda info: self._step(conn, step.then, info))
        raise TypeError("unknown RTSP step %r" % (step,))

    def _refused(self, failure):
        failure.trap(AuthError)
        raise self.core.refused(failure.value)

    def _describe_recording(self, conn, step):
        try:
            d = step.playback.describe(step.rid)
        except KeyError:
            raise RtspError(404, "no such recording")

        def unreadable(f):
            if f.check(RtspError):
                return f
            log.failure("recording {rid} cannot be described", f, rid=step.rid)
            raise RtspError(404, "recording unreadable")
        return d.addCallbacks(lambda info: self._step(conn, step.then, info), unreadable)

    # -- effects --------------------------------------------------------

    def _carry_out(self, todo, conn=None):
        """Perform ``todo``'s effects (``conn``: the connection whose request they answer)."""
        for effect in todo:
            getattr(self, "_do_" + type(effect).__name__)(effect, conn)

    def _do_UseTransport(self, effect, conn=None):
        session, chosen, conn = effect.session, effect.chosen, effect.connection
        a, b = chosen.pair
        if chosen.kind == transport.MULTICAST:
            session.target = self.multicast.view(session.stream)
        elif chosen.kind == transport.TCP:
            t = conn.transport
            bound_send_buffer(t, min(self.client_queue, 1 << 20))
            session.target = TcpTarget(lambda data: write_now(t, data),
                                       lambda: unsent_bytes(t), a, b, self.client_queue)
        else:
            # RTP goes to the address the SETUP came from, never to a "destination".
            session.target = UdpTarget(self.rtp_port, self.rtcp_port, conn.client_host, a, b)

    def _do_StartSending(self, effect, conn=None):
        # The answer goes first, then the burst of the cached GOP and an early SR: right
        # after the answer is written, not a reactor turn later (behind a crowd's requests).
        if conn is not None:
            conn.after_answer(lambda: self._start_playing(effect.session))
        else:
            self.clock.callLater(0, self._start_playing, effect.session)

    def _start_playing(self, session):
        if not self.core.sending(session):
            return
        source = session.source
        log.info("RTSP session {session} of {client} plays {stream}", event="rtsp_play",
                 session=session.id, client=session.address, user=session.user or "anonymous",
                 stream=session.stream, transport=getattr(session.target, "transport_name", "?"))
        if isinstance(session.target, multicast.MulticastView):
            # The group's one target sends (and reports) for every multicast session.
            session.target.held()
            self.multicast.hold(session.stream, session.id)
            return
        source.add(session.target)
        self._send_sr(session, source)
        session.sr_loop = LoopingCall(self._send_sr, session, source)
        session.sr_loop.clock = self.clock
        session.sr_loop.start(SR_INTERVAL, now=False)

    @staticmethod
    def _send_sr(session, source):
        report = session.target.sender_report(source.ssrc, source.cname)
        if report is not None:
            session.target.send_rtcp(report)

    def _do_StopSending(self, effect, conn=None):
        session = effect.session
        if session.sr_loop is not None and session.sr_loop.running:
            session.sr_loop.stop()
        session.sr_loop = None
        if isinstance(session.target, multicast.MulticastView):
            if self.multicast is not None:
                self.multicast.release(session.stream, session.id)
            session.target.released()
        elif session.target is not None and session.source is not None:
            session.source.remove(session.target)

    def _do_SendBye(self, effect, conn=None):
        session = effect.session
        if session.target is not None:
            try:
                session.target.send_rtcp(session.source.bye(session.target))
            except Exception:
                pass

    def _do_CloseSource(self, effect, conn=None):
        # Every session's end (TEARDOWN, expiry, connection lost) closes its source.
        session = effect.session
        log.info("RTSP session {session} of {client} ended", event="rtsp_session_end",
                 session=session.id, client=session.address, user=session.user or "anonymous",
                 stream=session.stream)
        if hasattr(effect.session.source, "close"):
            effect.session.source.close()

    # -- RTCP from clients ----------------------------------------------

    def rtcp_received(self, data, addr):
        """UDP RTCP from a client: a receiver report from its RTCP address keeps it alive."""
        self.core.rtcp_received(data, addr)

    def interleaved_received(self, conn, frame):
        """An interleaved frame: RTCP on the odd channel of one of this connection's sessions."""
        self.core.interleaved_received(conn, frame)
