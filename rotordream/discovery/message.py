"""WS-Discovery (April 2005, as ONVIF uses it) messages: parse and build, no sockets.

:func:`parse` turns one SOAP-over-UDP datagram into a :class:`Message`;
:func:`serialize` turns a :class:`Message` back into bytes. The matching
rules a Target Service applies to a Probe (types, scopes with ``MatchBy``)
and the ONVIF scopes of the device live here too, so the Twisted adapter in
``service.py`` only decides when and where to send.

Parsing uses lxml with entity resolution and network access off; a
document with a DOCTYPE is refused, so XXE and entity-expansion payloads
never reach the tree walk.

Why it is long: one wire format, parsed and built in one place (the five
message kinds, their SOAP headers and the Probe matching rules share the
namespace handling); split, each half would need the other's helpers.
"""

import uuid
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from lxml import etree

# -- namespaces ----------------------------------------------------------------

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
DN = "http://www.onvif.org/ver10/network/wsdl"
TDS = "http://www.onvif.org/ver10/device/wsdl"

#: wsa:To of multicast messages (Hello, Bye, Probe, Resolve).
DISCOVERY_URN = "urn:schemas-xmlsoap-org:ws:2005:04:discovery"
#: wsa:To of unicast replies (ProbeMatches, ResolveMatches).
ANONYMOUS = WSA + "/role/anonymous"

MULTICAST_GROUP = "239.255.255.250"
PORT = 3702

HELLO, BYE, PROBE, PROBE_MATCHES, RESOLVE, RESOLVE_MATCHES = (
    "Hello", "Bye", "Probe", "ProbeMatches", "Resolve", "ResolveMatches")
KINDS = (HELLO, BYE, PROBE, PROBE_MATCHES, RESOLVE, RESOLVE_MATCHES)
_MATCH_CHILD = {PROBE_MATCHES: "ProbeMatch", RESOLVE_MATCHES: "ResolveMatch"}

#: The types an ONVIF NVT announces: tdn:NetworkVideoTransmitter and tds:Device.
DEVICE_TYPES = ((DN, "NetworkVideoTransmitter"), (TDS, "Device"))

# Scope matching rules. The 2005/04 spec names rfc2396; ONVIF Core and WS-Discovery
# 1.1 call the same segment-wise prefix rule rfc3986, and clients send any of them.
MATCH_RFC2396 = WSD + "/rfc2396"
MATCH_RFC3986 = WSD + "/rfc3986"
MATCH_RFC3986_2009 = "http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01/rfc3986"
MATCH_STRCMP0 = WSD + "/strcmp0"
_PREFIX_RULES = (None, "", MATCH_RFC2396, MATCH_RFC3986, MATCH_RFC3986_2009)

#: The largest datagram we parse (SOAP-over-UDP messages are far smaller).
MAX_MESSAGE = 65507

_PREFIXES = {"s": SOAP12, "a": WSA, "d": WSD, "dn": DN, "tds": TDS}


class DiscoveryError(ValueError):
    """A datagram that is not a WS-Discovery message we understand."""


@dataclass(frozen=True)
class Endpoint:
    """A Target Service as Hello, Bye and the match messages describe it.

    ``types`` are (namespace, local name) pairs; ``scopes`` and ``xaddrs``
    are URI strings.
    """

    address: str
    types: tuple = ()
    scopes: tuple = ()
    xaddrs: tuple = ()
    metadata_version: int = 1


@dataclass(frozen=True)
class Message:
    """One WS-Discovery message.

    ``kind`` is one of :data:`KINDS`. Hello and Bye carry one endpoint,
    ProbeMatches and ResolveMatches any number; Probe carries ``types``,
    ``scopes`` and ``match_by`` (``types``/``scopes`` are None when the
    element is absent); Resolve carries ``address``. ``app_sequence`` is
    (InstanceId, MessageNumber) or None.
    """

    kind: str
    message_id: str
    to: str = None
    relates_to: str = None
    reply_to: str = None
    app_sequence: tuple = None
    endpoints: tuple = ()
    types: tuple = None
    scopes: tuple = None
    match_by: str = None
    address: str = None
    soap: str = SOAP12

    @property
    def action(self):
        """The wsa:Action URI of this message."""
        return "%s/%s" % (WSD, self.kind)


