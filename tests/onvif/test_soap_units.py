"""Pure units: SOAP parsing and faults, WS-Security checks, the dispatcher on a Clock."""

import base64
import os

import pytest
from lxml import etree
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock

from rotordream.auth.service import AuthService
from rotordream.config import from_dict
from rotordream.context import Context
from rotordream.onvif import soap, wsse
from rotordream.onvif.dispatch import Dispatcher
from rotordream.onvif.resource import make_onvif_resource, request_host
from rotordream.state import CameraState
from tests.support.auth import result
from tests.support.soapkit import NS, SOAP11, created_now, envelope, fault_codes, security

NOW = 1_800_000_000
PASSWORD = "first-password"

XXE = b"""<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body>
<tds:GetHostname xmlns:tds="http://www.onvif.org/ver10/device/wsdl">&xxe;</tds:GetHostname>
</env:Body></env:Envelope>"""

LAUGHS = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">""" + b"".join(
    b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
    for i in range(1, 10)) + b"""]>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body>
<tds:GetHostname xmlns:tds="http://www.onvif.org/ver10/device/wsdl">&lol9;</tds:GetHostname>
</env:Body></env:Envelope>"""


# -- soap ----------------------------------------------------------------------

def test_parse_any_prefix_and_default_namespace():
    doc = (b'<Envelope xmlns="http://www.w3.org/2003/05/soap-envelope"><Header/><Body>'
           b'<GetHostname xmlns="http://www.onvif.org/ver10/device/wsdl"/></Body></Envelope>')
    env = soap.parse(doc)
    assert env.name == "{http://www.onvif.org/ver10/device/wsdl}GetHostname"
    assert env.soap_ns == soap.SOAP12
    env = soap.parse(envelope("<tds:GetHostname/>", soap_ns=SOAP11))
    assert env.soap_ns == SOAP11


@pytest.mark.parametrize("payload", [XXE, LAUGHS], ids=["xxe", "billion-laughs"])
def test_doctype_payloads_refused(payload):
    with pytest.raises(soap.SoapFault) as e:
        soap.parse(payload)
    assert e.value.code == "Sender" and e.value.subcodes == ("ter:WellFormed",)
    assert e.value.http_status == 400


def test_doctype_in_utf16_refused_too():
    # The byte check cannot see UTF-16; the parsed docinfo still does.
    with pytest.raises(soap.SoapFault) as e:
        soap.parse(XXE.decode().replace('encoding="UTF-8"', "").encode("utf-16"))
    assert e.value.subcodes == ("ter:WellFormed",)


@pytest.mark.parametrize("payload,code,sub", [
    (b"<env:Envelope", "Sender", "ter:WellFormed"),
    (b"not xml at all", "Sender", "ter:WellFormed"),
    (b"", "Sender", "ter:WellFormed"),
    (b'<Envelope xmlns="urn:wrong"><Body><x/></Body></Envelope>', "VersionMismatch", None),
    (b'<x:Other xmlns:x="http://www.w3.org/2003/05/soap-envelope"/>', "Sender", "ter:WellFormed"),
    (b'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body/></e:Envelope>',
     "Sender", "ter:WellFormed"),
])
def test_bad_envelopes(payload, code, sub):
    with pytest.raises(soap.SoapFault) as e:
        soap.parse(payload)
    assert e.value.code == code
    assert (e.value.subcodes[0] if e.value.subcodes else None) == sub


def test_deep_nesting_is_refused_and_leading_whitespace_forgiven():
    deep = envelope("<tds:GetHostname>" + "<a>" * 5000 + "</a>" * 5000 + "</tds:GetHostname>")
    with pytest.raises(soap.SoapFault) as e:
        soap.parse(deep)
    assert e.value.subcodes == ("ter:WellFormed",)
    assert soap.parse(b"\r\n  " + envelope("<tds:GetHostname/>")).operation is not None


def test_oversized_request():
    with pytest.raises(soap.SoapFault) as e:
        soap.parse(b" " * (soap.MAX_BODY + 1))
    assert e.value.http_status == 413


def test_fault_envelope_declares_every_prefix():
    out = soap.fault_envelope(soap.not_authorized())
    assert out.startswith(b"<?xml")
    doc = etree.fromstring(out)
    assert fault_codes(doc) == ("env:Sender", ["ter:NotAuthorized"])
    # QName text values resolve against declarations on the Envelope itself.
    assert doc.nsmap["ter"] == NS["ter"] and doc.nsmap["env"] == NS["env"]
    out11 = etree.fromstring(soap.fault_envelope(soap.action_not_supported("x"), SOAP11))
    assert out11.findtext(".//faultcode") == "env:Server"
    assert out11.nsmap["env"] == SOAP11


