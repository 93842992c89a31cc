"""RTSP push's Twisted adapter: connects to upstream servers and carries out what the
sans-IO client (client.py) decides.

Each :class:`PushTarget` is one upstream: it waits for a keyframe (the SDP
needs SPS/PPS), connects (TCP or TLS for ``rtsps://``), runs the
ANNOUNCE/SETUP/RECORD conversation, then joins the stream's
:class:`~rotordream.rtp.sender.StreamFanout` like any RTSP viewer (packetized
once for all, starting at the cached GOP's keyframe), with RTCP sender
reports every few seconds and keep-alives within the upstream's session
timeout. Any failure closes the connection and retries after a
:class:`~rotordream.push.client.Backoff` delay; a refused password waits the
longest delay every time, so an upstream is never hammered with it.

Why it is long: one target's whole life (keyframe wait, connect, the RTP target,
its timers, failure and retry) and the service holding the targets read best
side by side.
"""

import random
import time

from twisted.application import service
from twisted.internet import defer, endpoints, protocol, ssl
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from rotordream.netutil import unsent_bytes, write_now
from rotordream.push import client as core
from rotordream.rtp.sender import TcpTarget, UdpTarget
from rotordream.rtsp import sdp

log = Logger()

SR_INTERVAL = 5.0
CONNECT_TIMEOUT = 10      # seconds to connect
ANSWER_TIMEOUT = 10       # seconds the upstream has to answer each request
KEYFRAME_TIMEOUT = 10     # seconds to wait for the first keyframe (the SDP needs it)
QUEUE_LIMIT = 4 * 1024 * 1024   # bytes queued toward a slow upstream before skipping to a keyframe
STREAMS = ("stream1", "stream2")
TRANSPORTS = ("tcp", "udp")


class PushSpec:
    """What to push where: checked when made (ValueError names the field)."""

    FIELDS = ("url", "stream", "transport", "enabled", "tls_verify")

    def __init__(self, url, stream="stream1", transport="tcp", enabled=True, tls_verify=True):
        try:
            self.parsed = core.parse_url(url)
        except ValueError as e:
            raise ValueError("url: %s" % e) from None
        if stream not in STREAMS:
            raise ValueError("stream: expected one of %s" % ", ".join(STREAMS))
        if transport not in TRANSPORTS:
            raise ValueError("transport: expected one of %s" % ", ".join(TRANSPORTS))
        if not isinstance(enabled, bool) or not isinstance(tls_verify, bool):
            raise ValueError("enabled and tls_verify are true or false")
        self.url, self.stream, self.transport = url, stream, transport
        self.enabled, self.tls_verify = enabled, tls_verify

    def key(self):
        """What identifies the spec (two equal keys are the same push)."""
        return (self.url, self.stream, self.transport, self.enabled, self.tls_verify)


class _RtcpPort(protocol.DatagramProtocol):
    """One local UDP port of a UDP push (RTCP from the upstream is not needed)."""

    def datagramReceived(self, data, addr):
        pass


class _PushProtocol(protocol.Protocol):
    """Bytes between the connection and the target's sans-IO client."""

    def __init__(self, target):
        self.target = target

    def connectionMade(self):
        self.target.connected(self)

    def dataReceived(self, data):
        self.target.data_received(self, data)

    def connectionLost(self, reason):
        self.target.connection_lost(self, reason.getErrorMessage())


