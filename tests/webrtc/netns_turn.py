"""Run inside ``unshare -n``: a viewer reaches the camera only through coturn.

Started by tests/webrtc/test_turn.py as ``unshare -n python THIS RESULT.json WORKDIR``.
Three network namespaces, the camera's being this one::

    camera 10.200.1.2 --- 10.200.1.1  coturn  10.200.2.1 --- 10.200.2.2 viewer

The middle one does not forward (``ip_forward=0``), so the camera's and the
viewer's host candidates cannot reach each other: only coturn's addresses
are reachable from both sides, and every working ICE pair goes through the
relay. The TURN credentials are the short-lived ones (coturn's
``use-auth-secret``) the camera hands out in its offer. Signalling crosses
namespaces through this script (pipes to the viewer), as a web server in
front of the camera would carry it. Results go to RESULT.json.
"""

import asyncio
import json
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

SECRET = "rotordream-turn-test-secret"
TURN_URL = "turn:10.200.1.1:3478?transport=udp"
CAMERA, VIEWER = "10.200.1.2", "10.200.2.2"


def sh(*args, ns=None):
    """Run a command, in the namespace of process ``ns`` when given."""
    prefix = ["nsenter", "-t", str(ns), "-n"] if ns else []
    return subprocess.run(prefix + list(args), check=True, capture_output=True, text=True).stdout


def only_loopback():
    links = sh("ip", "-o", "link")
    names = [line.split(":")[1].strip().split("@")[0] for line in links.splitlines()]
    if names != ["lo"]:
        raise SystemExit("refusing to run outside a fresh network namespace (links: %s)" % names)
    sh("ip", "link", "set", "lo", "up")


def build_network():
    """The coturn and viewer namespaces (held by ``sleep`` processes) and their links."""
    holders = [subprocess.Popen(["unshare", "-n", "sleep", "900"]) for _ in range(2)]
    turn, viewer = (p.pid for p in holders)
    deadline = time.monotonic() + 10
    while any(os.readlink("/proc/%d/ns/net" % p) == os.readlink("/proc/self/ns/net")
              for p in (turn, viewer)):
        if time.monotonic() > deadline:
            raise SystemExit("namespace holders did not start")
        time.sleep(0.02)
    sh("ip", "link", "add", "c0", "type", "veth", "peer", "name", "t1")
    sh("ip", "link", "add", "v0", "type", "veth", "peer", "name", "t2")
    sh("ip", "link", "set", "t1", "netns", str(turn))
    sh("ip", "link", "set", "t2", "netns", str(turn))
    sh("ip", "link", "set", "v0", "netns", str(viewer))
    sh("ip", "addr", "add", CAMERA + "/24", "dev", "c0")
    sh("ip", "link", "set", "c0", "up")
    sh("ip", "route", "add", "default", "via", "10.200.1.1")
    for cmd in (["ip", "link", "set", "lo", "up"],
                ["ip", "addr", "add", "10.200.1.1/24", "dev", "t1"],
                ["ip", "addr", "add", "10.200.2.1/24", "dev", "t2"],
                ["ip", "link", "set", "t1", "up"], ["ip", "link", "set", "t2", "up"],
                ["sysctl", "-qw", "net.ipv4.ip_forward=0"]):   # no route between the sides
        sh(*cmd, ns=turn)
    for cmd in (["ip", "link", "set", "lo", "up"],
                ["ip", "addr", "add", VIEWER + "/24", "dev", "v0"],
                ["ip", "link", "set", "v0", "up"],
                ["ip", "route", "add", "default", "via", "10.200.2.1"]):
        sh(*cmd, ns=viewer)
    return holders, turn, viewer


