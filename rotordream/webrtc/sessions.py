"""The WebRTC peer connections: offer/answer both ways, limits, expiry, hang-up.

Two ways in, as browsers and players do it:

- the camera offers (the API reference's flow): :meth:`WebRTCService.offer`,
  then the browser's answer goes to :meth:`WebRTCService.answer`;
- the viewer offers (WHEP-style players): :meth:`WebRTCService.accept`
  answers at once.

Each connection sends one hub's encoded stream through a :class:`HubTrack`
and negotiates H.264 only. Its sender is paced, answers NACKs within a budget
and PLI/FIR with the next keyframe (:mod:`.control`). A ``stream=auto`` viewer
moves between stream1 and stream2 with its bandwidth estimate
(:mod:`.switching`), checked every ``TICK`` seconds. With ``[webrtc] transport_cc``
the SDP (offer or answer) gains the transport-wide sequence number extension and
``transport-cc`` feedback, and a viewer that accepts it is estimated from that
feedback rather than REMB (:mod:`.twcc`). ICE is gathered whole
before the SDP is returned (no trickle). aiortc runs on the asyncio loop under the reactor.

Every call names its :class:`~rotordream.webrtc.access.Caller` (principal,
source address, viewer key); :mod:`rotordream.webrtc.access` decides who gets a
slot and who may touch a session. An offer nobody answers, or a connection
that never comes up, ends after ``offer_timeout`` and frees its slot.

Why it is long: it is the one place where the three ways in (camera offer, viewer
offer, WHEP), the session table with its ownership and expiry, and the per-session
glue to pacing and switching meet; the rules themselves live in the pure modules
(:mod:`.pacing`, :mod:`.switching`, :mod:`.access`, :mod:`.ice`).
"""

import asyncio
import secrets
import time
from collections import Counter

from aiortc import (RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpSender,
                    RTCSessionDescription)
from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger
from zope.interface import implementer

from rotordream.interfaces import IWebRTC
from rotordream.webrtc import WebRTCError, access, ice, twcc
from rotordream.webrtc.control import SenderControl
from rotordream.webrtc.pacing import KeyframeRequests
from rotordream.webrtc.switching import AutoSwitch
from rotordream.webrtc.track import HubTrack

log = Logger()

_ENDED = ("failed", "closed")
AUTO = "auto"
TICK = 0.25           # seconds between switching decisions
HISTORY = 20          # switches kept per session


def use_host_addresses(addresses):
    """Offer exactly ``addresses`` as ICE host candidates; empty: aioice's own choice.

    aioice offers every interface's address but never loopback and has no
    per-connection option, so the choice is made for the process: pin a camera
    to its LAN address, or offer 127.0.0.1 to a viewer on the same machine.
    """
    import aioice.ice
    original = getattr(aioice.ice, "_rotordream_original", aioice.ice.get_host_addresses)
    aioice.ice._rotordream_original = original
    if not addresses:
        aioice.ice.get_host_addresses = original
        return
    wanted = tuple(addresses)

    def pinned(use_ipv4, use_ipv6):
        return [a for a in wanted if (use_ipv6 if ":" in a else use_ipv4)]
    aioice.ice.get_host_addresses = pinned


def _h264_only(transceiver):
    codecs = RTCRtpSender.getCapabilities("video").codecs
    # H.264 and its retransmission (rtx) entries; the rest would let VP8 win.
    transceiver.setCodecPreferences([c for c in codecs if c.mimeType in ("video/H264",
                                                                           "video/rtx")])


def _deferred(coro):
    return defer.Deferred.fromFuture(asyncio.ensure_future(coro))