def test_action_header_parsing():
    assert soap.action_from_headers('application/soap+xml; charset=utf-8; action="urn:a"',
                                    None) == "urn:a"
    assert soap.action_from_headers("text/xml", '"urn:b"') == "urn:b"
    assert soap.action_from_headers("text/xml", None) is None


# -- wsse ----------------------------------------------------------------------

def _token(**kw):
    header = etree.fromstring(envelope("<tds:GetHostname/>", security("admin", PASSWORD, **kw)))
    return wsse.find_token(header.find("{%s}Header" % NS["env"]))


def _verifier(clock, **kw):
    return wsse.Verifier(lambda name: PASSWORD if name == "admin" else None, clock, **kw)


def test_digest_right_wrong_stale_and_replay():
    clock = Clock()
    clock.advance(NOW)
    v = _verifier(clock, window=300)
    nonce = os.urandom(16)
    created = created_now(now=NOW)
    assert v.verify(_token(nonce=nonce, created=created)) == "admin"
    with pytest.raises(wsse.WsseError, match="already used"):
        v.verify(_token(nonce=nonce, created=created))
    with pytest.raises(wsse.WsseError, match="wrong"):
        v.verify(_token(mangle=lambda p: base64.b64encode(b"x" * 20).decode(),
                        created=created))
    with pytest.raises(wsse.WsseError, match="away from"):
        v.verify(_token(created=created_now(-301, now=NOW)))
    assert v.verify(_token(created=created_now(299, now=NOW))) == "admin"
    # Long after the window, the nonce is forgotten, but its Created is stale by then.
    clock.advance(10_000)
    with pytest.raises(wsse.WsseError, match="away from"):
        v.verify(_token(nonce=nonce, created=created))


def test_digest_needs_nonce_and_created_and_text_is_off_by_default():
    clock = Clock()
    clock.advance(NOW)
    v = _verifier(clock)
    token = _token(created=created_now(now=NOW))
    token.remove(token.find("{%s}Nonce" % wsse.WSSE))
    with pytest.raises(wsse.WsseError, match="Nonce"):
        v.verify(token)
    with pytest.raises(wsse.WsseError, match="PasswordText"):
        v.verify(_token(digest=False))
    assert _verifier(clock, allow_text=True).verify(_token(digest=False)) == "admin"


def test_created_formats():
    assert wsse.parse_created("2027-01-15T08:00:00Z") == 1800000000
    assert wsse.parse_created("2027-01-15T09:00:00.500+01:00") == 1800000000.5
    assert wsse.parse_created("2027-01-15T08:00:00") == 1800000000
    for bad in ("yesterday", "2027-13-45T99:00:00Z", ""):
        with pytest.raises(wsse.WsseError):
            wsse.parse_created(bad)


def test_nonce_cache_is_bounded():
    clock = Clock()
    cache = wsse.NonceCache(clock, ttl=10, max_entries=3)
    assert all(cache.check_and_add(n) for n in "abc")
    assert not cache.check_and_add("d")  # full of live nonces: refuse, never forget one
    clock.advance(11)
    assert cache.check_and_add("d") and cache.check_and_add("a")


# -- the dispatcher over a real state and auth, on a Clock --------------------------

@pytest.fixture
def onvif(tmp_path, monkeypatch):
    monkeypatch.delenv("ROTORDREAM_ADMIN_PASSWORD", raising=False)
    clock = Clock()
    clock.advance(NOW)
    cfg = from_dict({"auth": {"initial_admin_password": PASSWORD, "login_failures": 1000,
                              "secret_file": str(tmp_path) + ".key"},
                     "server": {"state_dir": str(tmp_path)}})
    ctx = Context(config=cfg, reactor=clock, state=CameraState(None),
                  auth=AuthService(cfg, str(tmp_path), clock))
    root = make_onvif_resource(ctx)
    ctx.auth.users.add("viewer1", "viewer-password", "viewer")
    return root.dispatcher, ctx, clock


