"""A new UDP viewer of a noisy 1080p stream at ~4 Mbit/s gets its first second whole.

The daemon plays a clip of noise (so its encoder really fills stream1's 4 Mbit/s)
and viewers join late in a GOP, when the cached GOP is largest (about 0.4 MB of
its 0.5): sent at once it is more than a default UDP receive buffer holds. A
GStreamer ``rtspsrc`` with default properties (also with the receive buffer they
get under a stock ``net.core.rmem_max``) and a Python receiver with the kernel's
default ``SO_RCVBUF`` must each see every RTP packet of the first second and of
the whole first GOP (no sequence gap; GStreamer's jitter buffer counts nothing
lost), and GStreamer must decode every access unit it got. Without the paced
catch-up (``[rtsp] catchup_rate = 0``) the last two lost packets in some joins.
"""

import json
import os
import socket
import statistics
import subprocess
import threading
import time

import pytest

from tests.conftest import NO_LIMITS, REQUIRE_ALL, make_daemon, require_tool
from tests.support.rawrtsp import RawRtsp

HERE = os.path.dirname(os.path.abspath(__file__))
PHASE = 0.85   # join this far into a GOP
JOINS = 3


@pytest.fixture(scope="module")
def noisy_daemon(tmp_path_factory):
    """The daemon on a 1080p30 noise clip: stream1 at 4 Mbit/s, a keyframe every 30 frames."""
    ffmpeg = require_tool("ffmpeg")
    work = tmp_path_factory.mktemp("noise")
    clip = work / "noise.mp4"
    subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=1920x1080:rate=30,noise=alls=12:allf=t+u", "-t", "4",
                    "-c:v", "libx264", "-preset", "veryfast", "-crf", "30", "-g", "30",
                    "-pix_fmt", "yuv420p", str(clip)], check=True, timeout=300)
    conf = work / "rd.toml"
    conf.write_text(NO_LIMITS + "[rtsp]\nmax_sessions_per_address = 10\n")
    d = make_daemon(tmp_path_factory, extra=["--config", str(conf), "--source", "file:%s" % clip],
                    settings={"resolution": "1920x1080", "fps": 30, "stream1-bitrate": 4000,
                              "stream1-gop": 30})
    yield d
    d.stop()


def udp_pair():
    """Two bound UDP sockets on consecutive loopback ports (RTP even, RTCP odd)."""
    for _ in range(50):
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        port = rtp.getsockname()[1]
        if port % 2 == 0 and port < 65535:
            rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                rtcp.bind(("127.0.0.1", port + 1))
                return rtp, rtcp
            except OSError:
                rtcp.close()
        rtp.close()
    raise RuntimeError("no free UDP port pair")


def keyframe_start(payload):
    """Whether an H.264 RTP payload begins a keyframe (SPS, STAP-A of SPS, first IDR fragment)."""
    kind = payload[0] & 0x1F
    if kind == 24:
        return len(payload) > 3 and payload[3] & 0x1F == 7
    if kind == 28:
        return len(payload) > 1 and payload[1] & 0x80 and payload[1] & 0x1F == 5
    return kind in (5, 7)


