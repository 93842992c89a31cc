"""Run inside ``unshare -n``: the daemon sends multicast RTP on a veth pair of its own.

Started by tests/rtsp/test_multicast_live.py and tests/onvif/test_multicast_live.py as
``unshare -n python THIS RESULT.json WORKDIR`` with MODE in the environment
(``ROTORDREAM_MULTICAST_CHECKS``, ``rtsp`` unless set). It refuses to run unless the
namespace is a fresh one (only ``lo``: nothing sent here can reach a real network), makes
the veth pair of netns_discovery.py (v0 10.77.0.1, v1 10.77.0.2, 224.0.0.0/4 via v0),
starts ``twistd rotordream`` with ``[rtsp] multicast_group`` on v0's address, and records
what real clients and a raw group listener see. MODE ``rtsp``: FFmpeg (ffprobe, ffmpeg
``-rtsp_transport udp_multicast``) and GStreamer (``rtspsrc protocols=udp-mcast``), alone
and together, with v0's transmit count and the daemon's own counter over the time both
play. MODE ``onvif``: onvif-zeep's GetStreamUri with RTP-Multicast then ffprobe, and
Start/StopMulticastStreaming seen by the listener. The pytest side asserts on the JSON.
"""

import json
import os
import re
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

from tests.support.netns_discovery import NamespaceDaemon, make_network  # noqa: E402
from tests.conftest import seed_state  # noqa: E402

GROUP, PORT, IFACE = "239.255.42.1", 40000, "10.77.0.1"
HTTP_PORT, RTSP_PORT = 18080, 18554
URL = "rtsp://127.0.0.1:%d/stream1" % RTSP_PORT


class GroupListener(threading.Thread):
    """A socket joined to the stream1 group on v0: RTP sequence numbers and RTCP types."""

    def __init__(self):
        super().__init__(daemon=True)
        self.socks = []
        for port in (PORT, PORT + 1):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((GROUP, port))
            s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                         struct.pack("4s4s", socket.inet_aton(GROUP), socket.inet_aton(IFACE)))
            self.socks.append(s)
        self.rtp = []      # (monotonic time, seq, ssrc, UDP payload bytes)
        self.rtcp = []     # (monotonic time, [packet types])
        self.stopped = False
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)   # notified on every RTCP packet

    def run(self):
        while not self.stopped:
            ready, _, _ = select.select(self.socks, [], [], 0.1)
            for s in ready:
                data, _ = s.recvfrom(65535)
                now = time.monotonic()
                with self.lock:
                    if s is self.socks[0] and len(data) >= 12:
                        seq, _, ssrc = struct.unpack("!HII", data[2:12])
                        self.rtp.append((now, seq, ssrc, len(data)))
                    elif s is self.socks[1]:
                        self.rtcp.append((now, rtcp_types(data)))
                        self.arrived.notify_all()

    def wait_bye(self, since, timeout=10.0):
        """Block until an RTCP BYE heard after ``since`` (the group's sender left); its
        time, or None at the timeout."""
        def bye():
            return next((t for t, types in self.rtcp if t >= since and 203 in types), None)
        with self.lock:
            self.arrived.wait_for(bye, timeout)
            return bye()

    def heard(self, since=0.0, until=None):
        """The RTP packets heard in [since, until)."""
        with self.lock:
            return [p for p in self.rtp if p[0] >= since and (until is None or p[0] < until)]

    def count(self, since=0.0, until=None):
        """How many RTP packets were heard in [since, until)."""
        return len(self.heard(since, until))


class MulticastDaemon(NamespaceDaemon):
    """The namespace daemon with RTSP on every address of the namespace (the URI ONVIF
    gives names the address it was asked on) and a password key file beside its state
    (WS-Security digest)."""

    def command(self):
        rtsp = "tcp:%d:interface=127.0.0.1" % self.rtsp_port
        return [("tcp:%d:interface=0.0.0.0" % self.rtsp_port) if arg == rtsp else arg
                for arg in super().command()] + \
            ["--secret-file", self.state_dir.rstrip("/") + ".key"]


def rtcp_types(data):
    types = []
    while len(data) >= 4:
        types.append(data[1])
        length = (struct.unpack("!H", data[2:4])[0] + 1) * 4
        data = data[length:]
    return types


def link_counts(dev="v0"):
    """{rx_packets, tx_bytes, tx_packets, tx_dropped} of ``dev``: /proc/net/dev is this namespace's
    (/sys/class/net would be the namespace's that mounted /sys, the machine's)."""
    with open("/proc/net/dev") as f:
        for line in f:
            name, _, counts = line.partition(":")
            if name.strip() == dev:
                c = [int(v) for v in counts.split()]
                return {"rx_packets": c[1], "tx_bytes": c[8], "tx_packets": c[9],
                        "tx_dropped": c[11]}
    raise KeyError(dev)


