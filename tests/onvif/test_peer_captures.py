"""SOAP requests as the onvif-zeep client really sends them: parsed by our SOAP and
WS-Security readers, and answered by the dispatcher byte for byte as captured.

The fixtures' PasswordDigests were made with the capturing daemon's admin password
(:data:`tests.support.capture_onvif.PASSWORD`), so a dispatcher whose admin has that
password, on a clock set to a fixture's Created time, accepts it unchanged.
"""

import glob
import os

import pytest
from lxml import etree

from rotordream.auth.service import AuthService
from rotordream.config import from_dict
from rotordream.context import Context
from rotordream.onvif import soap, wsse
from rotordream.onvif.broker import Broker
from rotordream.onvif.resource import make_onvif_resource
from rotordream.state import CameraState
from rotordream.testing import FakeMotor, ThreadClock
from tests.support.capture_onvif import FIXTURES, PASSWORD

WSA = "http://www.w3.org/2005/08/addressing"
N = dict(soap.NSMAP)

# operation -> (service it is posted to, namespace of its element)
OPERATIONS = {
    "GetDeviceInformation": ("device", N["tds"]),
    "GetCapabilities": ("device", N["tds"]),
    "GetProfiles": ("media", N["trt"]),
    "GetStreamUri": ("media", N["trt"]),
    "GetSnapshotUri": ("media", N["trt"]),
    "AbsoluteMove": ("ptz", N["tptz"]),
    "ContinuousMove": ("ptz", N["tptz"]),
    "Stop": ("ptz", N["tptz"]),
    "CreatePullPointSubscription": ("events", N["tev"]),
    "PullMessages": ("events", N["tev"]),
}
HTTP = {"host": "192.0.2.10", "port": 8080, "client": "192.0.2.99"}


def captured(op):
    with open(os.path.join(FIXTURES, "zeep-%s.xml" % op), "rb") as f:
        return f.read()


def token(op):
    """The fixture's UsernameToken as WS-Security reads it."""
    return wsse.read_token(wsse.find_token(soap.parse(captured(op)).header))


def created(op):
    return wsse.parse_created(token(op).created)


# -- what the parsers read --------------------------------------------------------------

def test_every_capture_is_known():
    names = {os.path.basename(p)[len("zeep-"):-len(".xml")]
             for p in glob.glob(os.path.join(FIXTURES, "zeep-*.xml"))}
    assert names == set(OPERATIONS)


@pytest.mark.parametrize("op", sorted(OPERATIONS))
def test_envelope_and_operation(op):
    data = captured(op)
    # zeep: a single-quoted declaration, SOAP 1.2, prefixes of its own (soap-env, ns0).
    assert data.startswith(b"<?xml version='1.0' encoding='utf-8'?>\n<soap-env:Envelope")
    env = soap.parse(data)
    assert env.soap_ns == soap.SOAP12
    assert env.name == "{%s}%s" % (OPERATIONS[op][1], op)
    assert env.operation.prefix == "ns0"


@pytest.mark.parametrize("op", sorted(OPERATIONS))
def test_username_token_is_a_password_digest(op):
    tok = token(op)
    assert tok.username == "admin" and not tok.text
    assert len(tok.nonce) == 16
    # zeep writes Created with +00:00 and no fraction.
    assert tok.created.endswith("+00:00") and "." not in tok.created
    assert wsse.password_digest(tok.nonce, tok.created, PASSWORD) == tok.password
    assert wsse.password_digest(tok.nonce, tok.created, PASSWORD + "x") != tok.password


