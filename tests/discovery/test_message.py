"""WS-Discovery messages: parse and build round trips, real clients' Probes, matching, hostile XML."""

import pytest
from lxml import etree

from rotordream.discovery import message as m
from rotordream.scopes import device_scopes
from tests.conftest import require_module

ADDRESS = "urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427"
ENDPOINT = m.Endpoint(ADDRESS, m.DEVICE_TYPES,
                      device_scopes("Rotor Dream", "Lab 1", "AA:BB:CC:00:11:22"),
                      ("http://10.0.0.5:8080/onvif/device_service",), 7)

# A Probe as ONVIF Device Manager and most NVRs send it: other prefixes, the type
# namespace declared on the Types element, SOAP 1.2, no AppSequence.
ODM_PROBE = b"""<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"
            xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing">
  <s:Header>
    <a:Action s:mustUnderstand="1">http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action>
    <a:MessageID>uuid:5c6a2d39-6f1e-4c4c-9c55-0d7c3f0e1a01</a:MessageID>
    <a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>
    <a:To s:mustUnderstand="1">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>
  </s:Header>
  <s:Body>
    <Probe xmlns="http://schemas.xmlsoap.org/ws/2005/04/discovery">
      <d:Types xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"
               xmlns:dp0="http://www.onvif.org/ver10/network/wsdl">dp0:NetworkVideoTransmitter</d:Types>
    </Probe>
  </s:Body>
</s:Envelope>"""

# SOAP 1.1 and a default namespace for the type: old clients do this.
SOAP11_PROBE = b"""<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><Header>
<MessageID xmlns="http://schemas.xmlsoap.org/ws/2004/08/addressing">urn:uuid:0000-11</MessageID>
</Header><Body><Probe xmlns="http://schemas.xmlsoap.org/ws/2005/04/discovery">
<Types xmlns:x="http://www.onvif.org/ver10/device/wsdl">x:Device</Types>
<Scopes MatchBy="http://schemas.xmlsoap.org/ws/2005/04/discovery/rfc3986">
 onvif://www.onvif.org/Profile   ONVIF://WWW.ONVIF.ORG/name/Rotor%20Dream/ </Scopes>
</Probe></Body></Envelope>"""


def round_trip(msg):
    return m.parse(m.serialize(msg))


@pytest.mark.parametrize("msg", [
    m.hello(ENDPOINT, (3, 1), message_id="urn:uuid:a"),
    m.probe(types=m.DEVICE_TYPES, scopes=["onvif://www.onvif.org/type"],
            match_by=m.MATCH_STRCMP0, message_id="urn:uuid:b"),
    m.probe(message_id="urn:uuid:c"),
    m.probe_matches(m.probe(message_id="urn:uuid:d"), ENDPOINT, (3, 4), message_id="urn:uuid:e"),
    m.resolve(ADDRESS, message_id="urn:uuid:f"),
    m.resolve_matches(m.resolve(ADDRESS, message_id="urn:uuid:g"), ENDPOINT, (3, 5),
                      message_id="urn:uuid:h"),
], ids=lambda msg: msg.kind)
def test_round_trip(msg):
    back = round_trip(msg)
    expected_to = m.ANONYMOUS if msg.kind in (m.PROBE_MATCHES, m.RESOLVE_MATCHES) \
        else m.DISCOVERY_URN
    assert back == type(msg)(**{**msg.__dict__, "to": expected_to})


def test_bye_carries_the_endpoint_reference_only():
    back = round_trip(m.bye(ENDPOINT, (3, 9), message_id="urn:uuid:z"))
    assert back.kind == m.BYE and back.app_sequence == (3, 9)
    assert back.endpoints == (m.Endpoint(ADDRESS, metadata_version=0),)


def test_output_declares_every_prefix_and_starts_with_the_declaration():
    data = m.serialize(m.hello(ENDPOINT, (1, 1)))
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    root = etree.fromstring(data)
    assert root.nsmap == {"s": m.SOAP12, "a": m.WSA, "d": m.WSD, "dn": m.DN, "tds": m.TDS}
    header = root.find("{%s}Header" % m.SOAP12)
    assert header.findtext("{%s}Action" % m.WSA) == m.WSD + "/Hello"
    assert header.findtext("{%s}To" % m.WSA) == m.DISCOVERY_URN
    body = root.find("{%s}Body/{%s}Hello" % (m.SOAP12, m.WSD))
    assert body.findtext("{%s}Types" % m.WSD) == "dn:NetworkVideoTransmitter tds:Device"