def run(dispatcher, service, body, **http):
    http = dict({"host": "192.0.2.10", "port": 8080, "client": "192.0.2.99"}, **http)
    results = []
    dispatcher.handle(service, body, http).addCallback(results.append)
    status, headers, out = results[0]
    assert out.startswith(b"<?xml")
    return status, headers, etree.fromstring(out)


def sec(user="admin", password=PASSWORD, **kw):
    return security(user, password, created=created_now(now=NOW), **kw)


def test_pre_auth_needs_no_credentials_and_ignores_bad_ones(onvif):
    d, ctx, _ = onvif
    for header in ("", sec(password="wrong-password")):
        status, _, doc = run(d, "device", envelope(
            '<tds:GetCapabilities><tds:Category>All</tds:Category></tds:GetCapabilities>',
            header))
        assert status == 200
        xaddr = doc.findtext(".//tt:Media/tt:XAddr", namespaces=NS)
        assert xaddr == "http://192.0.2.10:8080/onvif/media_service"


def test_protected_operation_without_credentials_is_401_with_challenges(onvif):
    d, _, _ = onvif
    status, headers, doc = run(d, "device", envelope("<tds:GetDeviceInformation/>"))
    assert status == 401
    assert fault_codes(doc) == ("env:Sender", ["ter:NotAuthorized"])
    assert any(v.startswith(b"Digest ") for v in headers[b"www-authenticate"])
    # A page's script (X-Requested-With): the same 401, no challenge, so no password dialog.
    for authorization in (None, "Basic " + base64.b64encode(b"admin:wrong").decode()):
        status, headers, doc = run(d, "device", envelope("<tds:GetDeviceInformation/>"),
                                   quiet=True, authorization=authorization)
        assert status == 401 and b"www-authenticate" not in headers
        assert fault_codes(doc) == ("env:Sender", ["ter:NotAuthorized"])


def test_wsse_flow_wrong_password_stale_replay(onvif):
    d, _, clock = onvif
    ok = sec()
    status, _, doc = run(d, "device", envelope("<tds:GetDeviceInformation/>", ok))
    assert status == 200 and doc.findtext(".//tds:Manufacturer", namespaces=NS) == "RotorDream"
    for header in (ok,  # replayed nonce
                   sec(password="wrong-password"),
                   security("admin", PASSWORD, created=created_now(-400, now=NOW)),
                   sec(user="nobody")):
        status, _, doc = run(d, "device", envelope("<tds:GetDeviceInformation/>", header))
        assert status == 400
        assert fault_codes(doc) == ("env:Sender", ["ter:NotAuthorized"])


def test_unknown_operation_and_unknown_service(onvif):
    d, _, _ = onvif
    status, _, doc = run(d, "device", envelope("<tds:FormatTheDisk/>", sec()))
    assert status == 500
    assert fault_codes(doc) == ("env:Receiver", ["ter:ActionNotSupported"])
    status, _, doc = run(d, "events", envelope("<tds:GetHostname/>"))
    assert fault_codes(doc)[1] == ["ter:ActionNotSupported"]


def test_bad_bodies_get_faults(onvif):
    d, _, _ = onvif
    for payload in (XXE, LAUGHS, b"<broken",
                    b'<Envelope xmlns="urn:x"><Body><a/></Body></Envelope>'):
        status, _, doc = run(d, "device", payload)
        assert status == 400
        assert doc.find(".//env:Fault", namespaces=NS) is not None
        assert b"root:" not in etree.tostring(doc)


def test_soap11_request_gets_soap11_answer(onvif):
    d, _, _ = onvif
    status, headers, doc = run(d, "device", envelope("<tds:GetHostname/>", soap_ns=SOAP11))
    assert status == 200 and doc.tag == "{%s}Envelope" % SOAP11
    assert headers[b"content-type"].startswith(b"text/xml")


def test_viewer_may_read_but_not_change(onvif):
    d, ctx, _ = onvif
    v = sec("viewer1", "viewer-password")
    status, _, _ = run(d, "imaging", envelope(
        "<timg:GetImagingSettings><timg:VideoSourceToken>video_source</timg:VideoSourceToken>"
        "</timg:GetImagingSettings>", v))
    assert status == 200
    status, _, doc = run(d, "imaging", envelope(
        "<timg:SetImagingSettings><timg:VideoSourceToken>video_source</timg:VideoSourceToken>"
        "<timg:ImagingSettings><tt:Brightness>80</tt:Brightness></timg:ImagingSettings>"
        "</timg:SetImagingSettings>", sec("viewer1", "viewer-password")))
    assert status == 400 and fault_codes(doc)[1] == ["ter:NotAuthorized"]
    assert ctx.state.get("brightness") == 50
    status, _, _ = run(d, "imaging", envelope(
        "<timg:SetImagingSettings><timg:VideoSourceToken>video_source</timg:VideoSourceToken>"
        "<timg:ImagingSettings><tt:Brightness>80</tt:Brightness><tt:Sharpness>10</tt:Sharpness>"
        "</timg:ImagingSettings></timg:SetImagingSettings>", sec()))
    assert status == 200
    assert (ctx.state.get("brightness"), ctx.state.get("sharpness")) == (80, 10)