def new_message_id():
    """A fresh ``urn:uuid:`` message id."""
    return uuid.uuid4().urn


# -- parsing -------------------------------------------------------------------

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                          huge_tree=False, remove_comments=True, remove_pis=True)


def parse(data):
    """Parse one datagram into a :class:`Message`; raise :class:`DiscoveryError` if not one."""
    if not isinstance(data, bytes):
        raise DiscoveryError("expected bytes")
    if len(data) > MAX_MESSAGE:
        raise DiscoveryError("message too large")
    if b"<!DOCTYPE" in data:
        # SOAP forbids a DTD; refusing it before parsing keeps entity tricks out entirely.
        raise DiscoveryError("DOCTYPE not allowed")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as e:
        raise DiscoveryError("malformed XML: %s" % e) from None
    if root.getroottree().docinfo.doctype:
        raise DiscoveryError("DOCTYPE not allowed")
    soap = etree.QName(root).namespace
    if soap not in (SOAP12, SOAP11) or etree.QName(root).localname != "Envelope":
        raise DiscoveryError("not a SOAP envelope")
    header = root.find("{%s}Header" % soap)
    body = root.find("{%s}Body" % soap)
    if body is None or len(body) == 0:
        raise DiscoveryError("no SOAP Body")
    first = body[0]
    name = etree.QName(first)
    if name.namespace != WSD or name.localname not in KINDS:
        raise DiscoveryError("not a WS-Discovery message: {%s}%s"
                             % (name.namespace, name.localname))
    kind = name.localname
    fields = _parse_header(header)
    if not fields.get("message_id"):
        raise DiscoveryError("no wsa:MessageID")
    if kind in (HELLO, BYE):
        fields["endpoints"] = (_parse_endpoint(first),)
    elif kind in _MATCH_CHILD:
        fields["endpoints"] = tuple(_parse_endpoint(m)
                                    for m in first.findall("{%s}%s" % (WSD, _MATCH_CHILD[kind])))
    elif kind == PROBE:
        types_el = first.find("{%s}Types" % WSD)
        scopes_el = first.find("{%s}Scopes" % WSD)
        fields["types"] = _qnames(types_el) if types_el is not None else None
        fields["scopes"] = _uris(scopes_el) if scopes_el is not None else None
        if scopes_el is not None:
            fields["match_by"] = (scopes_el.get("MatchBy") or "").strip() or None
    elif kind == RESOLVE:
        fields["address"] = _epr_address(first)
        if not fields["address"]:
            raise DiscoveryError("Resolve without an endpoint address")
    return Message(kind=kind, soap=soap, **fields)


def _text(el):
    return (el.text or "").strip() if el is not None else None


def _parse_header(header):
    fields = {}
    if header is None:
        return fields
    fields["message_id"] = _text(header.find("{%s}MessageID" % WSA))
    fields["to"] = _text(header.find("{%s}To" % WSA))
    fields["relates_to"] = _text(header.find("{%s}RelatesTo" % WSA))
    reply = header.find("{%s}ReplyTo" % WSA)
    if reply is not None:
        fields["reply_to"] = _text(reply.find("{%s}Address" % WSA))
    seq = header.find("{%s}AppSequence" % WSD)
    if seq is not None:
        try:
            fields["app_sequence"] = (int(seq.get("InstanceId")), int(seq.get("MessageNumber")))
        except (TypeError, ValueError):
            raise DiscoveryError("bad AppSequence") from None
    return fields


def _epr_address(parent):
    return _text(parent.find("{%s}EndpointReference/{%s}Address" % (WSA, WSA)))


def _parse_endpoint(el):
    address = _epr_address(el)
    if not address:
        raise DiscoveryError("%s without an endpoint address" % etree.QName(el).localname)
    types_el = el.find("{%s}Types" % WSD)
    scopes_el = el.find("{%s}Scopes" % WSD)
    xaddrs_el = el.find("{%s}XAddrs" % WSD)
    version = _text(el.find("{%s}MetadataVersion" % WSD))
    try:
        version = int(version) if version else 0
    except ValueError:
        raise DiscoveryError("bad MetadataVersion") from None
    return Endpoint(address=address,
                    types=_qnames(types_el) if types_el is not None else (),
                    scopes=_uris(scopes_el) if scopes_el is not None else (),
                    xaddrs=_uris(xaddrs_el) if xaddrs_el is not None else (),
                    metadata_version=version)