def test_the_arguments_we_read():
    def request(op):
        return soap.parse(captured(op)).operation
    assert soap.value(request("GetCapabilities"), "Category") == "All"
    assert len(request("GetDeviceInformation")) == len(request("GetProfiles")) == 0
    uri = request("GetStreamUri")
    assert soap.value(uri, "ProfileToken") == "stream1"
    assert soap.value(uri, "StreamSetup/Stream") == "RTP-Unicast"
    assert soap.value(uri, "StreamSetup/Transport/Protocol") == "RTSP"
    assert soap.value(request("GetSnapshotUri"), "ProfileToken") == "stream1"
    # Positions and velocities travel as attributes of tt:PanTilt, not as text.
    pan_tilt = soap.child(soap.child(request("AbsoluteMove"), "Position"), "tt:PanTilt")
    assert (pan_tilt.get("x"), pan_tilt.get("y"), pan_tilt.get("space")) == ("0.25", "-0.5", None)
    move = request("ContinuousMove")
    velocity = soap.child(soap.child(move, "Velocity"), "tt:PanTilt")
    assert (velocity.get("x"), velocity.get("y")) == ("0.5", "-0.25")
    assert soap.value(move, "Timeout") == "PT2S"
    assert soap.boolean(request("Stop"), "PanTilt") is True
    assert soap.value(request("CreatePullPointSubscription"), "InitialTerminationTime") == \
        "PT120S"
    pull = request("PullMessages")
    assert soap.value(pull, "Timeout") == "PT1S"
    assert soap.number(pull, "MessageLimit", kind=int) == 10


def test_only_the_event_requests_carry_ws_addressing():
    for op in OPERATIONS:
        header = soap.parse(captured(op)).header
        has = header.find("{%s}MessageID" % WSA) is not None
        assert has == (OPERATIONS[op][0] == "events"), op
    header = soap.parse(captured("PullMessages")).header
    to = header.findtext("{%s}To" % WSA)
    assert "/onvif/events_service/subscription/" in to
    assert header.findtext("{%s}Action" % WSA) == \
        N["tev"] + "/PullPointSubscription/PullMessagesRequest"


# -- the round trip through the dispatcher ------------------------------------------------

@pytest.fixture
def make_dispatcher(tmp_path, monkeypatch):
    """make(now) -> (dispatcher, ctx, clock): a dispatcher started at ``now`` whose admin
    has the capture's password, with a motor that arrives at once."""
    monkeypatch.delenv("ROTORDREAM_ADMIN_PASSWORD", raising=False)
    made = []

    def make(now):
        state_dir = tmp_path / ("run%d" % len(made))
        state_dir.mkdir()
        clock = ThreadClock()
        clock.advance(now)
        cfg = from_dict({"auth": {"initial_admin_password": PASSWORD, "login_failures": 1000,
                                  "secret_file": str(state_dir) + ".key"},
                         "server": {"state_dir": str(state_dir)}})
        ctx = Context(config=cfg, reactor=clock, state=CameraState(None),
                      auth=AuthService(cfg, str(state_dir), clock), motor=FakeMotor(),
                      events=Broker(clock, cfg.onvif.max_subscriptions,
                                    max_per_user=cfg.onvif.max_subscriptions_per_user))
        made.append(ctx)
        return make_onvif_resource(ctx).dispatcher, ctx, clock
    return make


def send(dispatcher, op, path=()):
    """The results list of dispatching the fixture of ``op`` (empty while it waits)."""
    results = []
    dispatcher.handle(OPERATIONS[op][0], captured(op), dict(HTTP, path=list(path))) \
        .addCallback(results.append)
    return results


def answer(results):
    """(status, the parsed answer Envelope, its document)."""
    assert results, "no answer yet"
    status, headers, out = results[0]
    assert headers[b"content-type"].startswith(b"application/soap+xml")
    return status, soap.parse(out), etree.fromstring(out)


def response_name(op):
    return "{%s}%sResponse" % (OPERATIONS[op][1], op)


@pytest.mark.parametrize("op", sorted(set(OPERATIONS) - {"PullMessages"}))
def test_dispatch_answers_the_capture_as_it_is(op, make_dispatcher):
    d, ctx, _ = make_dispatcher(created(op))
    status, env, doc = answer(send(d, op))
    assert status == 200, etree.tostring(doc)
    assert env.soap_ns == soap.SOAP12 and env.name == response_name(op)
    # WS-Addressing requests get a reply related to their MessageID.
    message_id = soap.parse(captured(op)).header.findtext("{%s}MessageID" % WSA)
    related = env.header.findtext("{%s}RelatesTo" % WSA) if env.header is not None else None
    assert related == message_id