class PushTarget:
    """One upstream server and the state of pushing to it."""

    def __init__(self, ident, spec, fanouts, clock, reactor, origin="config"):
        self.id = ident
        self.spec = spec
        self.fanouts = fanouts
        self.clock = clock
        self.reactor = reactor
        self.origin = origin
        self.state = "disabled"
        self.bytes = 0
        self.reconnects = 0
        self.last_error = None
        self.connected_since = None
        self.next_attempt = None   # wall time of the next retry, while one is scheduled
        self.backoff = core.Backoff()
        self._client = None
        self._proto = None
        self._rtp_target = None
        self._udp = None
        self._loops = []
        self._retry = None
        self._deadline = None
        self._attempt = None
        self._stopped = True

    # -- status -------------------------------------------------------------

    def status(self):
        """The target as the API shows it (the URL without its password)."""
        return {"id": self.id, "url": self.spec.parsed.public, "stream": self.spec.stream,
                "transport": self.spec.transport, "enabled": self.spec.enabled,
                "origin": self.origin, "state": self.state, "bytes": self.bytes,
                "reconnects": self.reconnects, "last_error": self.last_error,
                "connected_since": self.connected_since, "next_attempt": self.next_attempt}

    # -- life cycle ------------------------------------------------------------

    def start(self):
        """Begin pushing (if enabled)."""
        self._stopped = False
        if self.spec.enabled:
            self._attempt_now()

    def stop(self):
        """Stop pushing: TEARDOWN if recording, close, cancel timers."""
        self._stopped = True
        self._cancel_retry()
        if self._client is not None and self._proto is not None:
            bye = self._client.teardown()
            if bye:
                self._write(bye)
        self._end_attempt()
        self.state = "disabled" if not self.spec.enabled else "stopped"

    def _cancel_retry(self):
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = self.next_attempt = None

    def _attempt_now(self):
        self._retry = self.next_attempt = None
        if self._stopped:
            return
        self.state = "waiting_keyframe"
        hub = self.fanouts[self.spec.stream].hub
        latest = hub.latest
        if latest is not None and latest.sps:
            self._connect(latest)
            return
        d = hub.keyframe()
        self._attempt = d
        timer = self.clock.callLater(KEYFRAME_TIMEOUT, d.cancel)

        def got(au):
            if timer.active():
                timer.cancel()
            self._attempt = None
            self._connect(au)

        def none(f):
            f.trap(defer.CancelledError)
            if self._attempt is d:
                self._attempt = None
                self._failed("no video from %s yet" % self.spec.stream)
        d.addCallbacks(got, none)

    def _connect(self, au):
        if self._stopped:
            return
        url = self.spec.parsed
        body = sdp.describe(random.getrandbits(31), "127.0.0.1", self.spec.stream, au.sps,
                            au.pps, au.width, au.height, au.fps)
        udp_ports = None
        if self.spec.transport == "udp":
            try:
                self._udp = self._bind_udp_pair()
            except Exception as e:
                self._failed("no local UDP port pair: %s" % e)
                return
            udp_ports = tuple(p.getHost().port for p in self._udp)
        self._client = core.PushClient(url, body, self.spec.transport, udp_ports)
        self.state = "connecting"
        if url.scheme == "rtsps":
            options = ssl.optionsForClientTLS(url.host) if self.spec.tls_verify else \
                ssl.CertificateOptions(verify=False)
            endpoint = endpoints.SSL4ClientEndpoint(self.reactor, url.host, url.port, options,
                                                    timeout=CONNECT_TIMEOUT)
        else:
            endpoint = endpoints.TCP4ClientEndpoint(self.reactor, url.host, url.port,
                                                    timeout=CONNECT_TIMEOUT)
        d = endpoints.connectProtocol(endpoint, _PushProtocol(self))
        self._attempt = d

        def refused(f):
            if self._attempt is d:
                self._attempt = None
                self._failed("cannot connect: %s" % f.getErrorMessage())
        d.addErrback(refused)

    def _bind_udp_pair(self):
        # RFC 3550 11: RTP on an even port, RTCP on the next one.
        for _ in range(20):
            rtp = self.reactor.listenUDP(0, _RtcpPort(), interface="")
            port = rtp.getHost().port
            if port % 2 == 0:
                try:
                    rtcp = self.reactor.listenUDP(port + 1, _RtcpPort(), interface="")
                    return (rtp, rtcp)
                except Exception:
                    pass
            rtp.stopListening()
        raise OSError("none free after 20 tries")

    # -- the connection ------------------------------------------------------

    def connected(self, proto):
        """The TCP (or TLS) connection is up: send the ANNOUNCE."""
        if self._stopped or self._client is None:
            proto.transport.loseConnection()
            return
        self._attempt = None
        self._proto = proto
        self.state = self._client.state
        self._arm_deadline()
        self._write(self._client.start())

    def _arm_deadline(self):
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = self.clock.callLater(ANSWER_TIMEOUT, self._failed,
                                              "no answer from the server in %d s"
                                              % ANSWER_TIMEOUT)

    def _write(self, data):
        if self._proto is not None and self._proto.transport is not None:
            write_now(self._proto.transport, data)

    def data_received(self, proto, data):
        """Bytes from the upstream: run them through the client, do what it says."""
        if proto is not self._proto:
            return
        try:
            events = self._client.receive_data(data)
        except core.AuthFailed as e:
            self._failed(str(e), auth=True)
            return
        except core.PushFailed as e:
            self._failed(str(e))
            return
        for event in events:
            if isinstance(event, core.Send):
                self._arm_deadline()
                self._write(event.data)
            elif isinstance(event, core.Recording):
                self._recording(event)
        if self._client is not None and self._client.state != core.RECORDING:
            self.state = self._client.state

    def _recording(self, event):
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None
        fanout = self.fanouts[self.spec.stream]
        transport = self._proto.transport
        if event.channels is not None:
            def write(data):   # bytes, or a list of them (a catch-up GOP)
                self.bytes += len(data) if isinstance(data, bytes) else sum(map(len, data))
                write_now(transport, data)
            target = TcpTarget(write, lambda: unsent_bytes(transport), event.channels[0],
                               event.channels[1], QUEUE_LIMIT)
        else:
            host = transport.getPeer().host
            target = _CountingUdpTarget(self, self._udp[0].protocol, self._udp[1].protocol, host,
                                        *event.server_ports)
        self._rtp_target = target
        self.state = core.RECORDING
        self.connected_since = time.time()
        self.backoff.connected(self.clock.seconds())
        log.info("pushing {stream} to {url}", event="push_connected", target=self.id,
                 url=self.spec.parsed.public, stream=self.spec.stream,
                 transport=self.spec.transport)
        fanout.add(target)
        self._send_sr()
        keepalive = max(1.0, min(30.0, event.timeout / 2.0))
        for fn, every in ((self._send_sr, SR_INTERVAL), (self._keepalive, keepalive)):
            loop = LoopingCall(fn)
            loop.clock = self.clock
            loop.start(every, now=False)
            self._loops.append(loop)

    def _send_sr(self):
        target, fanout = self._rtp_target, self.fanouts[self.spec.stream]
        if target is None:
            return
        report = target.sender_report(fanout.ssrc, fanout.cname)
        if report is not None:
            target.send_rtcp(report)

    def _keepalive(self):
        data = self._client.keepalive() if self._client is not None else None
        if data:
            self._write(data)

    def connection_lost(self, proto, why):
        """The upstream closed (or the network broke)."""
        if proto is self._proto:
            self._proto = None
            self._failed("connection closed by the server" if "cleanly" in why
                         else "connection lost: %s" % why)

    # -- failure and retry -----------------------------------------------------

    def _end_attempt(self):
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops = []
        if self._rtp_target is not None:
            self.fanouts[self.spec.stream].remove(self._rtp_target)
            self._rtp_target = None
        if self._attempt is not None:
            attempt, self._attempt = self._attempt, None
            attempt.cancel()
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            proto.transport.loseConnection()
        if self._udp is not None:
            for port in self._udp:
                port.stopListening()
            self._udp = None
        self._client = None
        self.connected_since = None

    def _failed(self, message, auth=False):
        if self._stopped:
            return
        was_recording = self.state == core.RECORDING
        self._end_attempt()
        self.last_error = message
        self.reconnects += 1
        self.state = "auth_failed" if auth else "retrying"
        delay = self.backoff.failed(self.clock.seconds(),
                                    at_least=self.backoff.longest if auth else 0.0)
        log.warn("push to {url} failed: {error}; retrying in {delay} s", event="push_failed",
                 target=self.id, url=self.spec.parsed.public, error=message, delay=delay,
                 was_recording=was_recording)
        self._cancel_retry()
        self._retry = self.clock.callLater(delay, self._attempt_now)
        self.next_attempt = time.time() + delay


