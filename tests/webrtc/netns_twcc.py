"""Run inside ``unshare -n``: headless Chromium watches the live view with ``[webrtc]
transport_cc = true``; records the SDP both ways, the page's stats and the session listing.

Started by tests/webrtc/test_twcc_chromium.py as ``unshare -n python THIS RESULT.json WORKDIR``.
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from tests.support.chromium import Chromium  # noqa: E402
from tests.support.netns import admin_get, finish, only_loopback, viewer_daemon  # noqa: E402
from tests.support.netns_chromium import WATCH  # noqa: E402

# The page's peer connection: both descriptions and what its inbound video stats say.
LOOK = """(async () => {
  const pc = await window.rotordream;
  const out = {offer: pc.remoteDescription.sdp, answer: pc.localDescription.sdp,
               session: window.rotordreamSession};
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") {
      out.frames_decoded = s.framesDecoded; out.packets_lost = s.packetsLost;
      out.freeze_s = s.totalFreezesDuration; out.fps = s.framesPerSecond;
    }
    if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded")
      out.outgoing_bitrate = s.availableOutgoingBitrate;
  });
  return out;
})()"""


def main(result_path, workdir):
    only_loopback()
    result = {}
    daemon = viewer_daemon(workdir, '[webrtc]\naddresses = ["127.0.0.1"]\ntransport_cc = true\n',
                           ["--motor", "none"])
    try:
        daemon.start()
        with Chromium() as browser:
            page = browser.open(daemon.http + "/?stream=stream1")
            result["watch"] = page.evaluate(WATCH % 90, timeout=60)
            # Let the estimate settle: feedback comes every ~100 ms, it ramps at 8 %/s.
            samples = []
            for _ in range(8):
                time.sleep(1)
                listing = admin_get(daemon, "/api/webrtc/sessions")["sessions"]
                samples.append(listing)
            result["samples"] = samples
            result["streams"] = admin_get(daemon, "/api/streams")
            result["look"] = page.evaluate(LOOK, timeout=30)
            result["console"] = page.console
            page.evaluate("window.rotordream.then((pc) => pc.close())")
            page.close()
            result["exit_status"] = daemon.stop()
    finally:
        finish(result_path, result, daemon)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