class Session:
    """One viewer's peer connection, and who opened it (see :mod:`.access`)."""

    def __init__(self, session_id, pc, track, stream, caller, key, created, auto=None):
        self.id = session_id
        self.pc = pc
        self.track = track
        self.stream = stream
        self.user = caller.principal.name
        self.authenticated = caller.authenticated
        self.client = caller.client
        self.key = key        # the opener's viewer key (its cookie): never shown
        self.created = created
        self.expiry = None  # the DelayedCall that ends it if it never connects
        self.estimate = None  # the viewer's last bandwidth estimate (REMB), bit/s
        # The WHEP session resource's secret path: whoever holds it may end the session.
        self.resource = secrets.token_urlsafe(32)
        self.auto = auto        # the AutoSwitch of a stream=auto viewer, else None
        self.control = None     # its SenderControl, once its sender exists
        self.twcc_offered = None  # the transport-cc extension id offered, if it was
        self.switches = []      # {"at", "from", "to", "reason", "estimate"}, newest last

    def public(self, with_client=False):
        """What GET /api/webrtc/sessions shows (the client address to operators only)."""
        out = {"id": self.id, "stream": self.stream, "user": self.user,
               "mode": AUTO if self.auto is not None else "manual",
               "state": self.pc.connectionState, "created": self.created,
               "estimated_bitrate": self.estimate,
               "estimate_source": None if self.control is None
               else self.control.estimate_source,
               "frames_sent": self.track.sent, "frames_skipped": self.track.skipped,
               "resyncs": self.track.resyncs, "switches": list(self.switches)}
        if self.control is not None:
            out["sending"] = self.control.stats()
        if with_client:
            out["client"] = self.client
        return out