def test_set_video_encoder_through_state_and_bad_value_fault(onvif):
    d, ctx, _ = onvif
    conf = ('<trt:SetVideoEncoderConfiguration><trt:Configuration token="encoder2">'
            '<tt:Name>x</tt:Name><tt:UseCount>1</tt:UseCount><tt:Encoding>H264</tt:Encoding>'
            '<tt:Resolution><tt:Width>%d</tt:Width><tt:Height>%d</tt:Height></tt:Resolution>'
            '<tt:Quality>5</tt:Quality><tt:RateControl><tt:FrameRateLimit>10</tt:FrameRateLimit>'
            '<tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>700</tt:BitrateLimit>'
            '</tt:RateControl><tt:H264><tt:GovLength>20</tt:GovLength>'
            '<tt:H264Profile>Baseline</tt:H264Profile></tt:H264></trt:Configuration>'
            '<trt:ForcePersistence>true</trt:ForcePersistence></trt:SetVideoEncoderConfiguration>')
    status, _, _ = run(d, "media", envelope(conf % (320, 180), sec()))
    assert status == 200
    s = ctx.state
    assert (s.get("stream2-resolution"), s.get("stream2-fps"), s.get("stream2-bitrate"),
            s.get("stream2-gop")) == ("320x180", 10, 700, 20)
    status, _, doc = run(d, "media", envelope(conf % (333, 111), sec()))
    assert status == 400
    assert fault_codes(doc) == ("env:Sender", ["ter:InvalidArgVal", "ter:ConfigModify"])
    assert s.get("stream2-resolution") == "320x180"


def test_user_operations_map_roles(onvif):
    d, ctx, _ = onvif
    status, _, _ = run(d, "device", envelope(
        "<tds:CreateUsers><tds:User><tt:Username>op1</tt:Username><tt:Password>op-password-1"
        "</tt:Password><tt:UserLevel>Operator</tt:UserLevel></tds:User></tds:CreateUsers>", sec()))
    assert status == 200 and ctx.auth.users.role("op1") == "operator"
    # The new user can use PasswordDigest right away.
    status, _, doc = run(d, "device", envelope("<tds:GetUsers/>", sec()))
    levels = {u.findtext("tt:Username", namespaces=NS): u.findtext("tt:UserLevel", namespaces=NS)
              for u in doc.iterfind(".//tds:User", namespaces=NS)}
    assert levels == {"admin": "Administrator", "op1": "Operator", "viewer1": "User"}
    status, _, _ = run(d, "device", envelope("<tds:GetDeviceInformation/>",
                                             sec("op1", "op-password-1")))
    assert status == 200
    status, _, doc = run(d, "device", envelope(
        "<tds:DeleteUsers><tds:Username>admin</tds:Username></tds:DeleteUsers>", sec()))
    assert fault_codes(doc)[1] == ["ter:InvalidArgVal", "ter:FixedUser"]
    status, _, doc = run(d, "device", envelope(
        "<tds:CreateUsers><tds:User><tt:Username>op1</tt:Username><tt:Password>op-password-1"
        "</tt:Password><tt:UserLevel>User</tt:UserLevel></tds:User></tds:CreateUsers>", sec()))
    assert fault_codes(doc)[1] == ["ter:OperationProhibited", "ter:UsernameClash"]


def test_password_copy_is_encrypted_and_follows_changes(onvif, tmp_path):
    d, ctx, _ = onvif
    users = ctx.auth.users
    text = (tmp_path / "users.json").read_text()
    assert "viewer-password" not in text and PASSWORD not in text
    # The key is kept outside the state directory ([auth] secret_file).
    assert oct(os.stat(str(tmp_path) + ".key").st_mode & 0o777) == "0o600"
    assert not (tmp_path / "onvif-key").exists()
    users.set_password("viewer1", "another-password")
    assert users.secret("viewer1") == "another-password"
    status, _, _ = run(d, "device", envelope("<tds:GetDeviceInformation/>",
                                             sec("viewer1", "another-password")))
    assert status == 200


