"""ONVIF multicast over the dispatcher, on a Clock: the profiles' Multicast settings,
GetStreamUri with RTP-Multicast (Media) and RtspMulticast (Media2), Start/Stop
MulticastStreaming, and the faults when multicast is off. Every answer is validated
against the official schemas."""

import pytest
from twisted.internet.task import Clock

from rotordream.auth.service import AuthService
from rotordream.config import from_dict
from rotordream.context import Context
from rotordream.onvif.resource import make_onvif_resource
from rotordream.state import CameraState
from tests.onvif.schemas import MEDIA2_WSDL, wsdl_schema, zeep_schema
from tests.onvif.test_soap_units import NOW, PASSWORD, run, sec
from tests.rtsp.test_multicast import ON, rig, sent_to
from tests.support.soapkit import NS, envelope, fault_codes, validate

TR2 = "http://www.onvif.org/ver20/media/wsdl"
NS2 = dict(NS, tr2=TR2)


@pytest.fixture(scope="module")
def schemas():
    """Media (onvif-zeep's WSDL) and Media2 (the ver20 WSDL) response schemas."""
    return {"media": zeep_schema(("media",)), "media2": wsdl_schema(MEDIA2_WSDL),
            "device": zeep_schema(("devicemgmt",))}


def device_says_multicast(d, schemas):
    """RTPMulticast in the device service's GetCapabilities (what Profile S clients read)."""
    status, doc = ask(d, schemas, "device", "<tds:GetCapabilities><tds:Category>Media"
                      "</tds:Category></tds:GetCapabilities>")
    assert status == 200
    return doc.findtext(".//tt:StreamingCapabilities/tt:RTPMulticast", namespaces=NS)


def make(tmp_path, monkeypatch, settings):
    monkeypatch.delenv("ROTORDREAM_ADMIN_PASSWORD", raising=False)
    r = rig(tmp_path / "rtsp", settings)
    clock = Clock()
    clock.advance(NOW)
    cfg = from_dict({"auth": {"initial_admin_password": PASSWORD, "login_failures": 1000,
                              "secret_file": str(tmp_path) + ".key"},
                     "server": {"state_dir": str(tmp_path)}, "rtsp": dict(settings)})
    ctx = Context(config=cfg, reactor=clock, state=CameraState(None),
                  auth=AuthService(cfg, str(tmp_path), clock), rtsp=r.server)
    ctx.auth.users.add("viewer1", "viewer-password", "viewer")
    return make_onvif_resource(ctx).dispatcher, r


@pytest.fixture
def on(tmp_path, monkeypatch, schemas):
    (tmp_path / "rtsp").mkdir()
    return make(tmp_path, monkeypatch, ON)


@pytest.fixture
def off(tmp_path, monkeypatch):
    (tmp_path / "rtsp").mkdir()
    return make(tmp_path, monkeypatch, {})


def ask(dispatcher, schemas, service, body, header=None):
    status, headers, doc = run(dispatcher, service, envelope(
        body,
        sec() if header is None else header))
    from lxml import etree
    validate(schemas[service], etree.tostring(doc, xml_declaration=True, encoding="UTF-8"))
    return status, doc


def tr2(body):
    """A Media2 body with its namespace declared on the operation element."""
    name = body[1:].split(">")[0].split()[0]
    return body.replace("<" + name, '<%s xmlns:tr2="%s"' % (name, TR2), 1)


def uri_request(stream, protocol, token="stream1"):
    return ("<trt:GetStreamUri><trt:StreamSetup><tt:Stream>%s</tt:Stream><tt:Transport>"
            "<tt:Protocol>%s</tt:Protocol></tt:Transport></trt:StreamSetup>"
            "<trt:ProfileToken>%s</trt:ProfileToken></trt:GetStreamUri>"
            % (stream, protocol, token))


def test_profiles_show_each_streams_group(on, schemas):
    d, _ = on
    status, doc = ask(d, schemas, "media", "<trt:GetProfiles/>")
    assert status == 200
    groups = [(m.findtext("tt:Address/tt:IPv4Address", namespaces=NS),
               m.findtext("tt:Port", namespaces=NS), m.findtext("tt:TTL", namespaces=NS),
               m.findtext("tt:AutoStart", namespaces=NS))
              for m in doc.iterfind(".//tt:VideoEncoderConfiguration/tt:Multicast",
                                    namespaces=NS)]
    assert groups == [("239.255.42.1", "40000", "3", "false"),
                      ("239.255.42.2", "40002", "3", "false")]
    status, doc = ask(d, schemas, "media", "<trt:GetServiceCapabilities/>")
    assert doc.find(".//trt:StreamingCapabilities", namespaces=NS).get("RTPMulticast") == "true"
    assert device_says_multicast(d, schemas) == "true"
    status, doc = ask(d, schemas, "media2", tr2(
        "<tr2:GetProfiles><tr2:Type>VideoEncoder</tr2:Type></tr2:GetProfiles>"))
    assert status == 200
    assert [a.text for a in doc.iterfind(".//tt:Multicast/tt:Address/tt:IPv4Address",
                                         namespaces=NS)] == ["239.255.42.1", "239.255.42.2"]