def test_dispatch_results(make_dispatcher):
    def result(op):
        d, ctx, _ = make_dispatcher(created(op))
        status, env, _ = answer(send(d, op))
        assert status == 200
        return env.operation, ctx
    out, _ = result("GetStreamUri")
    # The default RTSP port (554) goes unsaid; the host is the one the client addressed.
    assert soap.value(out, "MediaUri/Uri") == "rtsp://192.0.2.10/stream1"
    out, _ = result("GetSnapshotUri")
    assert soap.value(out, "MediaUri/Uri") == "http://192.0.2.10:8080/api/snapshot"
    out, _ = result("GetProfiles")
    assert [p.get("token") for p in soap.children(out, "Profiles")] == ["stream1", "stream2"]
    out, _ = result("GetCapabilities")
    assert soap.value(out, "Capabilities/PTZ/XAddr") == "http://192.0.2.10:8080/onvif/ptz_service"
    out, _ = result("GetDeviceInformation")
    assert soap.value(out, "Manufacturer") == "RotorDream"
    # Generic positions across the motor's -180..180 / -90..90 degrees.
    _, ctx = result("AbsoluteMove")
    assert ctx.motor.calls == [("absolute_move", 45.0, -45.0, None)]
    _, ctx = result("ContinuousMove")
    assert ctx.motor.calls == [("continuous_move", 0.5, -0.25, 2.0)]
    _, ctx = result("Stop")
    assert ctx.motor.calls == [("stop", True, True)]


def test_create_pull_point_then_pull_messages(make_dispatcher):
    d, _, clock = make_dispatcher(min(created("CreatePullPointSubscription"),
                                      created("PullMessages")))
    status, env, _ = answer(send(d, "CreatePullPointSubscription"))
    assert status == 200 and env.name == response_name("CreatePullPointSubscription")
    sub = env.operation
    address = soap.value(sub, "SubscriptionReference/Address")
    assert address.startswith("http://192.0.2.10:8080/onvif/events_service/subscription/")
    lifetime = (wsse.parse_created(soap.value(sub, "wsnt:TerminationTime")) -
                wsse.parse_created(soap.value(sub, "wsnt:CurrentTime")))
    assert lifetime == 120
    # The capture's wsa:To names the capturing daemon's subscription; the path names ours.
    results = send(d, "PullMessages", path=address.split("/")[-2:])
    if not results:
        clock.advance(1)   # nothing to deliver: the long poll ends at its Timeout, PT1S
    status, env, _ = answer(results)
    assert status == 200 and env.name == response_name("PullMessages")
    assert len(soap.children(env.operation, "wsnt:NotificationMessage")) <= 10


@pytest.mark.parametrize("op", ["GetDeviceInformation", "GetStreamUri", "AbsoluteMove"])
def test_the_token_is_refused_when_stale_and_when_replayed(op, make_dispatcher):
    # Long after its Created (a device clock more than created_window ahead): refused.
    d, ctx, _ = make_dispatcher(created(op) + 301)
    status, env, doc = answer(send(d, op))
    assert status == 400
    fault = env.operation
    assert fault.tag == "{%s}Fault" % soap.SOAP12
    assert soap.value(fault, "Code/Subcode/Value") == "ter:NotAuthorized"
    assert "away from the device clock" in soap.value(fault, "Reason/Text")
    assert ctx.motor.calls == []
    # At its time it passes once; its nonce then is spent.
    d, _, _ = make_dispatcher(created(op))
    assert answer(send(d, op))[0] == 200
    status, env, _ = answer(send(d, op))
    assert status == 400 and "Nonce was already used" in soap.value(env.operation,
                                                                    "Reason/Text")


def test_a_stale_token_does_not_matter_before_authentication(make_dispatcher):
    # GetCapabilities needs no credentials (ONVIF Core 5.9.4.3): a stale token is ignored.
    d, _, _ = make_dispatcher(created("GetCapabilities") + 3600)
    status, env, _ = answer(send(d, "GetCapabilities"))
    assert status == 200 and env.name == response_name("GetCapabilities")