def test_scopes_round_trip(onvif):
    d, ctx, _ = onvif
    status, _, _ = run(d, "device", envelope(
        "<tds:SetScopes><tds:Scopes>onvif://www.onvif.org/name/Front%20Door</tds:Scopes>"
        "<tds:Scopes>onvif://www.onvif.org/location/porch</tds:Scopes>"
        "<tds:Scopes>onvif://www.onvif.org/extra/thing</tds:Scopes></tds:SetScopes>", sec()))
    assert status == 200
    assert ctx.state.get("device-name") == "Front Door"
    status, _, doc = run(d, "device", envelope("<tds:GetScopes/>", sec()))
    items = [e.text for e in doc.iterfind(".//tt:ScopeItem", namespaces=NS)]
    assert "onvif://www.onvif.org/Profile/Streaming" in items
    assert "onvif://www.onvif.org/location/porch" in items
    assert "onvif://www.onvif.org/extra/thing" in items
    status, _, doc = run(d, "device", envelope(
        "<tds:SetScopes><tds:Scopes>onvif://www.onvif.org/Profile/Streaming</tds:Scopes>"
        "</tds:SetScopes>", sec()))
    assert fault_codes(doc)[1] == ["ter:OperationProhibited", "ter:ScopeOverwrite"]


def test_ptz_without_motor_is_a_clear_fault(onvif):
    d, _, _ = onvif
    status, _, doc = run(d, "ptz", envelope(
        "<tptz:GetStatus><tptz:ProfileToken>stream1</tptz:ProfileToken></tptz:GetStatus>", sec()))
    assert status == 500
    assert fault_codes(doc)[1] == ["ter:ActionNotSupported", "ter:PTZNotSupported"]


class _Req:
    def __init__(self, host_header, local=("0.0.0.0", 8080), secure=False):
        self._h = host_header
        self._local = local
        self._secure = secure

    def getHeader(self, name):
        return self._h

    def getHost(self):
        class A:
            host, port = self._local
        return A()

    def isSecure(self):
        return self._secure


def test_request_host_never_unspecified():
    assert request_host(_Req(b"cam.local:8080")) == ("cam.local", 8080)
    assert request_host(_Req(b"[fe80::1]:81")) == ("fe80::1", 81)
    assert request_host(_Req(b"10.0.0.5")) == ("10.0.0.5", 80)
    assert request_host(_Req(None, ("192.0.2.1", 8080))) == ("192.0.2.1", 8080)
    assert request_host(_Req(b"0.0.0.0:8080", ("192.0.2.1", 8080))) == ("192.0.2.1", 8080)
    assert request_host(_Req(b"0.0.0.0:8080", ("0.0.0.0", 8080)))[0] == "127.0.0.1"


def test_dispatcher_registers_extra_tables(onvif):
    d, ctx, _ = onvif
    from rotordream.onvif.dispatch import PRE_AUTH, Table
    from rotordream.onvif.soap import E
    table = Table("tev")
    table.op("GetServiceCapabilities", PRE_AUTH)(
        lambda call: E("tev:GetServiceCapabilitiesResponse"))
    d.register("events", table)
    status, _, doc = run(d, "events", envelope(
        '<tev:GetServiceCapabilities xmlns:tev="http://www.onvif.org/ver10/events/wsdl"/>'))
    assert status == 200
    assert isinstance(d, Dispatcher)


