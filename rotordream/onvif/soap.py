"""SOAP 1.2/1.1 envelopes for ONVIF, without I/O: safe parsing, faults, response building.

Parsing never resolves entities, loads DTDs or touches the network; a
document carrying a DOCTYPE is refused outright, which stops XXE and
entity-expansion ("billion laughs") payloads before they are expanded.
Responses declare every prefix of :data:`NSMAP` on the Envelope, so QName
values in text (``ter:NotAuthorized``, ``tt:Wiper|On``) always resolve.
"""

import math

from lxml import etree

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"

NSMAP = {
    "env": SOAP12,
    "xs": "http://www.w3.org/2001/XMLSchema",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
    "wsa": "http://www.w3.org/2005/08/addressing",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
    "tt": "http://www.onvif.org/ver10/schema",
    "ter": "http://www.onvif.org/ver10/error",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tr2": "http://www.onvif.org/ver20/media/wsdl",
    "trc": "http://www.onvif.org/ver10/recording/wsdl",
    "tse": "http://www.onvif.org/ver10/search/wsdl",
    "trp": "http://www.onvif.org/ver10/replay/wsdl",
    "tptz": "http://www.onvif.org/ver20/ptz/wsdl",
    "timg": "http://www.onvif.org/ver20/imaging/wsdl",
    "tev": "http://www.onvif.org/ver10/events/wsdl",
    "tmd": "http://www.onvif.org/ver10/deviceIO/wsdl",
    "wsnt": "http://docs.oasis-open.org/wsn/b-2",
    "wstop": "http://docs.oasis-open.org/wsn/t-1",
    "tns1": "http://www.onvif.org/ver10/topics",
}

MAX_BODY = 1 << 20  # bytes; ONVIF requests are a few kB


def qn(prefixed):
    """``"tt:Name"`` -> ``"{http://www.onvif.org/ver10/schema}Name"``."""
    prefix, _, local = prefixed.partition(":")
    return "{%s}%s" % (NSMAP[prefix], local)


class SoapFault(Exception):
    """A SOAP fault: ``code`` is "Sender"/"Receiver"/"VersionMismatch"/"MustUnderstand",
    ``subcodes`` prefixed QNames such as ``("ter:NotAuthorized",)``."""

    def __init__(self, code, subcodes, reason, http_status=None, headers=None):
        super().__init__(reason)
        self.code = code
        self.subcodes = tuple(subcodes)
        self.reason = reason
        self.http_status = http_status or (500 if code == "Receiver" else 400)
        self.headers = headers or {}


def sender(subcodes, reason, **kw):
    """A client-side fault (HTTP 400 unless told)."""
    if isinstance(subcodes, str):
        subcodes = (subcodes,)
    return SoapFault("Sender", subcodes, reason, **kw)


def receiver(subcodes, reason, **kw):
    """A server-side fault (HTTP 500 unless told)."""
    if isinstance(subcodes, str):
        subcodes = (subcodes,)
    return SoapFault("Receiver", subcodes, reason, **kw)


def not_authorized(reason="The action requested requires authorization and the sender "
                          "is not authorized", http_status=400, headers=None):
    """env:Sender/ter:NotAuthorized, as ONVIF Core answers refused credentials."""
    return sender("ter:NotAuthorized", reason, http_status=http_status, headers=headers)


def action_not_supported(name):
    """env:Receiver/ter:ActionNotSupported for an operation we do not implement."""
    return receiver("ter:ActionNotSupported", "the operation %s is not supported" % name)


def invalid_arg(subcode, reason):
    """env:Sender/ter:InvalidArgVal/<subcode> for a bad argument value."""
    return sender(("ter:InvalidArgVal", subcode), reason)


class Envelope:
    """A parsed request: SOAP version namespace, Header (or None) and Body's first child."""

    def __init__(self, soap_ns, header, operation):
        self.soap_ns = soap_ns
        self.header = header
        self.operation = operation

    @property
    def name(self):
        """The qualified name ``{ns}Local`` of the operation element."""
        return self.operation.tag


def _parser():
    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                           load_dtd=False, dtd_validation=False, remove_comments=True,
                           remove_pis=True, collect_ids=False)


