"""Capture the SOAP requests the onvif-zeep client really sends, as fixtures.

Run once from the repository root (``python -m tests.support.capture_onvif``):
it starts a test daemon (simulated motors), puts a TCP proxy in front of its
HTTP port and drives onvif-zeep's ``ONVIFCamera`` through it as admin, with
its WS-Security UsernameToken (PasswordDigest). The service addresses the
daemon answers name the proxy (they follow the Host header), so every call,
pull-point ones included, crosses it. Each request body, byte for byte as it
went on the wire, goes to ``tests/fixtures/onvif/zeep-<Operation>.xml`` (the
last one of each operation: ``ONVIFCamera`` itself sends a GetCapabilities and
a CreatePullPointSubscription with no arguments as it starts).
"""

import os
import sys
import tempfile

from lxml import etree

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(HERE, "fixtures", "onvif")
# The admin password of the capturing daemon: the fixtures' PasswordDigests are made
# with it, so a dispatcher knowing it accepts them as they are (at their Created time).
PASSWORD = "peer-capture-admin"
PULLPOINT = "http://www.onvif.org/ver10/events/wsdl/PullPointSubscription"


def http_requests(stream):
    """[(request line, {lowercased header: value}, body)] of the HTTP/1.1 requests in
    ``stream`` (what one client wrote on one connection)."""
    out = []
    while stream:
        head, sep, rest = stream.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("an incomplete request head: %r" % head[:80])
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", ""):
            raise ValueError("chunked request bodies are not expected from zeep")
        length = int(headers.get("content-length", "0"))
        if len(rest) < length:
            raise ValueError("an incomplete request body")
        out.append((lines[0], headers, rest[:length]))
        stream = rest[length:]
    return out


def operation(body):
    """The local name of the Body's first element."""
    root = etree.fromstring(body)
    env = etree.QName(root).namespace
    return etree.QName(root.find("{%s}Body" % env)[0]).localname


def drive(host, port):
    """Make the typical calls of an NVR with onvif-zeep against ``host:port``."""
    import onvif
    cam = onvif.ONVIFCamera(host, port, "admin", PASSWORD, no_cache=True)
    dev = cam.devicemgmt
    dev.GetDeviceInformation()
    dev.GetCapabilities({"Category": "All"})
    media = cam.create_media_service()
    media.GetProfiles()
    media.GetStreamUri({"StreamSetup": {"Stream": "RTP-Unicast",
                                        "Transport": {"Protocol": "RTSP"}},
                        "ProfileToken": "stream1"})
    media.GetSnapshotUri({"ProfileToken": "stream1"})
    ptz = cam.create_ptz_service()
    ptz.AbsoluteMove({"ProfileToken": "stream1",
                      "Position": {"PanTilt": {"x": 0.25, "y": -0.5}}})
    ptz.ContinuousMove({"ProfileToken": "stream1",
                        "Velocity": {"PanTilt": {"x": 0.5, "y": -0.25}}, "Timeout": "PT2S"})
    ptz.Stop({"ProfileToken": "stream1", "PanTilt": True})
    events = cam.create_events_service()
    sub = events.CreatePullPointSubscription({"InitialTerminationTime": "PT120S"})
    cam.xaddrs[PULLPOINT] = sub.SubscriptionReference.Address._value_1
    pullpoint = cam.create_pullpoint_service()
    pullpoint.PullMessages({"Timeout": "PT1S", "MessageLimit": 10})


def main():
    from tests.conftest import Daemon, free_port
    from tests.support.capture_peers import Proxy
    os.makedirs(FIXTURES, exist_ok=True)
    daemon = Daemon(tempfile.mkdtemp(prefix="capture-"), free_port(), free_port(),
                    admin_password=PASSWORD)
    daemon.start()
    proxy = Proxy(daemon.http_port)
    try:
        drive("127.0.0.1", proxy.port)
    finally:
        proxy.listener.close()
        daemon.stop()
    bodies = {}
    for stream in proxy.connections:
        for line, headers, body in http_requests(bytes(stream)):
            assert line.startswith("POST /onvif/"), line
            bodies[operation(body)] = body
    for name, body in sorted(bodies.items()):
        with open(os.path.join(FIXTURES, "zeep-%s.xml" % name), "wb") as f:
            f.write(body)
        print(name, len(body), "bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