class UdpViewer:
    """A packet-level RTSP viewer over UDP: (arrival, seq, timestamp, keyframe start) of each
    RTP packet, read by a thread; the socket keeps the kernel's default receive buffer."""

    def __init__(self, daemon, path="stream1"):
        self.rtp, self.rtcp = udp_pair()
        self.rtp.settimeout(0.2)
        self.rtsp = RawRtsp(daemon.rtsp_port)
        a = self.rtp.getsockname()[1]
        status, self.session, _, reason = self.rtsp.setup(
            "%s/trackID=0" % path, "RTP/AVP;unicast;client_port=%d-%d" % (a, a + 1))
        assert status == 200, reason
        self.packets = []
        self.arrived = threading.Condition()  # notified at each packet
        self.running = True
        self.thread = threading.Thread(target=self._read, daemon=True)

    def play(self):
        """PLAY now; packets are recorded from here on."""
        self.thread.start()
        status, _, reason = self.rtsp.ask("PLAY", "stream1", Session=self.session)
        assert status == 200, reason

    def _read(self):
        while self.running:
            try:
                data = self.rtp.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            packet = (time.monotonic(), int.from_bytes(data[2:4], "big"),
                      int.from_bytes(data[4:8], "big"), len(data) - 12, keyframe_start(data[12:]))
            with self.arrived:
                self.packets.append(packet)
                self.arrived.notify_all()

    def wait_for(self, enough, timeout):
        """Wait until ``enough(packets)`` holds (True) or ``timeout`` s pass (False)."""
        with self.arrived:
            return self.arrived.wait_for(lambda: enough(self.packets), timeout)

    def close(self):
        """TEARDOWN and close."""
        self.running = False
        self.thread.join(2)
        try:
            self.rtsp.ask("TEARDOWN", "stream1", Session=self.session)
        except OSError:
            pass
        self.rtsp.close()
        self.rtp.close()
        self.rtcp.close()

    @property
    def rcvbuf(self):
        """The socket's receive buffer as the kernel reports it."""
        return self.rtp.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


def first_gop(rtp):
    """Of ``[(seq, timestamp, size, keyframe start)]``: the packets before the second
    keyframe, their payload bytes and how many sequence numbers are missing among them."""
    starts = [i for i, p in enumerate(rtp) if p[3] and (i == 0 or rtp[i - 1][1] != p[1])]
    if len(starts) < 2 or starts[0] != 0:
        return [], 0, None
    gop = rtp[:starts[1]]
    missing = sum(((b[0] - a[0]) & 0xFFFF) - 1 for a, b in zip(gop, gop[1:]))
    return gop, sum(p[2] for p in gop), missing


def first_second(rtp):
    """Of ``[(seq, timestamp, ...)]`` in arrival order: the packets of the first second of
    RTP time and how many sequence numbers are missing among them."""
    if not rtp:
        return [], None
    ts0 = rtp[0][1]
    inside = [p for p in rtp if (p[1] - ts0) & 0xFFFFFFFF < 90000]
    missing = sum(((b[0] - a[0]) & 0xFFFF) - 1 for a, b in zip(inside, inside[1:]))
    return inside, missing


def past_first_gop(packets):
    """Whether a second keyframe, and more than a second of RTP time, have arrived."""
    return sum(1 for p in packets if p[4]) >= 2 and \
        (packets[-1][2] - packets[0][2]) & 0xFFFFFFFF > 1.2 * 90000


class Clock:
    """When the live stream's keyframes reach a viewer: a watcher that stays joined."""

    def __init__(self, daemon):
        self.viewer = UdpViewer(daemon)
        self.viewer.play()

    def next_join(self, phase=PHASE):
        """Wait until ``phase`` of a GOP has passed since a live keyframe, in the stream's own
        RTP time: the packet that reaches that moment is what is waited for."""
        def live_keys(packets):
            # RTP timestamps of the keyframes past the watcher's own catch-up, each once.
            keys = [ts for t, _, ts, _, k in packets if k and t > packets[0][0] + 1.5]
            return [ts for i, ts in enumerate(keys) if i == 0 or keys[i - 1] != ts]

        def at_or_past(ts, target):
            return (ts - target) & 0xFFFFFFFF < 0x80000000

        if not self.viewer.wait_for(lambda packets: len(live_keys(packets)) >= 3, 20):
            raise AssertionError("no regular keyframes reached the watcher")
        with self.viewer.arrived:
            live = live_keys(self.viewer.packets)
            latest = self.viewer.packets[-1][2]
        period = int(statistics.median((b - a) & 0xFFFFFFFF for a, b in zip(live, live[1:])))
        target = (live[-1] + int(phase * period)) & 0xFFFFFFFF
        while at_or_past(latest + 4500, target):  # 50 ms (90 kHz) or less away: the next GOP's
            target = (target + period) & 0xFFFFFFFF
        if not self.viewer.wait_for(lambda packets: at_or_past(packets[-1][2], target), 10):
            raise AssertionError("the stream did not reach the moment to join")

    def close(self):
        self.viewer.close()