def parse(data):
    """Parse a request body into an :class:`Envelope` or raise :class:`SoapFault`."""
    if len(data) > MAX_BODY:
        raise sender("ter:WellFormed", "the request is larger than %d bytes" % MAX_BODY,
                     http_status=413)
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        # Refused before parsing: no DTD, so no entity can ever be declared or expanded.
        raise sender("ter:WellFormed", "document type declarations are not allowed")
    # Some clients send a newline before the declaration, which XML forbids; forgive it.
    data = data.lstrip(b" \t\r\n")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as e:
        raise sender("ter:WellFormed", "the request is not well-formed XML: %s" % e) from None
    except ValueError as e:
        raise sender("ter:WellFormed", "the request is not valid XML: %s" % e) from None
    if root.getroottree().docinfo.doctype:
        raise sender("ter:WellFormed", "document type declarations are not allowed")
    if not isinstance(root.tag, str) or etree.QName(root).localname != "Envelope":
        raise sender("ter:WellFormed", "the document is not a SOAP Envelope")
    soap_ns = etree.QName(root).namespace
    if soap_ns not in (SOAP12, SOAP11):
        raise SoapFault("VersionMismatch", (), "the Envelope namespace must be %s" % SOAP12)
    header = body = None
    for child in root:
        if not isinstance(child.tag, str):
            continue
        if child.tag == "{%s}Header" % soap_ns and header is None and body is None:
            header = child
        elif child.tag == "{%s}Body" % soap_ns and body is None:
            body = child
        else:
            raise sender("ter:WellFormed", "unexpected element %s in the Envelope" % child.tag)
    if body is None:
        raise sender("ter:WellFormed", "the Envelope has no Body")
    operation = next((c for c in body if isinstance(c.tag, str)), None)
    if operation is None:
        raise sender("ter:WellFormed", "the Body is empty")
    return Envelope(soap_ns, header, operation)


FAULT_ACTION = "http://www.w3.org/2005/08/addressing/soap/fault"


def addressing_reply(header, fault=False):
    """WS-Addressing headers answering a request's: ``RelatesTo`` its MessageID, ``Action``.

    Empty when the request had no MessageID (most ONVIF clients send none).
    The reply's Action is the request's plus "Response", WSDL's default naming.
    """
    if header is None:
        return []
    wsa = "{%s}" % NSMAP["wsa"]
    message_id = (header.findtext(wsa + "MessageID") or "").strip()
    if not message_id:
        return []
    action = (header.findtext(wsa + "Action") or "").strip()
    out = []
    if fault:
        out.append(E("wsa:Action", FAULT_ACTION))
    elif action:
        out.append(E("wsa:Action", action + "Response"))
    out.append(E("wsa:RelatesTo", message_id))
    return out


def action_from_headers(content_type, soapaction):
    """The SOAP action a client named in ``Content-Type; action=`` or ``SOAPAction``, or None."""
    if soapaction:
        return soapaction.strip().strip('"') or None
    for part in (content_type or "").split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "action":
            return value.strip().strip('"') or None
    return None


# -- building ---------------------------------------------------------------

def E(tag, *children, **attrs):
    """Build an element ``E("tt:Name", child_or_text..., attr=value)``.

    Children may be elements, strings/numbers/bools (text) or None (skipped),
    or lists of those. Attribute names may be prefixed (``E(..., **{"xml:lang": "en"})``).
    """
    el = etree.Element(qn(tag))
    _fill(el, children)
    for key, value in attrs.items():
        if value is None:
            continue
        if ":" in key:
            prefix, _, local = key.partition(":")
            key = "{http://www.w3.org/XML/1998/namespace}" + local if prefix == "xml" \
                else qn(key)
        el.set(key, text(value))
    return el


def _fill(el, children):
    for child in children:
        if child is None:
            continue
        if isinstance(child, (list, tuple)):
            _fill(el, child)
        elif isinstance(child, etree._Element):
            el.append(child)
        else:
            el.text = (el.text or "") + text(child)


