"""Raw SOAP requests for the ONVIF tests: envelopes and WS-Security UsernameTokens."""

import base64
import hashlib
import os
import time

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
NS = {"env": SOAP12, "s11": SOAP11, "ter": "http://www.onvif.org/ver10/error",
      "tds": "http://www.onvif.org/ver10/device/wsdl", "tt": "http://www.onvif.org/ver10/schema",
      "trt": "http://www.onvif.org/ver10/media/wsdl",
      "tptz": "http://www.onvif.org/ver20/ptz/wsdl",
      "timg": "http://www.onvif.org/ver20/imaging/wsdl"}


def created_now(offset=0.0, now=None):
    """An xs:dateTime like zeep sends (``+00:00``)."""
    t = time.gmtime((time.time() if now is None else now) + offset)
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", t)


def security(user, password, created=None, nonce=None, digest=True, mangle=None):
    """A wsse:Security header block with a UsernameToken."""
    nonce = os.urandom(16) if nonce is None else nonce
    created = created or created_now()
    if digest:
        value = base64.b64encode(hashlib.sha1(nonce + created.encode() + password.encode())
                                 .digest()).decode()
        ptype = PROFILE + "#PasswordDigest"
    else:
        value, ptype = password, PROFILE + "#PasswordText"
    if mangle:
        value = mangle(value)
    return ('<wsse:Security xmlns:wsse="%s" xmlns:wsu="%s" env:mustUnderstand="true">'
            '<wsse:UsernameToken><wsse:Username>%s</wsse:Username>'
            '<wsse:Password Type="%s">%s</wsse:Password>'
            '<wsse:Nonce EncodingType="%s#Base64Binary">%s</wsse:Nonce>'
            '<wsu:Created>%s</wsu:Created></wsse:UsernameToken></wsse:Security>'
            % (WSSE, WSU, user, ptype, value,
               "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0",
               base64.b64encode(nonce).decode(), created))


def envelope(body, header="", soap_ns=SOAP12):
    """A request Envelope (bytes) around ``body`` XML text."""
    return ('<?xml version="1.0" encoding="UTF-8"?><env:Envelope xmlns:env="%s" '
            'xmlns:tds="%s" xmlns:tt="%s" xmlns:trt="%s" xmlns:tptz="%s" xmlns:timg="%s">'
            '<env:Header>%s</env:Header><env:Body>%s</env:Body></env:Envelope>'
            % (soap_ns, NS["tds"], NS["tt"], NS["trt"], NS["tptz"], NS["timg"],
               header, body)).encode()


def fault_codes(doc):
    """(Code value, [subcode values]) of a SOAP 1.2 fault document (lxml root)."""
    code = doc.findtext(".//env:Fault/env:Code/env:Value", namespaces=NS)
    subs = [v.text for v in doc.iterfind(".//env:Subcode/env:Value", namespaces=NS)]
    return code, subs


class ResponseRecorder:
    """Every SOAP response body a zeep client received (bytes), for schema validation."""

    def __init__(self):
        self.responses = []

    def transport(self):
        """A zeep Transport that keeps each response body here."""
        from zeep.transports import Transport
        responses = self.responses

        class RecordingTransport(Transport):
            def post_xml(self, address, envelope, headers):
                response = super().post_xml(address, envelope, headers)
                responses.append(response.content)
                return response
        return RecordingTransport(timeout=30, operation_timeout=30)


def validate(schema, raw):
    """Assert ``raw`` is a clean SOAP 1.2 Envelope whose Body child (and every tt:Message in
    it) is valid against ``schema``; return the child's tag or "fault"."""
    from lxml import etree
    assert raw.startswith(b"<?xml"), raw[:40]
    child = etree.fromstring(raw).find("{%s}Body" % SOAP12)[0]
    if child.tag == "{%s}Fault" % SOAP12:
        return "fault"
    # Serialised alone, each element carries every declaration it needs.
    for el in [child] + child.findall(".//tt:Message", namespaces=NS):
        standalone = etree.fromstring(etree.tostring(el))
        if not schema.validate(standalone):
            raise AssertionError("%s does not validate: %s" % (el.tag, schema.error_log))
    return child.tag