def gst_probe(url, buffer_size=None, seconds=5.0):
    """Start the GStreamer probe (SETUP done, PLAY held back); its process."""
    require_tool("gst-launch-1.0")
    check = subprocess.run(["/usr/bin/python3", "-c", "import gi; gi.require_version("
                            "'GstRtp', '1.0'); from gi.repository import GstRtp"],
                           capture_output=True) if os.path.exists("/usr/bin/python3") else None
    if check is None or check.returncode:
        message = "GStreamer for /usr/bin/python3 missing: apt-get install python3-gst-1.0 " \
                  "gstreamer1.0-plugins-good gstreamer1.0-libav"
        if REQUIRE_ALL:
            pytest.fail(message)
        pytest.skip(message)
    proc = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "gst_udp_probe.py"), url,
                             str(seconds)] + ([str(buffer_size)] if buffer_size else []),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.strip() == "READY", line + proc.stderr.read()
    return proc


# rtspsrc asks 512 kB for its RTP socket (udp-buffer-size); the kernel doubles what it
# grants, up to net.core.rmem_max: 1 MB where rmem_max was raised (as here), 416 kB under
# Debian's stock rmem_max of 208 kB, which udp-buffer-size=212992 reproduces.
@pytest.mark.parametrize("buffer_size", [None, 212992], ids=["rtspsrc-default", "stock-rmem-max"])
def test_gstreamer_with_default_buffers_gets_the_first_second_whole(noisy_daemon, buffer_size):
    clock = Clock(noisy_daemon)
    results = []
    try:
        for _ in range(JOINS):
            proc = gst_probe(noisy_daemon.rtsp("stream1"), buffer_size)
            try:
                clock.next_join()
                out, err = proc.communicate("play\n", timeout=60)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            assert proc.returncode == 0, err
            r = json.loads(out.strip().splitlines()[-1])
            r["rtp"] = [(seq, ts, size, keyframe_start(bytes.fromhex(head)))
                        for seq, ts, size, head in r["rtp"]]
            results.append(r)
    finally:
        clock.close()
    for r in results:
        inside, missing = first_second(r["rtp"])
        gop, gop_octets, gop_missing = first_gop(r["rtp"])
        units = len({p[1] for p in r["rtp"]})
        summary = dict(second_packets=len(inside), second_missing=missing,
                       gop_packets=len(gop), gop_octets=gop_octets, gop_missing=gop_missing,
                       rcvbuf=r["rcvbuf"], jitterbuffer=r["jitterbuffer"], units=units,
                       decoded=len(r["frames"]), errors=r["errors"])
        print("GStreamer join:", summary)
        assert not r["errors"], summary
        assert r["rtp"][0][3], "the first packet begins a keyframe"
        # 30 frames of ~4 Mbit/s at 30 fps: 0.5 MB
        assert gop_octets > 400000, summary
        assert missing == 0 and gop_missing == 0 and r["jitterbuffer"]["num-lost"] == 0, summary
        # every access unit that reached the depayloader was decoded (h264parse may hold one)
        assert units - 1 <= len(r["frames"]) <= units, summary


def test_a_python_receiver_with_the_default_receive_buffer_loses_nothing(noisy_daemon):
    clock = Clock(noisy_daemon)
    seen = []
    try:
        for _ in range(JOINS):
            viewer = UdpViewer(noisy_daemon)
            clock.next_join()
            viewer.play()
            viewer.wait_for(past_first_gop, 10)
            rcvbuf = viewer.rcvbuf
            viewer.close()
            seen.append((viewer.packets, rcvbuf))
    finally:
        clock.close()
    for packets, rcvbuf in seen:
        assert packets and packets[0][4], "the first packet begins a keyframe"
        rtp = [(s, ts, size, key) for _, s, ts, size, key in packets]
        inside, missing = first_second(rtp)
        gop, gop_octets, gop_missing = first_gop(rtp)
        summary = dict(second_packets=len(inside), second_missing=missing,
                       gop_packets=len(gop), gop_octets=gop_octets, gop_missing=gop_missing,
                       rcvbuf=rcvbuf)
        print("Python join:", summary)
        assert gop_octets > 400000, summary
        assert missing == 0 and gop_missing == 0, summary