def test_probe_match_relates_to_the_probe_and_keeps_its_soap_version():
    request = m.parse(SOAP11_PROBE)
    assert request.soap == m.SOAP11
    reply = round_trip(m.probe_matches(request, ENDPOINT, (1, 2)))
    assert reply.relates_to == "urn:uuid:0000-11"
    assert reply.soap == m.SOAP11 and reply.to == m.ANONYMOUS


def test_odm_probe():
    probe = m.parse(ODM_PROBE)
    assert probe.kind == m.PROBE
    assert probe.message_id == "uuid:5c6a2d39-6f1e-4c4c-9c55-0d7c3f0e1a01"
    assert probe.reply_to == m.ANONYMOUS
    assert probe.types == ((m.DN, "NetworkVideoTransmitter"),)
    assert probe.scopes is None
    assert m.probe_matches_endpoint(probe, ENDPOINT)


def test_soap11_probe_with_scopes_and_odd_spacing():
    probe = m.parse(SOAP11_PROBE)
    assert probe.types == ((m.TDS, "Device"),)
    assert probe.scopes == ("onvif://www.onvif.org/Profile", "ONVIF://WWW.ONVIF.ORG/name/Rotor%20Dream/")
    assert probe.match_by == m.MATCH_RFC3986
    assert m.probe_matches_endpoint(probe, ENDPOINT)


def test_wsdiscovery_package_probe_and_our_replies_in_its_parser():
    require_module("wsdiscovery")
    from wsdiscovery import QName, Scope
    from wsdiscovery.actions import constructProbe
    from wsdiscovery.message import createSOAPMessage, parseSOAPMessage
    env = constructProbe([QName(m.DN, "NetworkVideoTransmitter")],
                         [Scope("onvif://www.onvif.org/name/Rotor Dream")])
    probe = m.parse(createSOAPMessage(env).encode())
    assert probe.types == ((m.DN, "NetworkVideoTransmitter"),)
    assert m.probe_matches_endpoint(probe, ENDPOINT)
    reply = parseSOAPMessage(m.serialize(m.probe_matches(probe, ENDPOINT, (1, 1))), "10.0.0.9")
    assert reply.getRelatesTo() == probe.message_id
    (match,) = reply.getProbeResolveMatches()
    assert match.getEPR() == ADDRESS
    assert match.getXAddrs() == ["http://10.0.0.5:8080/onvif/device_service"]
    assert [t.getFullname() for t in match.getTypes()] == [
        m.DN + ":NetworkVideoTransmitter", m.TDS + ":Device"]
    assert "onvif://www.onvif.org/name/Rotor Dream" in [s.getValue() for s in match.getScopes()]


@pytest.mark.parametrize("wanted, match_by, expected", [
    ("onvif://www.onvif.org/type", None, True),
    ("onvif://www.onvif.org/type/ptz", None, True),
    ("onvif://www.onvif.org/type/", None, True),
    ("onvif://www.onvif.org", None, True),
    ("ONVIF://WWW.Onvif.Org/Profile/Streaming", m.MATCH_RFC3986, True),
    ("onvif://www.onvif.org/profile/Streaming", m.MATCH_RFC3986, False),   # path is case-sensitive
    ("onvif://www.onvif.org/Profile/Stream", m.MATCH_RFC2396, False),      # segments, not strings
    ("onvif://www.onvif.org/ty", None, False),
    ("onvif://www.onvif.org/name/Rotor%20Dream", m.MATCH_RFC3986_2009, True),
    ("onvif://www.onvif.org/name/Rotor%20Dream?x=1#f", None, True),         # query/fragment ignored
    ("onvif://www.onvif.org/type/../name", None, False),                   # dot segments never match
    ("onvif://other.org/type", None, False),
    ("http://www.onvif.org/type", None, False),
    ("onvif://www.onvif.org/type/ptz", m.MATCH_STRCMP0, True),
    ("onvif://www.onvif.org/type", m.MATCH_STRCMP0, False),
    ("onvif://www.onvif.org/type", m.WSD + "/ldap", False),
    ("onvif://www.onvif.org/type", "urn:unknown-rule", False),
    ("not a uri", None, False),
])
def test_scope_matching(wanted, match_by, expected):
    assert m.scopes_match([wanted], ENDPOINT.scopes, match_by) is expected


