"""Run inside ``unshare -n``: the daemon with discovery on, found by the ``wsdiscovery`` package.

Started by tests/discovery/test_netns.py as ``unshare -n python THIS RESULT.json``.
It refuses to run unless the network namespace is a fresh one (only ``lo``),
then makes a veth pair (v0 10.77.0.1, v1 10.77.0.2, multicast routed via v0),
starts ``twistd rotordream`` with ``[discovery] enabled = true`` and records
what a raw group listener, the wsdiscovery client and a hand-made Probe and
Resolve see. The pytest side asserts on the JSON written to RESULT.json.
"""

import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from rotordream.discovery import message as m  # noqa: E402
from tests.conftest import Daemon, seed_state  # noqa: E402

ADDRESSES = {"v0": "10.77.0.1", "v1": "10.77.0.2"}
NAME, LOCATION = "Lab Cam", "Bench 3"


def sh(*args):
    subprocess.run(args, check=True)


def make_network():
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True,
                           check=True).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in links.splitlines()]
    if names != ["lo"]:
        # Not a namespace of our own: multicast here could reach a real network.
        raise SystemExit("refusing to run outside a fresh network namespace (links: %s)"
                         % names)
    sh("ip", "link", "set", "lo", "up")
    sh("ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1")
    for name, address in ADDRESSES.items():
        sh("ip", "addr", "add", address + "/24", "dev", name)
        sh("ip", "link", "set", name, "up")
    sh("ip", "route", "add", "224.0.0.0/4", "dev", "v0")


class GroupListener(threading.Thread):
    """A raw socket joined to 239.255.255.250 on both veth ends, parsing what it hears."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("", m.PORT))
        for address in ADDRESSES.values():
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                                 struct.pack("4s4s", socket.inet_aton(m.MULTICAST_GROUP),
                                             socket.inet_aton(address)))
        self.heard = []          # (seconds since start, source, parsed message)
        self.changed = threading.Condition()
        self.t0 = time.monotonic()
        self.stopped = False

    def run(self):
        while not self.stopped:
            ready, _, _ = select.select([self.sock], [], [], 0.1)
            if not ready:
                continue
            data, addr = self.sock.recvfrom(65535)
            try:
                msg = m.parse(data)
            except m.DiscoveryError:
                continue
            with self.changed:
                self.heard.append((time.monotonic() - self.t0, addr, msg))
                self.changed.notify_all()

    def wait_for(self, predicate, timeout, count=1):
        """The heard messages matching ``predicate`` once ``count`` arrived (or at timeout)."""
        def found():
            return [h for h in self.heard if predicate(h[2])]
        with self.changed:
            self.changed.wait_for(lambda: len(found()) >= count, timeout)
            return found()


def announced(msg):
    return {"kind": msg.kind, "message_id": msg.message_id,
            "address": msg.endpoints[0].address if msg.endpoints else None,
            "xaddrs": list(msg.endpoints[0].xaddrs) if msg.endpoints else [],
            "scopes": list(msg.endpoints[0].scopes) if msg.endpoints else []}


def ask(request, dest, bind_address, timeout=3.0):
    """Send one hand-made request from ``bind_address`` and collect the unicast replies."""
    replies = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((bind_address, 0))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(bind_address))
        s.sendto(m.serialize(request), dest)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([s], [], [], 0.05)
            if ready:
                data, addr = s.recvfrom(65535)
                msg = m.parse(data)
                replies.append({"from": list(addr), "kind": msg.kind,
                                "relates_to": msg.relates_to, "to": msg.to,
                                "message_id": msg.message_id,
                                "xaddrs": list(msg.endpoints[0].xaddrs)})
    return replies


def wsdiscovery_search(types=None, scopes=None, timeout=3):
    from wsdiscovery import QName, Scope
    from wsdiscovery.discovery import ThreadedWSDiscovery
    wsd = ThreadedWSDiscovery()
    wsd.start()
    try:
        found = wsd.searchServices(
            types=[QName(ns, local) for ns, local in types] if types else None,
            scopes=[Scope(s) for s in scopes] if scopes else None, timeout=timeout)
        return [{"epr": s.getEPR(), "xaddrs": list(s.getXAddrs()),
                 "scopes": [x.getValue() for x in s.getScopes()],
                 "types": [t.getFullname() for t in s.getTypes()]} for s in found]
    finally:
        wsd.stop()


class NamespaceDaemon(Daemon):
    """The conftest daemon, but HTTP on every address of the namespace and a config file."""

    config = None

    def command(self):
        return [os.path.join(os.path.dirname(sys.executable), "twistd"), "-n", "--pidfile=",
                "rotordream", "--config", self.config,
                "--http", "tcp:%d:interface=0.0.0.0" % self.http_port,
                "--rtsp", "tcp:%d:interface=127.0.0.1" % self.rtsp_port,
                "--state-dir", self.state_dir, "--motor", "none"]


def main(result_path, workdir):
    make_network()
    listener = GroupListener()
    listener.start()
    result = {}
    state_dir = os.path.join(workdir, "state")
    os.makedirs(state_dir)
    seed_state(state_dir, {"device-name": NAME, "device-location": LOCATION,
                           "resolution": "320x240", "fps": 5})
    config = os.path.join(workdir, "rotordream.toml")
    with open(config, "w") as f:
        f.write("[discovery]\nenabled = true\n")
    daemon = NamespaceDaemon(state_dir, 18080, 18554)
    daemon.config = config
    try:
        daemon.start()
        # One Hello per veth end, each sent twice (SOAP-over-UDP repetition).
        hellos = listener.wait_for(lambda msg: msg.kind == m.HELLO, 5, count=4)
        result["hellos"] = [announced(msg) for _, _, msg in listener.heard
                            if msg.kind == m.HELLO]
        result["hello_seen"] = bool(hellos)

        result["search_nvt"] = wsdiscovery_search(types=[(m.DN, "NetworkVideoTransmitter")])
        result["search_device_and_name"] = wsdiscovery_search(
            types=[(m.TDS, "Device")], scopes=["onvif://www.onvif.org/name/" + NAME])
        result["search_other_scope"] = wsdiscovery_search(
            scopes=["onvif://www.onvif.org/location/Elsewhere"], timeout=2)

        probe = m.probe(types=[(m.DN, "NetworkVideoTransmitter")])
        result["probe"] = {"message_id": probe.message_id,
                           "replies": ask(probe, (m.MULTICAST_GROUP, m.PORT), "10.77.0.2")}
        identity = json.load(open(os.path.join(state_dir, "discovery.json")))
        result["identity"] = identity
        resolve = m.resolve(identity["address"])
        result["resolve"] = {"message_id": resolve.message_id,
                             "replies": ask(resolve, ("10.77.0.1", m.PORT), "10.77.0.2")}

        # The XAddr must lead to the HTTP server.
        xaddr = result["search_nvt"][0]["xaddrs"][0] if result["search_nvt"] else None
        if xaddr:
            host, port = xaddr.split("/")[2].split(":")
            with socket.create_connection((host, int(port)), timeout=3):
                result["xaddr_connects"] = True
    finally:
        stop_at = time.monotonic() - listener.t0
        result["exit_status"] = daemon.stop(signal.SIGTERM)
        listener.wait_for(lambda msg: msg.kind == m.BYE, 3, count=4)  # two ends, each twice
        listener.stopped = True
        result["byes"] = [announced(msg) for t, _, msg in listener.heard
                          if msg.kind == m.BYE and t >= stop_at]
        result["daemon_log"] = daemon.log()[-4000:]
        with open(result_path, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