def test_ws_addressing_is_tolerated_and_answered_with_relates_to(onvif):
    d, _, _ = onvif
    wsa = ('<wsa:Action xmlns:wsa="http://www.w3.org/2005/08/addressing" '
           'env:mustUnderstand="1">http://www.onvif.org/ver10/device/wsdl/GetDeviceInformation'
           '</wsa:Action><wsa:MessageID xmlns:wsa="http://www.w3.org/2005/08/addressing">'
           'urn:uuid:1</wsa:MessageID><wsa:To xmlns:wsa="http://www.w3.org/2005/08/addressing" '
           'env:mustUnderstand="1">http://192.0.2.10/onvif/device_service</wsa:To>')
    status, _, doc = run(d, "device", envelope("<tds:GetDeviceInformation/>", wsa + sec()))
    assert status == 200
    # The reply relates to the request's MessageID and names its own Action.
    wsa_ns = {"wsa": "http://www.w3.org/2005/08/addressing", **NS}
    assert doc.findtext("env:Header/wsa:RelatesTo", namespaces=wsa_ns) == "urn:uuid:1"
    assert doc.findtext("env:Header/wsa:Action", namespaces=wsa_ns) == \
        "http://www.onvif.org/ver10/device/wsdl/GetDeviceInformationResponse"
    # So does a fault, with the WS-Addressing fault action.
    status, _, doc = run(d, "device", envelope("<tds:NoSuchThing/>", wsa + sec()))
    assert status >= 400 and doc.find(".//env:Fault", namespaces=NS) is not None
    assert doc.findtext("env:Header/wsa:RelatesTo", namespaces=wsa_ns) == "urn:uuid:1"
    assert doc.findtext("env:Header/wsa:Action", namespaces=wsa_ns) == \
        "http://www.w3.org/2005/08/addressing/soap/fault"
    # Without a MessageID there is nothing to relate to: no Header at all.
    status, _, doc = run(d, "device", envelope("<tds:GetDeviceInformation/>", sec()))
    assert status == 200 and doc.find("env:Header", namespaces=NS) is None


def test_capabilities_of_a_missing_category_is_no_such_service(onvif):
    d, _, _ = onvif
    status, _, doc = run(d, "device", envelope(
        "<tds:GetCapabilities><tds:Category>Analytics</tds:Category></tds:GetCapabilities>"))
    assert status == 500
    assert fault_codes(doc) == ("env:Receiver", ["ter:ActionNotSupported", "ter:NoSuchService"])


def test_wsse_failures_count_towards_the_shared_lockout(tmp_path, monkeypatch):
    monkeypatch.delenv("ROTORDREAM_ADMIN_PASSWORD", raising=False)
    clock = Clock()
    clock.advance(NOW)
    cfg = from_dict({"auth": {"initial_admin_password": PASSWORD, "login_failures": 3,
                              "secret_file": str(tmp_path) + ".key"},
                     "server": {"state_dir": str(tmp_path)}})
    ctx = Context(config=cfg, reactor=clock, state=CameraState(None),
                  auth=AuthService(cfg, str(tmp_path), clock))
    d = make_onvif_resource(ctx).dispatcher
    for _ in range(3):
        assert run(d, "device", envelope("<tds:GetDeviceInformation/>",
                                         sec(password="wrong-password")))[0] == 400
    status, headers, doc = run(d, "device", envelope("<tds:GetDeviceInformation/>", sec()))
    assert status == 400 and b"retry-after" in headers
    assert "too many" in doc.findtext(".//env:Text", namespaces=NS)
    # The REST/RTSP password check is locked for this user there too: one lockout for
    # every API; from another address it is not.
    with pytest.raises(Exception, match="too many"):
        result(ctx.auth.check_password("admin", PASSWORD, "192.0.2.99"))
    assert result(ctx.auth.check_password("admin", PASSWORD, "192.0.2.7")).name == "admin"
    clock.advance(cfg.auth.login_window + 1)
    fresh = security("admin", PASSWORD, created=created_now(now=clock.seconds()))
    assert run(d, "device", envelope("<tds:GetDeviceInformation/>", fresh))[0] == 200


def test_endpoint_reference_and_scopes_agree_with_discovery(onvif, tmp_path):
    from rotordream.discovery import identity
    from rotordream.scopes import device_scopes
    d, ctx, _ = onvif
    status, _, doc = run(d, "device", envelope("<tds:GetEndpointReference/>"))
    guid = doc.findtext(".//tds:GUID", namespaces=NS)
    assert guid.startswith("urn:uuid:")
    assert identity.load(str(tmp_path)).address == guid  # the same file discovery reads

    seen = []  # what WS-Discovery, observing the state's scopes, would announce
    ctx.state.scopes.subscribe(seen.append)
    run(d, "device", envelope("<tds:AddScopes><tds:Scopes>onvif://www.onvif.org/x/y"
                              "</tds:Scopes></tds:AddScopes>", sec()))
    assert seen[-1] == ("onvif://www.onvif.org/x/y",)
    status, _, doc = run(d, "device", envelope("<tds:GetScopes/>", sec()))
    items = [e.text for e in doc.iterfind(".//tt:ScopeItem", namespaces=NS)]
    from rotordream.onvif import hostinfo
    assert items == list(device_scopes(ctx.state.get("device-name"),
                                               ctx.state.get("device-location"),
                                               hostinfo.primary_mac())) + \
        ["onvif://www.onvif.org/x/y"]
    run(d, "device", envelope("<tds:RemoveScopes><tds:Scopes>onvif://www.onvif.org/x/y"
                              "</tds:Scopes></tds:RemoveScopes>", sec()))
    assert seen[-1] == ()