@implementer(IWebRTC)
class WebRTCService(service.Service):
    """All WebRTC viewers of the camera.

    ``hubs`` maps stream names to stream hubs; ``clock`` schedules expiry;
    ``config`` is the ``[webrtc]`` section.
    """

    name = "webrtc"

    def __init__(self, hubs, clock, config, wall=time.time):
        self.hubs = hubs
        self.clock = clock
        self.config = config
        self.wall = wall
        self.sessions = {}
        self.keyframes = KeyframeRequests(config.max_keyframe_requests_per_s)
        self.switch_counts = Counter()   # (from, to, reason) -> switches
        self._ticker = None

    def reconfigure(self, config):
        """Apply a reloaded ``[webrtc]`` section to the next offer: session limits,
        offer timeout, host addresses and ICE servers (connected viewers keep theirs)."""
        self.config = config
        self.keyframes.per_second = config.max_keyframe_requests_per_s
        use_host_addresses(config.addresses)

    # -- the two ways in ----------------------------------------------------

    def offer(self, stream, caller):
        """Deferred firing with ``{"id", "type": "offer", "sdp", "key"}`` from the camera
        (``key``: the viewer key, for the opener's cookie only)."""
        session = self._open(stream, caller)
        return _deferred(self._make_offer(session)).addErrback(self._failed, session)

    async def _make_offer(self, session):
        self._send(session)
        offer = await session.pc.createOffer()
        if self.config.transport_cc:
            # aiortc offers neither the extension nor the feedback: added to its SDP.
            sdp, session.twcc_offered = twcc.add_to_sdp(offer.sdp)
            offer = RTCSessionDescription(sdp=sdp, type="offer")
        await session.pc.setLocalDescription(offer)
        return self._description(session)

    def answer(self, session_id, sdp, caller):
        """Deferred firing with the session once the viewer's answer is applied.

        ``session_id`` None: the caller's newest offer still waiting (matched by its
        viewer key, as the browser flow's answer carries no id).
        """
        if session_id is None:
            session_id = self._waiting_for(caller)
        session = self._own(session_id, caller)
        if session.pc.signalingState != "have-local-offer":
            raise WebRTCError(409, "session %s is not waiting for an answer" % session_id,
                              "CONFLICT")
        description = RTCSessionDescription(sdp=sdp, type="answer")
        d = _deferred(session.pc.setRemoteDescription(description))

        def applied(_):
            ext_id = twcc.extension_id(sdp)
            if session.twcc_offered is not None and ext_id == session.twcc_offered \
                    and "transport-cc" in sdp:
                session.control.use_transport_cc(ext_id)
            return session.public()
        return d.addCallbacks(applied, self._refused, errbackArgs=(session,))

    def accept(self, stream, sdp, caller):
        """Deferred firing with ``{"id", "type": "answer", "sdp", "key", "resource"}`` for a
        viewer's offer (``resource``: the WHEP session resource's secret name)."""
        session = self._open(stream, caller)
        return _deferred(self._make_answer(session, sdp)).addErrback(self._refused, session)

    async def _make_answer(self, session, sdp):
        # The transceiver and its codecs first: aiortc fixes the codec while it
        # reads the offer, and our sender must take the offer's video m-line.
        self._send(session)
        await session.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        answer = await session.pc.createAnswer()
        ext_id = twcc.extension_id(sdp)
        if self.config.transport_cc and ext_id is not None and "transport-cc" in sdp:
            # aiortc drops both from its answer: accepted here with the viewer's id.
            answer = RTCSessionDescription(sdp=twcc.add_to_sdp(answer.sdp, ext_id)[0],
                                           type="answer")
            session.control.use_transport_cc(ext_id)
        await session.pc.setLocalDescription(answer)
        return dict(self._description(session), resource=session.resource)

    # -- while connected --------------------------------------------------------

    def switch(self, session_id, stream, caller):
        """Send ``stream`` to a viewer from its next keyframe (no renegotiation);
        ``auto``: let its bandwidth estimate choose from now on."""
        session = self._own(session_id, caller)
        self._check_stream(stream)
        now = self.clock.seconds()
        if stream == AUTO:
            if session.auto is None:
                session.auto = AutoSwitch(now)
                session.auto.forced(session.stream, now)
            return session.public()
        session.auto = None
        self._switch_to(session, stream, "manual")
        return session.public()

    def _switch_to(self, session, stream, reason):
        if stream == session.stream:
            return
        self._record_switch(session, stream, reason)
        # Down for congestion: stream1's frames would only hold up stream2's keyframe,
        # and the picture is frozen until that keyframe: ask for one now (stream2's IDR
        # is small), within the shared limit.
        cut = reason == "estimate"
        session.track.switch(self.hubs[stream], cut=cut)
        if cut and self.keyframes.allow(self.clock.seconds()):
            self.hubs[stream].request_keyframe()

    def _record_switch(self, session, stream, reason):
        log.info("WebRTC session {session}: {old} -> {stream} ({reason})",
                 event="webrtc_switch", session=session.id, client=session.client,
                 user=session.user, old=session.stream, stream=stream, reason=reason,
                 estimate=session.estimate)
        self.switch_counts[(session.stream, stream, reason)] += 1
        session.switches.append({"at": self.wall(), "from": session.stream, "to": stream,
                                 "reason": reason, "estimate": session.estimate})
        del session.switches[:-HISTORY]
        session.stream = stream

    def _tick(self):
        """Feed each sender its stream's bitrate; move auto viewers as their estimate says."""
        now = self.clock.seconds()
        rates = {name: hub.bitrate for name, hub in self.hubs.items()}
        for session in list(self.sessions.values()):
            control = session.control
            if control is None:
                continue
            media = rates.get(session.stream, 0)
            control.pacer.set_media_rate(media)
            latest = self.hubs[session.stream].latest
            if latest is not None and latest.fps:
                # A retransmission is useful for a couple of this stream's frames.
                control.retransmitter.interval = 1.0 / latest.fps
            if session.auto is None or session.pc.connectionState != "connected":
                continue
            failed, loss, hurt = session.auto.failed_probes, control.loss(), control.hurt()
            wanted = session.auto.update(now, session.estimate, rates, control.rtt, loss, hurt)
            if session.auto.failed_probes != failed:
                log.info("WebRTC session {session}: probe failed (estimate {estimate}, rtt "
                         "{rtt}, loss {loss}, hurt {hurt})", event="webrtc_probe_failed",
                         session=session.id, estimate=session.estimate, rtt=control.rtt,
                         loss=loss, hurt=hurt)
            if wanted != session.stream:
                self._switch_to(session, wanted, "estimate" if wanted == "stream2" else "probe")
            elif session.auto.probe_rate:
                control.pad(session.auto.probe_rate, media, TICK)

    def switch_counters(self):
        """Dict (from, to, reason) -> how many switches (reason: manual, estimate, probe,
        picture_loss)."""
        return dict(self.switch_counts)

    def _picture_lost(self, session):
        # The viewer's decoder lost its reference: what is queued cannot be decoded, the
        # next keyframe can (an auto viewer's may be the other stream's, see switching).
        # A forced IDR would cost every viewer of the shared encoder: limited for all.
        other = None
        now = self.clock.seconds()
        if session.auto is not None and session.control is not None:
            control = session.control
            other = session.auto.other_after_picture_loss(
                now, session.estimate, {n: h.bitrate for n, h in self.hubs.items()},
                control.rtt, control.fraction_lost)
        if other is None:
            session.track.resync()
            wanted = session.track.hub
        else:
            session.track.resync(self.hubs[other],
                                 lambda name: self._restarted(session, name))
            # Down: stream2's IDR is the cheap one to force; up: stay on the current's.
            wanted = self.hubs[other] if other == "stream2" else session.track.hub
        if self.keyframes.allow(now):
            wanted.request_keyframe()

    def _restarted(self, session, stream):
        """An auto viewer restarted at ``stream``'s keyframe after a picture loss."""
        if session.auto is not None:
            session.auto.restarted(stream, self.clock.seconds())
        self._record_switch(session, stream, "picture_loss")

    def visible(self, caller):
        """The sessions ``caller`` may see: every one for operators, else its own."""
        everyone = caller.manages_all
        return [s.public(with_client=everyone) for s in self.sessions.values()
                if everyone or access.owns(s, caller)]

    def counts(self):
        """Dict stream name -> number of sessions."""
        return dict(Counter(s.stream for s in self.sessions.values()))

    def estimates(self):
        """The viewers' latest bandwidth estimates (bit/s), of the sessions that sent one."""
        return [s.estimate for s in self.sessions.values() if s.estimate is not None]

    def _estimated(self, session, bitrate):
        if session.estimate is None:
            log.info("WebRTC session {session}: first bandwidth estimate {bitrate} bit/s",
                     event="webrtc_estimate", session=session.id, client=session.client,
                     bitrate=bitrate)
        session.estimate = bitrate

    # -- ending ---------------------------------------------------------------

    def hang_up(self, session_id, caller):
        """End a session (its owner, an operator or an admin); Deferred firing when closed."""
        return self._close(self._own(session_id, caller), "hung up")

    def end_resource(self, resource, caller):
        """End the session whose WHEP resource is ``resource`` (a DELETE on its URL);
        Deferred firing with the session id once closed."""
        for session in list(self.sessions.values()):
            if access.same_key(session.resource, resource):
                log.info("WebRTC session {session}: WHEP DELETE from {client}",
                         event="webrtc_whep_delete", session=session.id, client=caller.client)
                return self._close(session, "hung up").addCallback(lambda _: session.id)
        raise WebRTCError(404, "no such WHEP session", "NOT_FOUND")

    def ice_servers(self):
        """The RTCIceServer dicts a viewer should use: ``[webrtc] ice_servers``, TURN ones
        with credentials valid for ``turn_lifetime`` seconds from now."""
        config = self.config
        return ice.ice_servers(config.ice_servers, config.turn_secret, config.turn_lifetime,
                               self.wall())

    def stopService(self):
        """Close every peer connection."""
        service.Service.stopService(self)
        return defer.gatherResults([self._close(s, "daemon stopping")
                                    for s in list(self.sessions.values())])

    # -- inside -----------------------------------------------------------------

    def _check_stream(self, stream):
        if stream not in self.hubs and stream != AUTO:
            raise WebRTCError(404, "no stream %r; use %s" % (stream, " or ".join(
                sorted(self.hubs))), "NOT_FOUND")

    def _open(self, stream, caller):
        self._check_stream(stream)
        live = list(self.sessions.values())
        access.admit(live, caller, self.config)
        auto = None
        if stream == AUTO:
            stream, auto = "stream1", AutoSwitch(self.clock.seconds())
        servers = [RTCIceServer(urls=s["urls"], username=s.get("username"),
                                credential=s.get("credential")) for s in self.ice_servers()]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        # 128 random bits: an id cannot be guessed, only learned from a listing.
        session = Session(secrets.token_urlsafe(16), pc, HubTrack(self.hubs[stream]), stream,
                          caller, access.key_for(live, caller), int(self.wall()), auto)
        self.sessions[session.id] = session
        if self._ticker is None or not self._ticker.running:
            self._ticker = task.LoopingCall(self._tick)
            self._ticker.clock = self.clock
            self._ticker.start(TICK, now=False)
        log.info("WebRTC session {session} opened", event="webrtc_session_start",
                 session=session.id, stream=stream, user=session.user, client=session.client)
        # One that has not connected within the timeout (no answer, ICE failing) ends.
        session.expiry = self.clock.callLater(self.config.offer_timeout, self._expire, session)

        @pc.on("connectionstatechange")
        def changed():
            state = pc.connectionState
            log.info("WebRTC session {session} ({stream}, {user} at {client}): {state}",
                     event="webrtc_state", session=session.id, stream=session.stream,
                     user=session.user, client=session.client, state=state)
            if state == "connected" and session.expiry is not None and session.expiry.active():
                session.expiry.cancel()
            if state == "connected" and session.control is not None:
                session.control.attach_transport(session.control.sender.transport)
            if state in _ENDED:
                self._close(session, state)
        return session

    def _send(self, session):
        transceiver = session.pc.addTransceiver(session.track, direction="sendonly")
        _h264_only(transceiver)
        session.control = SenderControl(
            transceiver.sender, self.clock.seconds,
            on_estimate=lambda bitrate: self._estimated(session, bitrate),
            on_picture_loss=lambda: self._picture_lost(session))

    def _own(self, session_id, caller):
        session = self.sessions.get(session_id)
        if session is None:
            raise WebRTCError(404, "no WebRTC session %r" % (session_id,), "NOT_FOUND")
        if not access.may_manage(session, caller):
            raise WebRTCError(403, "session %s belongs to another client" % session_id,
                              "FORBIDDEN")
        return session

    def _waiting_for(self, caller):
        """The id of the caller's newest session waiting for an answer, else of its newest
        (answered already: a 409 then)."""
        # Sessions are kept in the order they were opened.
        mine = [s for s in self.sessions.values()
                if access.same_key(s.key, caller.key) and access.owns(s, caller)]
        waiting = [s for s in mine if s.pc.signalingState == "have-local-offer"]
        if not mine:
            raise WebRTCError(404, "no offer of yours is waiting for an answer (it may have "
                                   "expired); send the offer's id and its cookie",
                              "NOT_FOUND")
        return (waiting or mine)[-1].id

    def _description(self, session):
        local = session.pc.localDescription
        return {"id": session.id, "type": local.type, "sdp": local.sdp, "key": session.key}

    def _expire(self, session):
        if session.pc.connectionState != "connected":
            self._close(session, "not connected within %d s" % self.config.offer_timeout)

    def _close(self, session, why):
        if self.sessions.pop(session.id, None) is None:
            return defer.succeed(None)
        if session.expiry is not None and session.expiry.active():
            session.expiry.cancel()
        log.info("WebRTC session {session} ended: {reason}", event="webrtc_session_end",
                 session=session.id, stream=session.stream, user=session.user,
                 client=session.client, reason=why)
        session.track.stop()
        if not self.sessions and self._ticker is not None and self._ticker.running:
            self._ticker.stop()
        return _deferred(session.pc.close())

    def _refused(self, failure, session):
        # Bad SDP or nothing in common (no H.264): the viewer's fault, a 400.
        self._close(session, "refused")
        if failure.check(WebRTCError):
            return failure
        raise WebRTCError(400, "the session description was refused: %s"
                          % (failure.getErrorMessage() or failure.type.__name__))

    def _failed(self, failure, session):
        self._close(session, "failed")
        return failure


def build_webrtc_service(hubs, reactor, config):
    """The WebRTC service on ``hubs``; None when ``[webrtc] enabled`` is false."""
    if not config.enabled:
        return None
    use_host_addresses(config.addresses)
    return WebRTCService(hubs, reactor, config)
