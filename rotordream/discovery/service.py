"""The WS-Discovery Target Service: Hello, Bye, ProbeMatches and ResolveMatches on UDP 3702.

Policy lives here (when to announce, what to answer, on which interface);
the wire format is in ``message.py`` and the socket in ``protocol.py``.
Timing follows SOAP-over-UDP 1.1 and WS-Discovery: a random delay of up to
APP_MAX_DELAY before a Hello or an answer to a multicast Probe, then one
retransmission of the same message (same MessageID) after a random
50-250 ms, so one lost datagram does not hide the camera.

The daemon's built-in default has discovery off: ``build_discovery_service``
returns None unless ``[discovery] enabled = true``.
"""

import random
from collections import OrderedDict
from functools import partial

from twisted.application import service
from twisted.internet import defer, error, task
from twisted.internet.base import ReactorBase
from twisted.logger import Logger

from rotordream.scopes import device_scopes
from rotordream.listener import described_port
from rotordream.discovery import identity as identitymod
from rotordream.discovery import message, netif
from rotordream.discovery.protocol import DiscoveryProtocol, PacketInfoMulticastPort

log = Logger()

APP_MAX_DELAY = 0.5             # seconds, WS-Discovery
UDP_MIN_DELAY = 0.05            # seconds, SOAP-over-UDP retransmission
UDP_MAX_DELAY = 0.25
UDP_UPPER_DELAY = 0.5
MULTICAST_UDP_REPEAT = 1        # retransmissions after the first send
UNICAST_UDP_REPEAT = 1
REFRESH_INTERVAL = 30           # seconds between looks for new or changed interfaces
MAX_PENDING = 64                # scheduled sends; beyond this a Probe flood is not answered
SEEN_MESSAGES = 512             # recent (MessageID, interface) pairs kept to drop repeats

DISCOVERABLE = "discoverable"
_SCOPE_KEYS = ("device-name", "device-location")