def test_long_operations_are_cancelled_and_see_their_path(onvif):
    from twisted.internet import defer
    from rotordream.onvif.dispatch import PRE_AUTH, Table
    d, ctx, _ = onvif
    cancelled, paths = [], []
    table = Table("tev")

    def pull(call):
        paths.append(call.path)
        return defer.Deferred(lambda _: cancelled.append(True))
    table.op("PullMessages", PRE_AUTH)(pull)
    d.register("events", table)
    results = []
    pending = d.handle("events", envelope(
        '<tev:PullMessages xmlns:tev="http://www.onvif.org/ver10/events/wsdl"/>'),
        {"host": "192.0.2.10", "port": 80, "path": ["sub", "42"]})
    pending.addCallback(results.append)
    assert paths == [("sub", "42")] and not results
    pending.cancel()  # what the resource does when the client hangs up
    assert cancelled == [True]
    assert results[0][0] == 500


def test_records_from_before_the_password_copy_get_it_at_the_next_login(tmp_path, monkeypatch):
    import json
    from rotordream.auth.users import UserStore
    monkeypatch.delenv("ROTORDREAM_ADMIN_PASSWORD", raising=False)
    key = str(tmp_path) + ".key"
    store = UserStore(str(tmp_path), PASSWORD, key_file=key)
    data = json.loads((tmp_path / "users.json").read_text())
    del data["users"]["admin"]["secret"]  # as written by the store before ONVIF
    (tmp_path / "users.json").write_text(json.dumps(data))
    store = UserStore(str(tmp_path), "", key_file=key)
    assert store.secret("admin") is None
    assert store.verify("admin", PASSWORD)
    assert UserStore(str(tmp_path), "", key_file=key).secret("admin") == PASSWORD  # persisted
    # A replaced key makes the copy useless, never a crash: set the password again.
    with open(key, "wb") as f:
        f.write(__import__("cryptography.fernet").fernet.Fernet.generate_key())
    store = UserStore(str(tmp_path), "", key_file=key)
    assert store.secret("admin") is None
    assert store.verify("admin", PASSWORD) and store.secret("admin") == PASSWORD
    store.set_password("admin", "a-new-password")
    assert store.secret("admin") == "a-new-password"


# -- replay after a restart, password copies off, checks off the event loop -----------

def _dispatcher(tmp_path, clock, pool=None, **onvif):
    from rotordream.testing import ImmediateReactor
    cfg = from_dict({"auth": {"initial_admin_password": PASSWORD,
                              "secret_file": str(tmp_path) + ".key"},
                     "server": {"state_dir": str(tmp_path)}, "onvif": onvif})
    reactor = ImmediateReactor(clock)
    ctx = Context(config=cfg, reactor=reactor, state=CameraState(None),
                  auth=AuthService(cfg, str(tmp_path), reactor, pool=pool))
    return make_onvif_resource(ctx).dispatcher, ctx


def test_a_token_created_before_the_start_is_refused_and_not_counted(tmp_path, monkeypatch):
    monkeypatch.delenv("ROTORDREAM_ADMIN_PASSWORD", raising=False)
    clock = Clock()
    clock.advance(NOW)
    first, _ = _dispatcher(tmp_path, clock)
    captured = sec()
    assert run(first, "device", envelope("<tds:GetDeviceInformation/>", captured))[0] == 200
    clock.advance(30)  # a restart: a new dispatcher on the same state dir, well inside 300 s
    again, ctx = _dispatcher(tmp_path, clock)
    for _ in range(6):
        status, _, doc = run(again, "device", envelope("<tds:GetDeviceInformation/>", captured))
        assert status == 400 and "before the device started" in doc.findtext(
            ".//env:Text", namespaces=NS)
    # A fresh token works: the refusals did not lock the user out.
    fresh = security("admin", PASSWORD, created=created_now(now=clock.seconds()))
    assert run(again, "device", envelope("<tds:GetDeviceInformation/>", fresh))[0] == 200