def text(value):
    """XML text for a Python value (xs:boolean for bools, no exponent floats)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(round(value, 6))
    return str(value)


def envelope(soap_ns, body_children, header_children=()):
    """Serialise an Envelope of ``soap_ns`` around ``body_children`` (UTF-8, declaration first)."""
    nsmap = dict(NSMAP)
    nsmap["env"] = soap_ns
    env = etree.Element("{%s}Envelope" % soap_ns, nsmap=nsmap)
    if header_children:
        header = etree.SubElement(env, "{%s}Header" % soap_ns)
        _fill(header, header_children)
    body = etree.SubElement(env, "{%s}Body" % soap_ns)
    _fill(body, body_children)
    # Gather every declaration on the Envelope (keeping prefixes used only in text).
    etree.cleanup_namespaces(env, top_nsmap=nsmap, keep_ns_prefixes=list(nsmap))
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def fault_envelope(fault, soap_ns=SOAP12, header_children=()):
    """The serialised fault Envelope for ``fault`` in SOAP 1.2 or 1.1 form."""
    if soap_ns == SOAP11:
        code = {"Sender": "Client", "Receiver": "Server"}.get(fault.code, fault.code)
        f = etree.Element("{%s}Fault" % SOAP11)
        etree.SubElement(f, "faultcode").text = "env:" + code
        etree.SubElement(f, "faultstring").text = fault.reason
        if fault.subcodes:
            detail = etree.SubElement(f, "detail")
            for sub in fault.subcodes:
                detail.append(E("ter:Subcode", sub))
        return envelope(SOAP11, [f], header_children)
    env = "{%s}" % SOAP12
    f = etree.Element(env + "Fault")
    code = etree.SubElement(f, env + "Code")
    etree.SubElement(code, env + "Value").text = "env:" + fault.code
    parent = code
    for sub in fault.subcodes:
        parent = etree.SubElement(parent, env + "Subcode")
        etree.SubElement(parent, env + "Value").text = sub
    reason = etree.SubElement(f, env + "Reason")
    t = etree.SubElement(reason, env + "Text")
    t.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    t.text = fault.reason
    return envelope(SOAP12, [f], header_children)


def content_type(soap_ns):
    """The response Content-Type for a SOAP version."""
    if soap_ns == SOAP11:
        return b"text/xml; charset=utf-8"
    return b"application/soap+xml; charset=utf-8"


# -- reading request elements ------------------------------------------------

def child(el, name):
    """The first child ``name`` (a prefixed name, e.g. "tt:Brightness"), or None.

    Matching is by namespace and local name, whatever prefix the client used;
    a name without a prefix matches any namespace (clients differ on tds vs tt).
    """
    if el is None:
        return None
    if ":" in name:
        return el.find(qn(name))
    for c in el:
        if isinstance(c.tag, str) and etree.QName(c).localname == name:
            return c
    return None


def children(el, name):
    """Every child ``name`` (prefixed or any-namespace local name)."""
    if el is None:
        return []
    if ":" in name:
        return el.findall(qn(name))
    return [c for c in el if isinstance(c.tag, str) and etree.QName(c).localname == name]


def value(el, path, default=None):
    """Text at a ``/``-separated path of local names under ``el`` (stripped), or ``default``."""
    for step in path.split("/"):
        el = child(el, step)
        if el is None:
            return default
    return (el.text or "").strip()


def number(el, path, default=None, kind=float):
    """A finite number at ``path`` (see :func:`value`); ter:InvalidArgVal when it is not one.

    xs:float spells infinity and not-a-number INF and NaN; no camera argument means
    either, and ``int()`` of one raises (OverflowError, not ValueError).
    """
    raw = value(el, path)
    if raw is None or raw == "":
        return default
    try:
        number = float(raw)
        if not math.isfinite(number):
            raise ValueError(raw)
        return kind(raw) if kind is not int else int(number)
    except ValueError:
        raise sender(("ter:InvalidArgVal",), "%s is not a number: %r" % (path, raw[:40])) \
            from None


def boolean(el, path, default=None):
    """An xs:boolean at ``path``."""
    raw = value(el, path)
    if raw is None or raw == "":
        return default
    if raw in ("true", "1"):
        return True
    if raw in ("false", "0"):
        return False
    raise sender(("ter:InvalidArgVal",), "%s is not a boolean: %r" % (path, raw[:40]))
