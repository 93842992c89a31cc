"""Run inside ``unshare -n``: Chromium watches ``stream=auto`` while ``tc`` squeezes the link.

Started by tests/webrtc/test_shaped_link.py as ``unshare -n python THIS RESULT.json WORKDIR``.
Daemon and browser share a namespace whose only link is ``lo``; an HTB class on
``lo`` carries the WebRTC media (UDP datagrams of 256 bytes or more; the
browser's small RTCP feedback, HTTP and DevTools pass unshaped): 3 Mbit/s,
then 400 kbit/s with a short queue (its overflow is the loss), then 3 Mbit/s
again. This kernel has no netem and no gact, so a fixed delay and random loss
cannot be added: the squeeze's delay and loss are the queue's.
The page samples ``getStats`` every second; the daemon's session listing shows
the switches. Results go to RESULT.json.
"""

import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from tests.conftest import Daemon, seed_state  # noqa: E402
from tests.support.chromium import Chromium  # noqa: E402
from tests.webrtc.netns_turn import only_loopback, sh  # noqa: E402

FAST, SLOW = "3mbit", "400kbit"
SQUEEZE_QUEUE = 10       # packets: about 0.25 s at 400 kbit/s (tbf latency 250ms)

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


def shape(rate, queue, first=False):
    """UDP on lo through one HTB class of ``rate`` with a ``queue``-packet FIFO."""
    verb = "add" if first else "change"
    if first:
        sh("tc", "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "20",
           "r2q", "100")
        sh("tc", "class", "add", "dev", "lo", "parent", "1:", "classid", "1:20", "htb", "rate",
           "10gbit")
    sh("tc", "class", verb, "dev", "lo", "parent", "1:", "classid", "1:10", "htb", "rate", rate,
       "ceil", rate, "burst", "15k")
    sh("tc", "qdisc", "replace", "dev", "lo", "parent", "1:10", "handle", "10:", "pfifo", "limit",
       str(queue))
    if first:
        # Datagrams under 256 bytes (the browser's RTCP feedback, STUN) pass unshaped: on lo
        # both directions share one queue, and feedback stuck behind the media it reports
        # on is no real link's upstream.
        sh("tc", "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1",
           "u32", "match", "ip", "protocol", "17", "0xff", "match", "u16", "0x0000", "0xff00",
           "at", "2", "flowid", "1:20")
        sh("tc", "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "2",
           "u32", "match", "ip", "protocol", "17", "0xff", "flowid", "1:10")


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
    result = {"phases": {}}
    state_dir = os.path.join(workdir, "state")
    os.makedirs(state_dir)
    # stream2 small, cheap and with a keyframe every half second: a viewer moved down
    # because its link broke waits for stream2's next keyframe.
    seed_state(state_dir, {"resolution": "1280x720", "fps": 30, "stream1-bitrate": 1500,
                           "stream2-resolution": "320x180", "stream2-bitrate": 200,
                           "stream2-gop": 8})
    config = os.path.join(workdir, "rotordream.toml")
    with open(config, "w") as f:
        f.write('[webrtc]\naddresses = ["127.0.0.1"]\n')
    daemon = Daemon(state_dir, 18080, 18554, ["--config", config, "--motor", "none"])
    try:
        shape(FAST, 200, first=True)
        daemon.start()
        with Chromium() as browser:
            page = browser.open(daemon.http + "/api/info")
            result["session"] = sid = page.evaluate(PLAY, timeout=60)
            # Phase 1: a good link; the viewer starts on stream1 and stays there.
            samples_until(page, "fast", lambda s: len(s) >= 15, result, 60)
            shape(SLOW, SQUEEZE_QUEUE)
            result["squeezed_at"] = time.monotonic()
            samples_until(page, "squeeze", lambda s: len(s) >= 30, result, 90)
            shape(FAST, 200)
            samples_until(page, "recovered", lambda s: len(s) >= 10 and s[-1]["width"] == 1280
                          and len([x for x in s if x["width"] == 1280]) >= 5, result, 60)
            result["sessions"] = _sessions(daemon)
            result["mine"] = [s for s in result["sessions"] if s["id"] == sid]
            result["console"] = page.console
            result["exit_status"] = daemon.stop()
    except Exception:
        import traceback
        result["error"] = traceback.format_exc()
    finally:
        daemon.stop()
        result["daemon_log"] = daemon.log()[-8000:]
        result["tc"] = subprocess.run(["tc", "-s", "class", "show", "dev", "lo"],
                                      capture_output=True, text=True).stdout
        with open(result_path, "w") as f:
            json.dump(result, f, indent=1)


def _sessions(daemon):
    import requests
    reply = requests.get(daemon.http + "/api/webrtc/sessions",
                         auth=("admin", daemon.admin_password), timeout=10)
    return reply.json()["data"]["sessions"]


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