def metric(daemon, transport="multicast"):
    """rotordream_rtp_packets_sent_total{transport} from /metrics (admin)."""
    import base64
    import urllib.request
    req = urllib.request.Request(daemon.http + "/metrics", headers={
        "Authorization": "Basic " + base64.b64encode(
            ("admin:" + daemon.admin_password).encode()).decode()})
    text = urllib.request.urlopen(req, timeout=5).read().decode()
    m = re.search(r'rotordream_rtp_packets_sent_total\{transport="%s"\} ([0-9.e+]+)'
                  % transport, text)
    return float(m.group(1)) if m else None


def status_sessions(daemon):
    import base64
    import urllib.request
    req = urllib.request.Request(daemon.http + "/api/status", headers={
        "Authorization": "Basic " + base64.b64encode(
            ("admin:" + daemon.admin_password).encode()).decode()})
    data = json.loads(urllib.request.urlopen(req, timeout=5).read())
    data = data.get("data", data)
    return data["clients"]["rtsp_sessions"]


def ffprobe(url, timeout=30):
    p = subprocess.run(["ffprobe", "-v", "error", "-rtsp_transport", "udp_multicast",
                        "-show_entries", "stream=codec_name,width,height", "-of", "json", url],
                       capture_output=True, text=True, timeout=timeout)
    out = {"status": p.returncode, "stderr": p.stderr[-2000:]}
    try:
        out["streams"] = json.loads(p.stdout).get("streams", [])
    except ValueError:
        out["streams"] = []
    return out


