"""Transport negotiation without I/O: a SETUP's Transport offers in, the chosen transport out.

RFC 2326 12.39: the client lists transports in order of preference; the
server takes the first it can serve. Served here: unicast RTP/AVP over UDP
(to the client's port pair) and RTP/AVP/TCP interleaved on the connection
(on channels no other session of the connection uses). A ``?tcp`` or
``?udp`` URL pins the kind. Nothing usable is 461 Unsupported Transport.

Multicast (RFC 2326 12.39 ``RTP/AVP;multicast``) is served only when the
stream has a :class:`Group` (``[rtsp] multicast_group`` set): the server
chooses the group, port pair and TTL; a client's ``destination``, ``port``
or ``ttl`` is never followed (the server must not send where a client says).
A ``?udp`` pin allows it, ``?tcp`` does not.
"""

import ipaddress
from dataclasses import dataclass

from rotordream.rtsp.message import client_ports, interleaved_channels, parse_transport

TCP, UDP, MULTICAST = "tcp", "udp", "multicast"
PROTOCOLS = ("RTP/AVP", "RTP/AVP/UDP", "RTP/AVP/TCP")


@dataclass(frozen=True)
class Group:
    """Where a stream's multicast RTP goes: ``address``, RTP ``port`` (RTCP on port + 1)."""

    address: str
    port: int
    ttl: int


def multicast_groups(config, streams):
    """{stream: :class:`Group`} from the [rtsp] ``config``, or {} when multicast is off.

    The n-th stream (0-based, in ``streams`` order) gets ``multicast_group`` + n
    and ports ``multicast_port`` + 2n, + 2n + 1: each stream its own group and
    port pair, so a receiver bound to one port never sees another stream.
    """
    base = getattr(config, "multicast_group", "")
    if not base:
        return {}
    first = ipaddress.IPv4Address(base)
    return {name: Group(str(first + i), config.multicast_port + 2 * i, config.multicast_ttl)
            for i, name in enumerate(streams)}


@dataclass(frozen=True)
class Chosen:
    """The transport a SETUP gets: ``kind`` TCP with channels, UDP with client ports, or
    MULTICAST with the group's port pair (``group`` is then the :class:`Group`)."""

    kind: str
    pair: tuple
    group: Group = None


class Unsupported(Exception):
    """No offer can be served (answer 461); ``problem`` says why when one offer was bad."""

    def __init__(self, problem=None):
        super().__init__(problem or "unsupported transport")
        self.problem = problem


class Missing(Unsupported):
    """The request has no Transport header at all."""


def negotiate(header, pinned=None, used_channels=(), udp=True, group=None):
    """The first servable offer of a Transport ``header``; raises :class:`Unsupported`.

    ``pinned``: TCP or UDP when the URL asked for one; ``used_channels``: the
    interleaved channels other sessions of the connection hold; ``udp``: False
    when the server has no RTP port pair; ``group``: the stream's multicast
    :class:`Group`, None when multicast is off.
    """
    offers = parse_transport(header or "")
    if not offers:
        raise Missing("Transport header missing")
    used = set(used_channels)
    problem = None
    for offer in offers:
        proto = offer["protocol"]
        if proto not in PROTOCOLS:
            continue
        if "multicast" in offer:
            if proto != "RTP/AVP/TCP" and group is not None and pinned != TCP:
                return Chosen(MULTICAST, (group.port, group.port + 1), group)
            continue
        is_tcp = proto == "RTP/AVP/TCP"
        if pinned and (pinned == TCP) != is_tcp:
            continue
        try:
            if is_tcp:
                pair = interleaved_channels(offer.get("interleaved", "0-1"))
                if used.intersection(pair):
                    raise ValueError("interleaved channels already in use")
                return Chosen(TCP, pair)
            if "client_port" in offer and udp:
                return Chosen(UDP, client_ports(offer["client_port"]))
        except ValueError as e:
            problem = problem or str(e)
    raise Unsupported(problem)


def reply(chosen, ssrc, server_port=None):
    """The Transport header value answering a SETUP that got ``chosen``."""
    a, b = chosen.pair
    if chosen.kind == MULTICAST:
        return "RTP/AVP;multicast;destination=%s;port=%d-%d;ttl=%d;ssrc=%08X" % (
            chosen.group.address, a, b, chosen.group.ttl, ssrc)
    if chosen.kind == TCP:
        return "RTP/AVP/TCP;unicast;interleaved=%d-%d;ssrc=%08X" % (a, b, ssrc)
    return "RTP/AVP;unicast;client_port=%d-%d;server_port=%d-%d;ssrc=%08X" % (
        a, b, server_port, server_port + 1, ssrc)
