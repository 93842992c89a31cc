"""WS-Discovery for real, inside a network namespace of our own that reaches nothing outside.

Re-executes netns_discovery.py under ``unshare -n`` (root, or ``unshare -rn``
otherwise): the daemon runs there with ``[discovery] enabled = true``; the
``wsdiscovery`` package must find it with XAddrs on a namespace address and
the ONVIF scopes; Hello on start and Bye on stop must be heard.
"""

import os

import pytest

from rotordream.discovery import message as m
from tests.conftest import require_module, run_in_netns

HELPER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support",
                      "netns_discovery.py")
NAMESPACE_ADDRESSES = ("10.77.0.1", "10.77.0.2")
HTTP_PORT = 18080


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    require_module("wsdiscovery")
    return run_in_netns(HELPER, tmp_path_factory.mktemp("netns"), 180, lambda result: True)


def _xaddr_ok(xaddr):
    return xaddr in ["http://%s:%d/onvif/device_service" % (a, HTTP_PORT)
                     for a in NAMESPACE_ADDRESSES]


def test_wsdiscovery_finds_the_device_with_its_xaddrs_and_scopes(run):
    log = run["daemon_log"]
    found = run["search_nvt"]
    assert len(found) == 1, log
    device = found[0]
    assert device["epr"] == run["identity"]["address"]
    assert len(device["xaddrs"]) == 1 and _xaddr_ok(device["xaddrs"][0]), device
    assert set(device["types"]) == {m.DN + ":NetworkVideoTransmitter", m.TDS + ":Device"}
    # wsdiscovery shows %20 as a space.
    for scope in ("onvif://www.onvif.org/type/video_encoder", "onvif://www.onvif.org/type/ptz",
                  "onvif://www.onvif.org/Profile/Streaming",
                  "onvif://www.onvif.org/hardware/RotorDream",
                  "onvif://www.onvif.org/name/Lab Cam", "onvif://www.onvif.org/location/Bench 3"):
        assert scope in device["scopes"]
    assert any(s.startswith("onvif://www.onvif.org/MAC/") for s in device["scopes"])
    assert run.get("xaddr_connects"), "the XAddr does not reach the HTTP server"


def test_scope_filtered_probes(run):
    assert [d["epr"] for d in run["search_device_and_name"]] == [run["identity"]["address"]]
    assert run["search_other_scope"] == []


def test_hello_on_start(run):
    assert run["hello_seen"], run["daemon_log"]
    hellos = run["hellos"]
    assert all(h["address"] == run["identity"]["address"] for h in hellos)
    # One Hello per veth end, each with its own address, each sent twice (same MessageID).
    by_id = {}
    for h in hellos:
        by_id.setdefault(h["message_id"], []).append(h)
    assert {tuple(h["xaddrs"]) for h in hellos} == {
        ("http://%s:%d/onvif/device_service" % (a, HTTP_PORT),) for a in NAMESPACE_ADDRESSES}
    assert all(len(copies) >= 2 for copies in by_id.values()), by_id
    assert "onvif://www.onvif.org/name/Lab%20Cam" in hellos[0]["scopes"]


def test_probe_answered_unicast_with_relates_to(run):
    replies = run["probe"]["replies"]
    assert replies, run["daemon_log"]
    for reply in replies:
        assert reply["kind"] == m.PROBE_MATCHES
        assert reply["relates_to"] == run["probe"]["message_id"]
        assert reply["to"] == m.ANONYMOUS
        assert reply["from"][1] == m.PORT and reply["from"][0] in NAMESPACE_ADDRESSES
        assert all(_xaddr_ok(x) for x in reply["xaddrs"])


def test_resolve_answered(run):
    replies = run["resolve"]["replies"]
    assert replies and all(r["kind"] == m.RESOLVE_MATCHES for r in replies)
    assert all(r["relates_to"] == run["resolve"]["message_id"] for r in replies)
    assert _xaddr_ok(replies[0]["xaddrs"][0])


def test_bye_on_stop(run):
    assert run["exit_status"] == 0, run["daemon_log"]
    byes = run["byes"]
    assert byes, run["daemon_log"]
    assert {b["address"] for b in byes} == {run["identity"]["address"]}
    assert len({b["message_id"] for b in byes}) == 2      # one per veth end