def start_ffmpeg(url, frames):
    return subprocess.Popen(["ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport",
                             "udp_multicast", "-i", url, "-frames:v", str(frames),
                             "-progress", "pipe:1", "-f", "null", "-"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def start_gst(url, frames):
    # -v prints the sink's last-message once per decoded frame.
    return subprocess.Popen(["gst-launch-1.0", "-v", "rtspsrc", "location=" + url,
                             "protocols=udp-mcast", "!", "rtph264depay", "!", "h264parse",
                             "!", "avdec_h264", "!", "fakesink", "silent=false",
                             "num-buffers=%d" % frames],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc, timeout=60):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    frames = [int(v) for v in re.findall(r"^frame=(\d+)", out or "", re.M)]
    if not frames:   # GStreamer: one last-message per frame at the sink
        frames = [len(re.findall(r"fakesink0: last-message = chain", out or ""))]
    return {"status": proc.returncode, "frames": frames[-1] if frames else None,
            "stderr": (err or "")[-2000:]}


def wait_sessions(daemon, n, timeout=20):
    """The multicast sessions once ``n`` of them play (or what there is at timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        playing = [s for s in status_sessions(daemon)
                   if s.get("transport") == "multicast" and s.get("state") == "PLAYING"]
        if len(playing) >= n or time.monotonic() > deadline:
            return playing
        time.sleep(0.5)   # /api/status is rate-limited


def rtsp_checks(daemon, listener, result):
    result["ffprobe"] = ffprobe(URL)
    # Two real clients at once: FFmpeg and GStreamer, 15 fps, 150 frames each (10 s).
    ff, gst = start_ffmpeg(URL, 150), start_gst(URL, 150)
    playing = wait_sessions(daemon, 2)
    result["sessions_playing"] = len(playing)
    time.sleep(1.0)   # past the GOP burst of the first join
    # The kernel hands veth whole GSO batches (one "packet" per batch in its counters),
    # so bytes are what compare: every RTP packet once is ~1x what a listener hears.
    t0, m0, u0, v0 = time.monotonic(), metric(daemon), metric(daemon, "udp"), link_counts()
    time.sleep(4.0)
    t1, m1, u1, v1 = time.monotonic(), metric(daemon), metric(daemon, "udp"), link_counts()
    heard = listener.heard(t0, t1)
    result["window"] = {"seconds": t1 - t0, "server_sent": m1 - m0,
                        "server_sent_unicast": (u1 or 0) - (u0 or 0),
                        "heard": len(heard), "heard_bytes": sum(p[3] for p in heard),
                        "distinct_seqs": len({p[1] for p in heard}),
                        "tx_v0": {k: v1[k] - v0[k] for k in v0},
                        "sessions_during": len(wait_sessions(daemon, 2, 0))}
    left = time.monotonic()
    result["ffmpeg"], result["gstreamer"] = finish(ff), finish(gst)
    # After both left: the group is quiet (the last one's TEARDOWN sent a BYE).
    listener.wait_bye(left)
    quiet = time.monotonic()
    time.sleep(1.5)
    result["after"] = {"heard": listener.count(quiet), "sessions": len(status_sessions(daemon)),
                       "bye": any(203 in types for _, types in listener.rtcp)}
    result["rtcp_sr"] = sum(1 for _, types in listener.rtcp if 200 in types)
    result["many"] = many_viewers(daemon, listener, 50)


def many_viewers(daemon, listener, n):
    """``n`` packet-level sessions (SETUP multicast, PLAY, from n source addresses): what
    the daemon sent and the group carried over 3 s."""
    from tests.support.rawrtsp import RawRtsp
    clients = []
    try:
        for i in range(n):
            c = RawRtsp(RTSP_PORT, "127.0.0.%d" % (10 + i))
            clients.append(c)
            status, sid, _, reason = c.setup("stream1/trackID=0", "RTP/AVP;multicast")
            if status != 200:
                return {"refused": "%d %s" % (status, reason)}
            c.sid = sid
            c.ask("PLAY", "stream1", Session=sid)
        def keep_alive():   # sessions time out after 4 s here
            for c in clients:
                c.ask("GET_PARAMETER", "stream1", Session=c.sid)
        time.sleep(1.0)
        keep_alive()
        t0, m0, u0, v0 = time.monotonic(), metric(daemon), metric(daemon, "udp"), link_counts()
        time.sleep(1.5)
        keep_alive()
        time.sleep(1.5)
        t1, m1, u1, v1 = time.monotonic(), metric(daemon), metric(daemon, "udp"), link_counts()
        heard = listener.heard(t0, t1)
        return {"viewers": len(wait_sessions(daemon, n, 0)), "server_sent": m1 - m0,
                "server_sent_unicast": (u1 or 0) - (u0 or 0), "heard": len(heard),
                "heard_bytes": sum(p[3] for p in heard),
                "tx_bytes": v1["tx_bytes"] - v0["tx_bytes"]}
    finally:
        for c in clients:
            c.close()


def onvif_checks(daemon, listener, result):
    from onvif import ONVIFCamera
    cam = ONVIFCamera("10.77.0.1", HTTP_PORT, "admin", daemon.admin_password, no_cache=True)
    media = cam.create_media_service()
    uri = media.GetStreamUri({"StreamSetup": {"Stream": "RTP-Multicast",
                                              "Transport": {"Protocol": "UDP"}},
                              "ProfileToken": "stream1"}).Uri
    result["uri"] = uri
    profile = media.GetProfile({"ProfileToken": "stream1"})
    mc = profile.VideoEncoderConfiguration.Multicast
    result["profile_multicast"] = [mc.Address.IPv4Address, mc.Port, mc.TTL, mc.AutoStart]
    result["ffprobe"] = ffprobe(uri)
    time.sleep(1.0)
    before = time.monotonic()
    time.sleep(1.0)
    result["idle_heard"] = listener.count(before)
    media.StartMulticastStreaming({"ProfileToken": "stream1"})
    started = time.monotonic()
    time.sleep(3.0)
    result["started_heard"] = listener.count(started)
    result["started_sessions"] = len(status_sessions(daemon))
    asked = time.monotonic()
    media.StopMulticastStreaming({"ProfileToken": "stream1"})
    listener.wait_bye(asked)   # the group's sender left
    stopped = time.monotonic()
    time.sleep(2.0)
    result["stopped_heard"] = listener.count(stopped)


def main(result_path, workdir, mode):
    make_network()
    listener = GroupListener()
    listener.start()
    result = {"mode": mode}
    state_dir = os.path.join(workdir, "state")
    os.makedirs(state_dir)
    seed_state(state_dir, {"resolution": "320x240", "fps": 15, "stream1-gop": 15,
                           "stream2-resolution": "320x180", "stream2-fps": 5})
    config = os.path.join(workdir, "rotordream.toml")
    with open(config, "w") as f:
        # Sessions time out after 4 s: the 10 s of playing only last through the clients'
        # RTSP keep-alives (their RTCP goes to the group, never to the server).
        f.write('[rtsp]\nmulticast_group = "%s"\nmulticast_port = %d\nmulticast_ttl = 1\n'
                'multicast_interface = "%s"\nsession_timeout = 4\nmax_sessions = 60\n'
                'max_sessions_per_address = 60\nreserved_sessions = 0\n'
                % (GROUP, PORT, IFACE))
    daemon = MulticastDaemon(state_dir, HTTP_PORT, RTSP_PORT)
    daemon.config = config
    try:
        daemon.start()
        if mode == "rtsp":
            rtsp_checks(daemon, listener, result)
        else:
            onvif_checks(daemon, listener, result)
    except Exception as e:
        result["error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        result["exit_status"] = daemon.stop(signal.SIGTERM)
        listener.stopped = True
        result["expired"] = daemon.log().count("event=rtsp_session_expired")
        result["daemon_log"] = daemon.log()[-4000:]
        with open(result_path, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], os.environ.get("ROTORDREAM_MULTICAST_CHECKS", "rtsp"))
