"""Run inside ``unshare -n``: Chromium watches ``stream=auto`` while the link is squeezed.

Started by tests/webrtc/test_shaped_link.py as ``unshare -n python THIS RESULT.json WORKDIR``.
Two namespaces joined by the userspace link emulator (tests/support/linkemu.py):
the daemon in the camera's (held by a ``sleep``), Chromium and this script in
the viewer's, where the script started. Everything between them (HTTP, ICE,
media, feedback) crosses the emulated link, symmetric in both directions:
3 Mbit/s, then 400 kbit/s with 50 ms of one-way delay (100 ms more round trip)
and 1 % random loss each way behind a 250 ms queue, then 3 Mbit/s again.
The page samples ``getStats`` every second; the daemon's session listing shows
the switches. Results go to RESULT.json. ``ROTORDREAM_WEBRTC_TRANSPORT_CC=1`` runs it with
``[webrtc] transport_cc = true`` (default: REMB).
"""

import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from tests.conftest import Daemon, seed_state  # noqa: E402
from tests.support import linkemu  # noqa: E402
from tests.support.chromium import Chromium  # noqa: E402
from tests.support.netns import admin_get, only_loopback  # noqa: E402

FAST = {"rate": 3_000_000, "delay": 0.0, "loss": 0.0, "queue": 3_000_000 // 8 // 4}
SLOW = {"rate": 400_000, "delay": 0.05, "loss": 0.01, "queue": 400_000 // 8 // 4}

# The camera offers (stream=auto), the page answers with the offer's ICE servers and
# samples the inbound video every second into window.samples.
PLAY = """(async () => {
  const video = document.createElement("video");
  video.muted = true; video.autoplay = true; video.playsInline = true;
  document.body.appendChild(video);
  const offer = await (await fetch("/api/webrtc/offer?stream=auto")).json();
  const pc = new RTCPeerConnection({iceServers: offer.data.ice_servers});
  pc.ontrack = (e) => { video.srcObject = new MediaStream([e.track]); video.play(); };
  await pc.setRemoteDescription({type: "offer", sdp: offer.sdp});
  await pc.setLocalDescription(await pc.createAnswer());
  await fetch("/api/webrtc/answer", {method: "POST", headers: {"content-type": "application/json"},
    body: JSON.stringify({type: "answer", sdp: pc.localDescription.sdp, id: offer.data.id})});
  window.pc = pc; window.samples = []; window.sessionId = offer.data.id;
  const started = performance.now();
  setInterval(async () => {
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") {
        window.samples.push({t: (performance.now() - started) / 1000, state: pc.connectionState,
          decoded: s.framesDecoded, fps: s.framesPerSecond, width: s.frameWidth,
          freezes: s.freezeCount, frozen: s.totalFreezesDuration, lost: s.packetsLost,
          nacks: s.nackCount, plis: s.pliCount, received: s.packetsReceived});
      }
    });
  }, 1000);
  return offer.data.id;
})()"""


class CameraDaemon(Daemon):
    """The daemon in the camera's namespace (``ns``: a process living there), its HTTP
    on the camera's end of the link."""

    ns = None

    @property
    def http(self):
        """Base URL of the HTTP server, across the link."""
        return "http://%s:%d" % (linkemu.CAMERA_ADDRESS, self.http_port)

    def command(self):
        """The usual command, entered into the camera's namespace."""
        local = "tcp:%d:interface=127.0.0.1" % self.http_port
        there = "tcp:%d:interface=%s" % (self.http_port, linkemu.CAMERA_ADDRESS)
        return ["nsenter", "-t", str(self.ns), "-n"] + \
            [there if arg == local else arg for arg in super().command()]


class Emulator:
    """The link emulator's process, driven over its stdin."""

    def __init__(self, camera_ns):
        self.proc = subprocess.Popen([sys.executable, linkemu.__file__, str(camera_ns)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise SystemExit("the link emulator did not start")

    def set(self, settings):
        """Apply ``settings`` to both directions; the counters so far."""
        self.proc.stdin.write(json.dumps(settings) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def stop(self):
        """End the emulator (its devices go with it)."""
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def camera_namespace():
    """A ``sleep`` holding a new network namespace; it is up once its namespace differs."""
    holder = subprocess.Popen(["unshare", "-n", "sleep", "900"])
    deadline = time.monotonic() + 10
    while os.readlink("/proc/%d/ns/net" % holder.pid) == os.readlink("/proc/self/ns/net"):
        if time.monotonic() > deadline:
            raise SystemExit("the camera's namespace did not come up")
        time.sleep(0.02)
    return holder


def samples_until(page, phase, until, result, deadline):
    """Collect the page's samples while ``until(samples of this phase)`` is false."""
    start = len(page.evaluate("window.samples"))
    end = time.monotonic() + deadline
    while True:
        got = page.evaluate("window.samples")[start:]
        if until(got) or time.monotonic() > end:
            result["phases"][phase] = got
            return got
        time.sleep(0.5)   # an external process (the browser): poll with a deadline


def main(result_path, workdir):
    only_loopback()
    result = {"phases": {}, "link": {}}
    state_dir = os.path.join(workdir, "state")
    os.makedirs(state_dir)
    # stream2 small, cheap and with a keyframe every half second: a viewer moved down
    # because its link broke waits for stream2's next keyframe.
    seed_state(state_dir, {"resolution": "1280x720", "fps": 30, "stream1-bitrate": 1500,
                           "stream2-resolution": "320x180", "stream2-bitrate": 200,
                           "stream2-gop": 8})
    config = os.path.join(workdir, "rotordream.toml")
    with open(config, "w") as f:
        f.write('[webrtc]\naddresses = ["%s"]\n' % linkemu.CAMERA_ADDRESS)
        if os.environ.get("ROTORDREAM_WEBRTC_TRANSPORT_CC") == "1":
            f.write("transport_cc = true\n")   # opt-in: the same run estimated by transport-cc
    holder = camera_namespace()
    link = Emulator(holder.pid)
    daemon = CameraDaemon(state_dir, 18080, 18554, ["--config", config, "--motor", "none"])
    daemon.ns = holder.pid
    try:
        link.set(FAST)
        daemon.start()
        with Chromium() as browser:
            page = browser.open(daemon.http + "/api/info")
            result["session"] = sid = page.evaluate(PLAY, timeout=60)
            # Phase 1: a good link; the viewer starts on stream1 and stays there.
            samples_until(page, "fast", lambda s: len(s) >= 15, result, 60)
            result["link"]["fast"] = link.set({})     # the counters so far
            link.set(SLOW)
            result["squeezed_at"] = time.monotonic()
            samples_until(page, "squeeze", lambda s: len(s) >= 30, result, 90)
            result["link"]["squeeze"] = link.set({})
            link.set(FAST)
            samples_until(page, "recovered", lambda s: len(s) >= 10 and s[-1]["width"] == 1280
                          and len([x for x in s if x["width"] == 1280]) >= 5, result, 60)
            result["link"]["recovered"] = link.set({})
            result["sessions"] = _sessions(daemon)
            result["mine"] = [s for s in result["sessions"] if s["id"] == sid]
            result["console"] = page.console
            result["exit_status"] = daemon.stop()
    except Exception:
        import traceback
        result["error"] = traceback.format_exc()
    finally:
        daemon.stop()
        link.stop()
        holder.kill()
        holder.wait()
        result["daemon_log"] = daemon.log()[-8000:]
        with open(result_path, "w") as f:
            json.dump(result, f, indent=1)


def _sessions(daemon):
    return admin_get(daemon, "/api/webrtc/sessions")["sessions"]


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