def test_stream_uri_for_multicast(on, schemas):
    d, _ = on
    for protocol in ("UDP", "RTSP"):
        status, doc = ask(d, schemas, "media", uri_request("RTP-Multicast", protocol, "stream2"))
        assert status == 200
        assert doc.findtext(".//tt:Uri", namespaces=NS).endswith("/stream2")
    status, doc = ask(d, schemas, "media", uri_request("RTP-Multicast", "HTTP"))
    assert fault_codes(doc) == ("env:Sender", ["ter:InvalidArgVal", "ter:InvalidStreamSetup"])
    status, doc = ask(d, schemas, "media2", tr2(
        "<tr2:GetStreamUri><tr2:Protocol>RtspMulticast</tr2:Protocol>"
        "<tr2:ProfileToken>stream1</tr2:ProfileToken></tr2:GetStreamUri>"))
    assert status == 200
    assert doc.findtext(".//tr2:Uri", namespaces=NS2).endswith("/stream1")


def test_start_and_stop_multicast_streaming(on, schemas):
    d, r = on
    fanout = r.server.core.fanouts["stream1"]
    (port,) = r.reactor.ports
    start = ("<trt:StartMulticastStreaming><trt:ProfileToken>stream1</trt:ProfileToken>"
             "</trt:StartMulticastStreaming>")
    stop = start.replace("Start", "Stop")
    # Operators only.
    status, doc = ask(d, schemas, "media", start, sec("viewer1", "viewer-password"))
    assert fault_codes(doc)[1] == ["ter:NotAuthorized"] and fanout.targets == []
    status, doc = ask(d, schemas, "media", start)
    assert status == 200 and doc.find(".//trt:StartMulticastStreamingResponse",
                                      namespaces=NS) is not None
    assert [t.transport_name for t in fanout.targets] == ["multicast"]
    assert sent_to(port, ("239.255.42.1", 40000))
    status, doc = ask(d, schemas, "media", stop)
    assert status == 200 and fanout.targets == []
    # Media2 has the same pair.
    status, _ = ask(d, schemas, "media2", tr2(
        "<tr2:StartMulticastStreaming><tr2:ProfileToken>stream1</tr2:ProfileToken>"
        "</tr2:StartMulticastStreaming>"))
    assert status == 200 and len(fanout.targets) == 1
    status, _ = ask(d, schemas, "media2", tr2(
        "<tr2:StopMulticastStreaming><tr2:ProfileToken>stream1</tr2:ProfileToken>"
        "</tr2:StopMulticastStreaming>"))
    assert status == 200 and fanout.targets == []
    status, doc = ask(d, schemas, "media", start.replace("stream1", "nope"))
    assert fault_codes(doc) == ("env:Sender", ["ter:InvalidArgVal", "ter:NoProfile"])


def test_faults_when_multicast_is_off(off, schemas):
    d, r = off
    status, doc = ask(d, schemas, "media", uri_request("RTP-Multicast", "UDP"))
    assert status == 400
    assert fault_codes(doc) == ("env:Sender", ["ter:InvalidArgVal", "ter:InvalidStreamSetup"])
    status, doc = ask(d, schemas, "media", "<trt:StartMulticastStreaming><trt:ProfileToken>"
                      "stream1</trt:ProfileToken></trt:StartMulticastStreaming>")
    assert fault_codes(doc) == ("env:Receiver", ["ter:Action", "ter:IncompleteConfiguration"])
    status, doc = ask(d, schemas, "media2", tr2(
        "<tr2:GetStreamUri><tr2:Protocol>RtspMulticast</tr2:Protocol>"
        "<tr2:ProfileToken>stream1</tr2:ProfileToken></tr2:GetStreamUri>"))
    assert fault_codes(doc) == ("env:Sender", ["ter:InvalidArgVal", "ter:InvalidStreamSetup"])
    status, doc = ask(d, schemas, "media", "<trt:GetProfiles/>")
    assert {m.text for m in doc.iterfind(".//tt:Multicast/tt:Address/tt:IPv4Address",
                                         namespaces=NS)} == {"0.0.0.0"}
    status, doc = ask(d, schemas, "media", "<trt:GetServiceCapabilities/>")
    assert doc.find(".//trt:StreamingCapabilities", namespaces=NS).get("RTPMulticast") == "false"
    assert device_says_multicast(d, schemas) == "false"