def _uris(el):
    return tuple((el.text or "").split())


def _qnames(el):
    """The QNames of a list element, prefixes resolved in the element's own scope."""
    names = []
    for item in (el.text or "").split():
        prefix, sep, local = item.rpartition(":")
        namespace = el.nsmap.get(prefix if sep else None)
        if namespace is None or not local:
            # An undeclared prefix cannot match anything of ours; keep it unmatched.
            namespace = "urn:undeclared-prefix:" + prefix
        names.append((namespace, local))
    return tuple(names)


# -- building ------------------------------------------------------------------

def serialize(message):
    """The bytes of ``message``: an XML declaration, every prefix declared on the Envelope."""
    nsmap = dict(_PREFIXES)
    nsmap["s"] = message.soap
    for ns, _ in _all_types(message):
        if ns not in nsmap.values():
            nsmap["t%d" % len(nsmap)] = ns
    prefix_of = {ns: p for p, ns in nsmap.items()}
    s, a, d = "{%s}" % message.soap, "{%s}" % WSA, "{%s}" % WSD
    env = etree.Element(s + "Envelope", nsmap=nsmap)
    header = etree.SubElement(env, s + "Header")
    etree.SubElement(header, a + "MessageID").text = message.message_id
    if message.relates_to:
        etree.SubElement(header, a + "RelatesTo").text = message.relates_to
    if message.reply_to:
        reply = etree.SubElement(header, a + "ReplyTo")
        etree.SubElement(reply, a + "Address").text = message.reply_to
    etree.SubElement(header, a + "To").text = message.to or (
        ANONYMOUS if message.kind in _MATCH_CHILD else DISCOVERY_URN)
    etree.SubElement(header, a + "Action").text = message.action
    if message.app_sequence is not None:
        etree.SubElement(header, d + "AppSequence",
                         InstanceId=str(message.app_sequence[0]),
                         MessageNumber=str(message.app_sequence[1]))
    body = etree.SubElement(etree.SubElement(env, s + "Body"), d + message.kind)
    if message.kind in (HELLO, BYE):
        _add_endpoint(body, message.endpoints[0], prefix_of, full=message.kind == HELLO)
    elif message.kind in _MATCH_CHILD:
        for endpoint in message.endpoints:
            _add_endpoint(etree.SubElement(body, d + _MATCH_CHILD[message.kind]), endpoint,
                          prefix_of, full=True)
    elif message.kind == PROBE:
        if message.types is not None:
            etree.SubElement(body, d + "Types").text = _qname_list(message.types, prefix_of)
        if message.scopes is not None:
            el = etree.SubElement(body, d + "Scopes")
            el.text = " ".join(message.scopes)
            if message.match_by:
                el.set("MatchBy", message.match_by)
    elif message.kind == RESOLVE:
        epr = etree.SubElement(body, a + "EndpointReference")
        etree.SubElement(epr, a + "Address").text = message.address
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def _all_types(message):
    yield from message.types or ()
    for endpoint in message.endpoints:
        yield from endpoint.types


def _qname_list(types, prefix_of):
    return " ".join("%s:%s" % (prefix_of[ns], local) for ns, local in types)


def _add_endpoint(parent, endpoint, prefix_of, full):
    a, d = "{%s}" % WSA, "{%s}" % WSD
    epr = etree.SubElement(parent, a + "EndpointReference")
    etree.SubElement(epr, a + "Address").text = endpoint.address
    if not full:
        return  # Bye needs only the endpoint reference
    if endpoint.types:
        etree.SubElement(parent, d + "Types").text = _qname_list(endpoint.types, prefix_of)
    if endpoint.scopes:
        etree.SubElement(parent, d + "Scopes").text = " ".join(endpoint.scopes)
    if endpoint.xaddrs:
        etree.SubElement(parent, d + "XAddrs").text = " ".join(endpoint.xaddrs)
    etree.SubElement(parent, d + "MetadataVersion").text = str(endpoint.metadata_version)


def hello(endpoint, app_sequence, message_id=None):
    """A Hello announcing ``endpoint``."""
    return Message(HELLO, message_id or new_message_id(), app_sequence=app_sequence,
                   endpoints=(endpoint,))