def test_every_scope_must_match_and_none_matches_all():
    assert m.scopes_match(None, ENDPOINT.scopes)
    assert m.scopes_match([], ENDPOINT.scopes)
    assert not m.scopes_match(["onvif://www.onvif.org/type", "onvif://www.onvif.org/nope"],
                              ENDPOINT.scopes)


@pytest.mark.parametrize("types, expected", [
    (None, True), ((), True),
    (((m.DN, "NetworkVideoTransmitter"),), True),
    (((m.TDS, "Device"), (m.DN, "NetworkVideoTransmitter")), True),
    (((m.DN, "NetworkVideoTransmitter"), ("http://example.com/printer", "Printer")), False),
    ((("urn:undeclared-prefix:x", "Device"),), False),
])
def test_type_matching(types, expected):
    assert m.types_match(types, ENDPOINT.types) is expected


def test_undeclared_and_default_namespace_types():
    probe = SOAP11_PROBE.replace(b"x:Device", b"y:Device")
    assert not m.probe_matches_endpoint(m.parse(probe), ENDPOINT)
    default_ns = ODM_PROBE.replace(b'xmlns:dp0="', b'xmlns="').replace(b"dp0:", b"")
    assert m.parse(default_ns).types == ((m.DN, "NetworkVideoTransmitter"),)


def test_device_scopes():
    assert device_scopes("Cam/1 ü", "", "AA:BB:CC:DD:EE:FF") == (
        "onvif://www.onvif.org/type/video_encoder", "onvif://www.onvif.org/type/ptz",
        "onvif://www.onvif.org/Profile/Streaming", "onvif://www.onvif.org/hardware/RotorDream",
        "onvif://www.onvif.org/name/Cam%2F1%20%C3%BC",
        "onvif://www.onvif.org/MAC/aa:bb:cc:dd:ee:ff")
    assert m.device_service_url("10.1.2.3", 80) == "http://10.1.2.3/onvif/device_service"
    assert m.device_service_url("fe80::1", 8080) == "http://[fe80::1]:8080/onvif/device_service"


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE s:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"
 xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"><s:Header><a:MessageID>&xxe;</a:MessageID>
</s:Header><s:Body><d:Probe xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"/></s:Body>
</s:Envelope>"""

LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
          + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                     for i in range(1, 10))
          + b']><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>'
            b'<d:Probe xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery">&lol9;</d:Probe>'
            b"</s:Body></s:Envelope>")


@pytest.mark.parametrize("data, why", [
    (XXE, "DOCTYPE"),
    (XXE.decode().replace('<?xml version="1.0"?>', "").encode("utf-16"), "DOCTYPE"),
    (LAUGHS, "DOCTYPE"),
    (b"", "malformed"),
    (b"\x00\xff garbage", "malformed"),
    (b"<a/>", "not a SOAP envelope"),
    (b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"/>', "no SOAP Body"),
    (ODM_PROBE.replace(b"2005/04/discovery\">", b"2009/01/discovery\">"), "not a WS-Discovery"),
    (ODM_PROBE.replace(b"<a:MessageID>uuid:5c6a2d39-6f1e-4c4c-9c55-0d7c3f0e1a01</a:MessageID>",
                       b""), "no wsa:MessageID"),
    (m.serialize(m.resolve(ADDRESS)).replace(ADDRESS.encode(), b""), "without an endpoint"),
    (m.serialize(m.hello(ENDPOINT, (1, 1))).replace(b'MessageNumber="1"', b'MessageNumber="x"'),
     "bad AppSequence"),
    (b"<" * (m.MAX_MESSAGE + 1), "too large"),
])
def test_bad_datagrams_raise_one_error(data, why):
    with pytest.raises(m.DiscoveryError, match=why):
        m.parse(data)


def test_every_truncation_of_a_probe_is_refused_cleanly():
    data = m.serialize(m.probe(types=m.DEVICE_TYPES))
    for n in range(len(data)):
        with pytest.raises(m.DiscoveryError):
            m.parse(data[:n])