class _CountingUdpTarget(UdpTarget):
    """A UdpTarget that adds what it sends to its push target's byte count."""

    def __init__(self, owner, *args):
        super().__init__(*args)
        self.owner = owner

    def send_packets(self, packets):
        self.owner.bytes += sum(len(p) for p in packets)
        super().send_packets(packets)


class PushService(service.Service):
    """Every push target: from the config's ``[[push]]`` tables and added over the API."""

    def __init__(self, reactor, fanouts, pushes=()):
        """``fanouts`` are the RTSP server's StreamFanouts by stream name (packetize once);
        ``pushes`` the config's push tables."""
        self.reactor = reactor
        self.fanouts = fanouts
        self.targets = []
        self._next_id = 0
        for item in pushes:
            self._make(item, "config")

    def _make(self, item, origin):
        spec = item if isinstance(item, PushSpec) else PushSpec(**_spec_fields(item))
        target = PushTarget(str(self._next_id), spec, self.fanouts, self.reactor, self.reactor,
                            origin)
        self._next_id += 1
        self.targets.append(target)
        return target

    def startService(self):
        service.Service.startService(self)
        for target in self.targets:
            target.start()

    def stopService(self):
        service.Service.stopService(self)
        for target in self.targets:
            target.stop()

    def status(self):
        """Every target's status."""
        return [t.status() for t in self.targets]

    def get(self, ident):
        """The target with id ``ident``, or None."""
        return next((t for t in self.targets if t.id == ident), None)

    def add(self, spec):
        """Add a target (a PushSpec) and start it when the daemon runs; return it."""
        target = self._make(spec, "api")
        if self.running:
            target.start()
        return target

    def remove(self, ident):
        """Stop and forget target ``ident``; False if there is none."""
        target = self.get(ident)
        if target is None:
            return False
        target.stop()
        self.targets.remove(target)
        return True

    def reconfigure(self, pushes):
        """Apply reloaded ``[[push]]`` tables: changed or removed ones stop, new ones start;
        targets added over the API stay."""
        wanted = [PushSpec(**_spec_fields(item)) for item in pushes]
        keep = []
        for target in [t for t in self.targets if t.origin == "config"]:
            match = next((s for s in wanted if s.key() == target.spec.key()), None)
            if match is not None:
                wanted.remove(match)
                keep.append(target)
            else:
                self.remove(target.id)
        for spec in wanted:
            target = self._make(spec, "config")
            if self.running:
                target.start()

    def counters(self):
        """Per target id: (state, bytes, reconnects), for metrics."""
        return {t.id: (t.state, t.bytes, t.reconnects) for t in self.targets}


def _spec_fields(item):
    """A config push table (a mapping or an object with the fields) as PushSpec kwargs."""
    if isinstance(item, dict):
        return {k: item[k] for k in PushSpec.FIELDS if k in item}
    return {k: getattr(item, k) for k in PushSpec.FIELDS if hasattr(item, k)}