def bye(endpoint, app_sequence, message_id=None):
    """A Bye for ``endpoint``."""
    return Message(BYE, message_id or new_message_id(), app_sequence=app_sequence,
                   endpoints=(endpoint,))


def probe_matches(request, endpoint, app_sequence, message_id=None):
    """The ProbeMatches answering ``request`` (a Probe) with ``endpoint``."""
    return Message(PROBE_MATCHES, message_id or new_message_id(), relates_to=request.message_id,
                   to=ANONYMOUS, app_sequence=app_sequence, endpoints=(endpoint,),
                   soap=request.soap)


def resolve_matches(request, endpoint, app_sequence, message_id=None):
    """The ResolveMatches answering ``request`` (a Resolve) with ``endpoint``."""
    return Message(RESOLVE_MATCHES, message_id or new_message_id(),
                   relates_to=request.message_id, to=ANONYMOUS, app_sequence=app_sequence,
                   endpoints=(endpoint,), soap=request.soap)


def probe(types=None, scopes=None, match_by=None, message_id=None):
    """A Probe (what a client multicasts), for tests and tools."""
    return Message(PROBE, message_id or new_message_id(),
                   types=tuple(types) if types is not None else None,
                   scopes=tuple(scopes) if scopes is not None else None, match_by=match_by)


def resolve(address, message_id=None):
    """A Resolve for the endpoint ``address``, for tests and tools."""
    return Message(RESOLVE, message_id or new_message_id(), address=address)


# -- matching ------------------------------------------------------------------

def types_match(wanted, offered):
    """True when every wanted (namespace, local) type is among ``offered`` (none wanted: True)."""
    return all(t in offered for t in (wanted or ()))


def _segments(uri):
    """(scheme, authority, path segments) of ``uri``, or None if it is not a usable URI."""
    try:
        parts = urlsplit(uri)
    except ValueError:  # e.g. "http://[::1/x": an unclosed IPv6 bracket, from any prober
        return None
    if not parts.scheme:
        return None
    segments = parts.path.split("/")
    if segments and segments[0] == "":
        segments = segments[1:]          # the empty segment before an absolute path
    if segments and segments[-1] == "":
        segments = segments[:-1]         # "a/b/" names the same scope as "a/b"
    segments = [unquote(s) for s in segments]
    if "." in segments or ".." in segments:
        return None
    return parts.scheme.lower(), parts.netloc.lower(), segments


def scope_matches(wanted, offered, match_by=None):
    """True when the probe scope ``wanted`` matches our scope ``offered`` under ``match_by``.

    The RFC 2396/3986 rule of WS-Discovery: scheme and authority equal
    ignoring case, and the path of ``wanted`` a segment-wise (not string)
    prefix of the path of ``offered`` after percent-decoding; no dot
    segments; query and fragment are not compared. ``strcmp0`` is exact
    string equality. Any other rule (uuid, ldap, unknown) matches nothing.
    """
    if match_by in _PREFIX_RULES:
        w, o = _segments(wanted), _segments(offered)
        if w is None or o is None:
            return False
        return w[0] == o[0] and w[1] == o[1] and o[2][:len(w[2])] == w[2]
    if match_by == MATCH_STRCMP0:
        return wanted == offered
    return False


def scopes_match(wanted, offered, match_by=None):
    """True when each wanted scope matches one of ``offered`` (none wanted: True)."""
    return all(any(scope_matches(w, o, match_by) for o in offered) for w in (wanted or ()))


def probe_matches_endpoint(request, endpoint):
    """True when the Probe ``request`` selects ``endpoint`` by its types and scopes."""
    return (types_match(request.types, endpoint.types)
            and scopes_match(request.scopes, endpoint.scopes, request.match_by))


def same_address(a, b):
    """True when two endpoint addresses name the same endpoint (urn:uuid case-insensitive)."""
    if a is None or b is None:
        return False
    a, b = a.strip(), b.strip()
    if a.lower().startswith("urn:uuid:") and b.lower().startswith("urn:uuid:"):
        return a.lower() == b.lower()
    return a == b



def device_service_url(host, port):
    """The XAddr of the device service on ``host``:``port``."""
    if ":" in host:
        host = "[%s]" % host
    return "http://%s%s/onvif/device_service" % (host, "" if port == 80 else ":%d" % port)