def start_coturn(workdir, ns):
    conf = os.path.join(workdir, "turnserver.conf")
    log = os.path.join(workdir, "turn.log")
    with open(conf, "w") as f:
        f.write("\n".join([
            "listening-port=3478", "listening-ip=10.200.1.1", "listening-ip=10.200.2.1",
            "relay-ip=10.200.1.1", "min-port=49152", "max-port=49400",
            "use-auth-secret", "static-auth-secret=" + SECRET, "realm=rotordream.test",
            "fingerprint", "no-tls", "no-dtls", "no-cli", "no-multicast-peers",
            "log-file=" + log, "simple-log", "verbose",
            "pidfile=" + os.path.join(workdir, "turn.pid"),
        ]) + "\n")
    proc = subprocess.Popen(["nsenter", "-t", str(ns), "-n", "turnserver", "-c", conf],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while ":3478" not in sh("ss", "-lun", ns=ns):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("coturn did not start:\n" + _read(log))
        time.sleep(0.05)
    return proc, log


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _send(proc, obj):
    proc.stdin.write(json.dumps(obj) + "\n")
    proc.stdin.flush()


def _receive(proc):
    line = proc.stdout.readline()
    if not line:
        raise SystemExit("the viewer ended early")
    return json.loads(line)


def main(result_path, workdir):
    import requests
    from tests.conftest import Daemon, seed_state

    only_loopback()
    result = {}
    holders, turn_ns, viewer_ns = build_network()
    coturn, turn_log = start_coturn(workdir, turn_ns)
    state_dir = os.path.join(workdir, "state")
    os.makedirs(state_dir)
    seed_state(state_dir, {"resolution": "640x360", "fps": 25, "stream2-resolution": "320x180",
                           "stream2-bitrate": 200})
    config = os.path.join(workdir, "rotordream.toml")
    with open(config, "w") as f:
        f.write('[webrtc]\naddresses = ["%s"]\nice_servers = ["%s"]\nturn_secret = "%s"\n'
                % (CAMERA, TURN_URL, SECRET))
    daemon = Daemon(state_dir, 18080, 18554, ["--config", config, "--motor", "none"])
    viewer = None
    try:
        daemon.start()
        viewer = subprocess.Popen(
            ["nsenter", "-t", str(viewer_ns), "-n", sys.executable, os.path.abspath(__file__),
             "viewer"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        with requests.Session() as http:   # keeps the viewer-key cookie for the answer
            offer = http.get(daemon.http + "/api/webrtc/offer", params={"stream": "stream2"},
                             timeout=60).json()
            result["offer_ice_servers"] = offer["data"]["ice_servers"]
            result["offer_candidates"] = [line for line in offer["sdp"].split("\r\n")
                                          if line.startswith("a=candidate:")]
            _send(viewer, {"sdp": offer["sdp"], "ice_servers": offer["data"]["ice_servers"]})
            answer = _receive(viewer)
            reply = http.post(daemon.http + "/api/webrtc/answer",
                              json={"type": "answer", "sdp": answer["sdp"]}, timeout=30)
            result["answer_status"] = reply.status_code
            result["viewer"] = _receive(viewer)
            admin = ("admin", daemon.admin_password)
            result["sessions"] = requests.get(daemon.http + "/api/webrtc/sessions", auth=admin,
                                              timeout=10).json()["data"]["sessions"]
            _send(viewer, {"close": True})
    finally:
        if viewer is not None:
            viewer.kill()
            viewer.wait()
        daemon.stop()
        coturn.terminate()
        coturn.wait(10)
        for holder in holders:
            holder.kill()
            holder.wait()
        result["daemon_log"] = daemon.log()[-6000:]
        result["turn_log"] = _read(turn_log)[-20000:]
        with open(result_path, "w") as f:
            json.dump(result, f, indent=1)


def viewer_main():
    """The viewer's side, in its own namespace: signalling on stdin/stdout."""
    from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription

    async def go():
        loop = asyncio.get_running_loop()
        offer = json.loads(await loop.run_in_executor(None, sys.stdin.readline))
        servers = [RTCIceServer(urls=s["urls"], username=s.get("username"),
                                credential=s.get("credential")) for s in offer["ice_servers"]]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        frames, enough = [], loop.create_future()

        @pc.on("track")
        def on_track(track):
            async def pull():
                while True:
                    frame = await track.recv()
                    frames.append((frame.width, frame.height))
                    if len(frames) >= 30 and not enough.done():
                        enough.set_result(None)
            asyncio.ensure_future(pull())

        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        print(json.dumps({"sdp": pc.localDescription.sdp}), flush=True)
        out = {"answer_candidates": [line for line in pc.localDescription.sdp.split("\r\n")
                                     if line.startswith("a=candidate:")]}
        try:
            await asyncio.wait_for(enough, 60)
        except asyncio.TimeoutError:
            out["timeout"] = True
        out["frames"] = len(frames)
        out["sizes"] = sorted(set(frames))
        out["state"] = pc.connectionState
        ice = pc.getTransceivers()[0].receiver.transport.transport
        pair = ice._connection._nominated.get(1)
        if pair is not None:
            out["pair"] = {"local": [pair.local_candidate.type, pair.local_candidate.host],
                           "remote": [pair.remote_candidate.type, pair.remote_candidate.host]}
        # The camera's host address, from here: no route through the middle namespace.
        probe = socket.socket()
        probe.settimeout(2)
        try:
            probe.connect((CAMERA, 18080))
            out["camera_host_reachable"] = "connected"
        except socket.timeout:
            out["camera_host_reachable"] = False
        except OSError as e:
            out["camera_host_reachable"] = repr(e)
        finally:
            probe.close()
        print(json.dumps(out), flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)   # playing until told
        await pc.close()

    asyncio.run(go())


if __name__ == "__main__":
    if sys.argv[1:] == ["viewer"]:
        viewer_main()
    else:
        main(sys.argv[1], sys.argv[2])