class DiscoveryService(service.Service):
    """Announces the camera and answers Probes and Resolves on every selected interface.

    ``identity`` is an :class:`rotordream.discovery.identity.Identity`;
    ``http_port`` a callable giving the HTTP port for XAddrs;
    ``interface_names`` limits the interfaces (empty: every multicast,
    non-loopback one). ``list_interfaces``, ``local_address_for`` and
    ``rng`` are there for tests.
    """

    name = "discovery"

    def __init__(self, reactor, state, identity, http_port, interface_names=(),
                 list_interfaces=netif.list_interfaces,
                 local_address_for=netif.local_address_for,
                 save_identity=None, rng=None, port=message.PORT):
        self.reactor = reactor
        self.state = state
        self.identity = identity
        self.http_port = http_port
        self.interface_names = tuple(interface_names)
        self.list_interfaces = list_interfaces
        self.local_address_for = local_address_for
        self.save_identity = save_identity
        self.rng = rng or random.SystemRandom()
        self.port = port
        self.interfaces = {}          # ifindex -> netif.Interface joined to the group
        self.transport = None
        self._pending = set()
        self._seen = OrderedDict()
        self._message_number = 0
        self._refresh = None
        self._unsubscribe = None
        self._warned_missing = False
        # The extra ONVIF scopes are camera state: announced as they are at start
        # (no new MetadataVersion), then followed as they change.
        self.extra_scopes = _announceable(state.scopes.get())
        self._unsubscribe_scopes = None

    # -- lifecycle ------------------------------------------------------

    def startService(self):
        service.Service.startService(self)
        try:
            self.transport = self._listen(DiscoveryProtocol(self))
        except error.CannotListenError as e:
            # The camera works without discovery; say why it cannot be found.
            log.error("WS-Discovery off: cannot listen on UDP {port}: {why}",
                      port=self.port, why=e.socketError)
            return
        self._unsubscribe = self.state.subscribe(self._state_changed)
        self.extra_scopes = _announceable(self.state.scopes.get())
        self._unsubscribe_scopes = self.state.scopes.subscribe(self._extra_scopes_changed)
        self.refresh_interfaces()
        self._refresh = task.LoopingCall(self.refresh_interfaces)
        self._refresh.clock = self.reactor
        self._refresh.start(REFRESH_INTERVAL, now=False)

    def stopService(self):
        """Send Bye on every interface (when discoverable); fire once it and its repeat are out."""
        service.Service.stopService(self)
        if self._refresh is not None and self._refresh.running:
            self._refresh.stop()
        for unsubscribe in (self._unsubscribe, self._unsubscribe_scopes):
            if unsubscribe is not None:
                unsubscribe()
        self._unsubscribe = self._unsubscribe_scopes = None
        for call in list(self._pending):
            if call.active():
                call.cancel()
        self._pending.clear()
        if self.transport is None:
            return None
        byes = self._announce(message.BYE) if self.discoverable else []
        d = defer.gatherResults(byes, consumeErrors=True)
        d.addBoth(lambda _: self._close())
        return d

    def _close(self):
        transport, self.transport = self.transport, None
        self.interfaces = {}
        return transport.stopListening() if transport is not None else None

    def _listen(self, protocol):
        if isinstance(self.reactor, ReactorBase) and hasattr(self.reactor, "addReader"):
            port = PacketInfoMulticastPort(self.port, protocol, maxPacketSize=65535,
                                           reactor=self.reactor, listenMultiple=True)
            port.startListening()
            return port
        return self.reactor.listenMulticast(self.port, protocol, maxPacketSize=65535,
                                            listenMultiple=True)

    # -- interfaces -----------------------------------------------------

    def reconfigure(self, section):
        """Apply a reloaded ``[discovery] interfaces``: a Bye on the interfaces left out,
        a Hello on the new ones. (``enabled`` starts or stops the whole service: the
        assembler's job.)"""
        names = tuple(section.interfaces)
        if names == self.interface_names:
            return
        self.interface_names = names
        self._warned_missing = False
        if self.transport is None or not self.running:
            return
        kept = {i.index for i in netif.select_interfaces(self.list_interfaces(), names)}
        dropped = [iface for index, iface in self.interfaces.items() if index not in kept]
        if dropped and self.discoverable:
            self._announce(message.BYE, dropped)
        self.refresh_interfaces()

    def refresh_interfaces(self):
        """Join the group on new or readdressed interfaces (Hello there), forget vanished ones."""
        if self.transport is None or not self.running:
            return
        current = {i.index: i for i in netif.select_interfaces(self.list_interfaces(),
                                                               self.interface_names)}
        if not current and not self._warned_missing:
            self._warned_missing = True
            log.warn("WS-Discovery: no interface to announce on (configured: {names})",
                     names=", ".join(self.interface_names) or "all")
        for index in list(self.interfaces):
            if index not in current:
                gone = self.interfaces.pop(index)
                self.transport.leaveGroup(message.MULTICAST_GROUP, gone.address).addErrback(
                    lambda f: None)  # the interface is gone; so is its membership
        for index, iface in sorted(current.items()):
            old = self.interfaces.get(index)
            if old == iface:
                continue
            self.interfaces[index] = iface
            if old is None or old.address != iface.address:
                log.info("WS-Discovery: {endpoint} on {name} ({address})",
                         endpoint=self.identity.address, name=iface.name, address=iface.address)
                d = self.transport.joinGroup(message.MULTICAST_GROUP, iface.address)
                d.addErrback(self._join_failed, iface)
                if self.discoverable:
                    self._announce(message.HELLO, [iface])

    def _join_failed(self, failure, iface):
        log.warn("WS-Discovery: cannot join {group} on {name} ({address}): {why}",
                 group=message.MULTICAST_GROUP, name=iface.name, address=iface.address,
                 why=failure.getErrorMessage())

    # -- what we announce -----------------------------------------------

    @property
    def discoverable(self):
        """True unless the ``discovery-mode`` state key says non-discoverable."""
        return self.state.get("discovery-mode") == DISCOVERABLE

    def scopes(self, iface=None):
        """The device's scopes; the MAC is that of ``iface`` (else of any interface)."""
        mac = iface.mac if iface is not None and iface.mac else None
        if mac is None:
            mac = next((i.mac for _, i in sorted(self.interfaces.items()) if i.mac), None)
        return device_scopes(self.state.get("device-name"),
                                     self.state.get("device-location"), mac) + self.extra_scopes

    def set_extra_scopes(self, scopes):
        """Announce ``scopes`` too (e.g. ONVIF AddScopes); a new MetadataVersion and a Hello."""
        scopes = tuple(scopes)
        if any(not s or any(c.isspace() for c in s) for s in scopes):
            raise ValueError("a scope is a URI without spaces")
        if scopes != self.extra_scopes:
            self.extra_scopes = scopes
            self._scopes_changed()

    def _extra_scopes_changed(self, scopes):
        self.set_extra_scopes(_announceable(scopes))

    def endpoint(self, iface, local_address=None):
        """The :class:`message.Endpoint` as seen from ``iface`` (XAddrs on its address)."""
        xaddr = message.device_service_url(local_address or iface.address, self.http_port())
        return message.Endpoint(self.identity.address, message.DEVICE_TYPES,
                                self.scopes(iface), (xaddr,), self.identity.metadata_version)

    def _sequence(self):
        self._message_number += 1
        return (self.identity.instance_id, self._message_number)

    def _announce(self, kind, interfaces=None):
        """Multicast a Hello or Bye on ``interfaces`` (default all); Deferreds of the sends."""
        done = []
        for iface in interfaces if interfaces is not None else list(self.interfaces.values()):
            build = message.hello if kind == message.HELLO else message.bye
            data = message.serialize(build(self.endpoint(iface), self._sequence()))
            # Hello waits a random delay so a power cut's worth of cameras do not
            # all answer at once; Bye goes at once since we are leaving.
            delay = self.rng.uniform(0, APP_MAX_DELAY) if kind == message.HELLO else 0
            d = defer.Deferred()
            self._send(data, (message.MULTICAST_GROUP, self.port), iface, delay,
                       MULTICAST_UDP_REPEAT, d)
            done.append(d)
        return done

    # -- sending --------------------------------------------------------

    def _send(self, data, dest, via, delay, repeats, done=None):
        if len(self._pending) >= MAX_PENDING:
            log.warn("WS-Discovery: too many pending sends; dropping one to {dest}", dest=dest)
            if done is not None:
                done.callback(None)
            return
        interval = self.rng.uniform(UDP_MIN_DELAY, UDP_MAX_DELAY)
        if delay <= 0:
            self._transmit(data, dest, via, repeats, interval, done)
        else:
            self._schedule(delay, self._transmit, data, dest, via, repeats, interval, done)

    def _transmit(self, data, dest, via, repeats, interval, done):
        self._write(data, dest, via)
        if repeats > 0:
            self._schedule(interval, self._transmit, data, dest, via, repeats - 1,
                           min(interval * 2, UDP_UPPER_DELAY), done)
        elif done is not None:
            done.callback(None)

    def _schedule(self, delay, fn, *args):
        holder = []

        def run():
            self._pending.discard(holder[0])
            fn(*args)

        call = self.reactor.callLater(delay, run)
        holder.append(call)
        self._pending.add(call)

    def _write(self, data, dest, via):
        transport = self.transport
        if transport is None:
            return
        try:
            if via is not None:
                # IP literal: Twisted sets IP_MULTICAST_IF synchronously, before the write.
                transport.setOutgoingInterface(via.address)
            transport.write(data, dest)
        except Exception as e:
            log.warn("WS-Discovery: cannot send to {dest}{via}: {why}", dest=dest,
                     via=" on %s" % via.name if via is not None else "", why=e)

    # -- receiving ------------------------------------------------------

    def message_received(self, msg, addr, info=None):
        """Answer a Probe or Resolve from ``addr``; other messages need no answer."""
        if (msg.kind not in (message.PROBE, message.RESOLVE) or not self.running
                or not self.discoverable):
            return
        iface, local = self._arrival(addr, info)
        if iface is None or self._repeated(msg.message_id, iface.index):
            return
        endpoint = self.endpoint(iface, local)
        if msg.kind == message.PROBE:
            if not message.probe_matches_endpoint(msg, endpoint):
                return
            reply = message.probe_matches(msg, endpoint, self._sequence())
        else:
            if not message.same_address(msg.address, endpoint.address):
                return
            reply = message.resolve_matches(msg, endpoint, self._sequence())
        multicast = info is None or info.multicast
        delay = self.rng.uniform(0, APP_MAX_DELAY) if multicast else 0
        # Always to the sender's address and port: SOAP-over-UDP's anonymous reply.
        self._send(message.serialize(reply), tuple(addr[:2]), None, delay, UNICAST_UDP_REPEAT)

    def _arrival(self, addr, info):
        """(interface, our address on it) the datagram came in on, or (None, None)."""
        if info is not None:
            iface = self.interfaces.get(info.ifindex)
            if iface is None:
                return None, None  # an interface we do not serve
            local = info.local if info.local not in ("0.0.0.0", "") else iface.address
            return iface, local
        local = self.local_address_for(addr[0])
        for iface in self.interfaces.values():
            if iface.address == local:
                return iface, local
        return None, None

    def _repeated(self, message_id, index):
        key = (message_id, index)
        if key in self._seen:
            return True
        self._seen[key] = True
        while len(self._seen) > SEEN_MESSAGES:
            self._seen.popitem(last=False)
        return False

    def _state_changed(self, changes, origin):
        if self.transport is None or not self.running:
            return
        if "discovery-mode" in changes:
            if any(k in changes for k in _SCOPE_KEYS):
                self._bump_metadata_version()
            self._announce(message.HELLO if self.discoverable else message.BYE)
        elif any(k in changes for k in _SCOPE_KEYS):
            self._scopes_changed()

    def readdressed(self):
        """The HTTP port (so the XAddrs) changed: a new MetadataVersion and a Hello."""
        self._scopes_changed()

    def _scopes_changed(self):
        # New scopes: a new MetadataVersion, announced with a Hello.
        self._bump_metadata_version()
        if self.transport is not None and self.running and self.discoverable:
            self._announce(message.HELLO)

    def _bump_metadata_version(self):
        self.identity = identitymod.Identity(self.identity.address, self.identity.instance_id,
                                             (self.identity.metadata_version + 1) % 2 ** 32 or 1)
        if self.save_identity is not None:
            self.save_identity(self.identity)


def build_discovery_service(reactor, state, config, http_port=None):
    """The WS-Discovery service, or None when ``[discovery] enabled`` is false.

    ``http_port`` is a callable giving the HTTP port for XAddrs (the assembler passes
    its HTTP listener's :meth:`~rotordream.listener.Listener.number`); by default the
    port in ``[server] http``.
    """
    cfg = config.discovery
    if not cfg.enabled:
        return None
    state_dir = config.server.state_dir
    if http_port is None:
        http_port = partial(described_port, config.server.http)
    return DiscoveryService(reactor, state, identitymod.load(state_dir), http_port,
                            interface_names=cfg.interfaces,
                            save_identity=partial(identitymod.save, state_dir))


def _announceable(scopes):
    # A scope with white space cannot go into a space-separated Scopes list.
    return tuple(s for s in scopes if s and not any(c.isspace() for c in s))