def test_password_digest_off_refuses_clearly_but_text_and_http_digest_work(tmp_path,
                                                                          monkeypatch):
    from tests.support.auth import digest_value
    from rotordream.auth import digest
    monkeypatch.delenv("ROTORDREAM_ADMIN_PASSWORD", raising=False)
    clock = Clock()
    clock.advance(NOW)
    d, ctx = _dispatcher(tmp_path, clock, password_digest=False, password_text=True)
    status, _, doc = run(d, "device", envelope("<tds:GetDeviceInformation/>", sec()))
    assert status == 400 and fault_codes(doc) == ("env:Sender", ["ter:NotAuthorized"])
    assert "password_digest = false" in doc.findtext(".//env:Text", namespaces=NS)
    text = security("admin", PASSWORD, created=created_now(now=NOW), digest=False)
    assert run(d, "device", envelope("<tds:GetDeviceInformation/>", text))[0] == 200
    nonce = digest.parse_params(ctx.auth.challenges()[0][len("Digest "):])["nonce"]
    value = digest_value("POST", "/onvif/device_service", "admin", PASSWORD, nonce)
    assert run(d, "device", envelope("<tds:GetDeviceInformation/>"), method="POST",
               uri="/onvif/device_service", authorization=value)[0] == 200
    assert "secret" not in (tmp_path / "users.json").read_text().replace('"secret": null', "")


def test_http_digest_is_bound_to_the_service_it_was_made_for(tmp_path, monkeypatch):
    from tests.support.auth import digest_value
    from rotordream.auth import digest
    monkeypatch.delenv("ROTORDREAM_ADMIN_PASSWORD", raising=False)
    clock = Clock()
    clock.advance(NOW)
    d, ctx = _dispatcher(tmp_path, clock)
    nonce = digest.parse_params(ctx.auth.challenges()[0][len("Digest "):])["nonce"]
    value = digest_value("POST", "/onvif/media_service", "admin", PASSWORD, nonce)
    status, headers, _ = run(d, "device", envelope("<tds:GetDeviceInformation/>"),
                             method="POST", uri="/onvif/device_service", authorization=value)
    assert status == 401 and b"www-authenticate" in headers


def test_password_text_waits_for_the_hashing_pool(tmp_path, monkeypatch):
    from rotordream.testing import QueuedThreadPool
    monkeypatch.delenv("ROTORDREAM_ADMIN_PASSWORD", raising=False)
    clock = Clock()
    clock.advance(NOW)
    pool = QueuedThreadPool()
    d, _ = _dispatcher(tmp_path, clock, pool=pool, password_text=True)
    text = security("admin", PASSWORD, created=created_now(now=NOW), digest=False)
    answers = []
    d.handle("device", envelope("<tds:GetDeviceInformation/>", text),
             {"host": "192.0.2.10", "port": 80, "client": "192.0.2.99"}).addCallback(
        answers.append)
    assert not answers and len(pool.queue) == 1  # nothing hashed on the event loop
    pool.run_next()
    assert answers[0][0] == 200


def test_a_token_from_the_last_run_fails_even_in_the_second_it_restarted(tmp_path, monkeypatch):
    # Created has whole seconds: a restart within one second is only caught by the nonces
    # the stopping run hands over.
    monkeypatch.delenv("ROTORDREAM_ADMIN_PASSWORD", raising=False)
    cfg = from_dict({"auth": {"initial_admin_password": PASSWORD,
                              "secret_file": str(tmp_path) + ".key"},
                     "server": {"state_dir": str(tmp_path)}})

    def start():
        reactor = MemoryReactorClock()
        reactor.advance(NOW + 0.2)
        ctx = Context(config=cfg, reactor=reactor, state=CameraState(None),
                      auth=AuthService(cfg, str(tmp_path), reactor))
        dispatcher = make_onvif_resource(ctx).dispatcher
        dispatcher.load_nonces()
        return dispatcher, reactor

    token = sec()
    body = envelope("<tds:GetDeviceInformation/>", token)
    first, reactor = start()
    assert run(first, "device", body)[0] == 200
    first.save_nonces()
    again, _ = start()
    status, _, doc = run(again, "device", body)
    assert status == 400 and b"already used" in etree.tostring(doc)
    assert run(again, "device", envelope("<tds:GetDeviceInformation/>", sec()))[0] == 200
