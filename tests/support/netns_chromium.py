"""Run inside ``unshare -n``: headless Chromium watches the daemon's live view over WebRTC.

Started by tests/webrtc/test_chromium.py as ``unshare -n python THIS RESULT.json WORKDIR``.
Chromium offers ICE candidates on every interface it finds (given media
permission), so the whole run happens in a namespace whose only link is
``lo``: then 127.0.0.1 is all either side can offer and nothing leaves the
machine. It records what the page and the daemon saw into RESULT.json; the
pytest side asserts on it.
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from tests.support.chromium import Chromium  # noqa: E402
from tests.support.netns import admin_get, finish, only_loopback, viewer_daemon  # noqa: E402

# In the page: once the live view's peer connection exists, count presented frames
# with requestVideoFrameCallback and report size, timing and the chosen ICE pair.
WATCH = """(async () => {
  const started = performance.now();
  const pc = await window.rotordream;
  const video = document.getElementById("live") || document.getElementById("video");
  const wanted = %d;
  let first = null, frames = 0;
  await new Promise((resolve) => {
    const onFrame = () => {
      frames += 1;
      if (first === null) first = performance.now() - started;
      if (frames >= wanted) resolve(); else video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  });
  const pairs = [], candidates = {};
  (await pc.getStats()).forEach((s) => {
    if (s.type === "candidate-pair" && s.nominated) pairs.push(s);
    if (s.type === "local-candidate" || s.type === "remote-candidate") candidates[s.id] = s;
  });
  const pair = pairs.find((p) => p.state === "succeeded") || pairs[0];
  const quality = video.getVideoPlaybackQuality();
  return {width: video.videoWidth, height: video.videoHeight, frames: frames, first_ms: first,
          state: pc.connectionState, decoded: quality.totalVideoFrames,
          dropped: quality.droppedVideoFrames,
          local: candidates[pair.localCandidateId].address,
          remote: candidates[pair.remoteCandidateId].address,
          codec: [...(await pc.getStats()).values()].filter((s) => s.type === "codec")
                   .map((s) => s.mimeType + " " + (s.sdpFmtpLine || ""))};
})()"""

# The API reference's browser code as written (its public STUN server cannot be
# reached from this namespace: the camera's 127.0.0.1 host candidate is enough).
# It sets ontrack only after setRemoteDescription, when Chromium has already
# fired the track event, so the receiver's track is shown here by hand; the
# page's own code sets ontrack first. It runs on a page of the camera's origin
# that starts no live view of its own (/api/info), in a <video id="video"> made here.
REFERENCE = """(async () => {
const element = document.createElement('video');
element.id = 'video'; element.muted = true; element.autoplay = true;
document.body.appendChild(element);
const response = await fetch('/api/webrtc/offer');
const offer = await response.json();
const pc = new RTCPeerConnection({
iceServers: [{ urls: 'stun:stun.l.google.com:19302' }]
});
await pc.setRemoteDescription(offer);
const answer = await pc.createAnswer();
await pc.setLocalDescription(answer);
await fetch('/api/webrtc/answer', {
method: 'POST',
body: JSON.stringify(answer)
});
pc.ontrack = (event) => {
document.getElementById('video').srcObject = event.streams[0];
};
const video = document.getElementById('video');
const ontrack_worked = video.srcObject !== null;
video.srcObject = new MediaStream([pc.getReceivers()[0].track]);
window.rotordream = Promise.resolve(pc);
return {ontrack_worked: ontrack_worked, signaling: pc.signalingState};
})()"""


# PATCH the page's own session over to stream2, as a quality switch in a page would.
SWITCH = """fetch("/api/webrtc/sessions/" + window.rotordreamSession, {method: "PATCH",
  body: JSON.stringify({stream: "stream2"})}).then((r) => r.json())"""

# Wait for the picture to become stream2's size, then for frames to go on at that size.
SHRUNK = """new Promise((resolve) => {
  const video = document.getElementById("live") || document.getElementById("video");
  const started = performance.now();
  let frames = 0, switched = null;
  const onFrame = (now, meta) => {
    if (meta.width === %d) {
      if (switched === null) switched = performance.now() - started;
      frames += 1;
    }
    if (frames >= 15) resolve({switched_ms: switched, frames: frames,
                               width: video.videoWidth, height: video.videoHeight});
    else video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
})"""


def main(result_path, workdir):
    only_loopback()
    result = {}
    daemon = viewer_daemon(workdir, '[webrtc]\naddresses = ["127.0.0.1"]\n', ["--motor", "none"])
    try:
        daemon.start()
        with Chromium() as browser:
            page = browser.open(daemon.http + "/?stream=stream1")
            result["stream1"] = page.evaluate(WATCH % 90, timeout=60)
            page2 = browser.open(daemon.http + "/?stream=stream2")
            result["stream2"] = page2.evaluate(WATCH % 30, timeout=60)
            result["sessions"] = admin_get(daemon, "/api/webrtc/sessions")["sessions"]
            page3 = browser.open(daemon.http + "/api/info")
            try:
                result["reference_state"] = page3.evaluate(REFERENCE, timeout=60)
                result["reference"] = page3.evaluate(WATCH % 30, timeout=60)
            except Exception as e:  # the other results still count; the test shows this
                result["reference_error"] = repr(e)
            result["console"] = page.console + page2.console + page3.console
            for p in (page, page2, page3):
                p.evaluate("window.rotordream.then((pc) => pc.close())")
                p.close()
            # A viewer switched to stream2 by its own page, without renegotiating.
            page4 = browser.open(daemon.http + "/?stream=stream1")
            result["switch_before"] = page4.evaluate(WATCH % 30, timeout=60)
            result["switch_id"] = sid = page4.evaluate("window.rotordreamSession")
            # Chromium's first bandwidth estimate (REMB) comes a few seconds in.
            daemon.wait_output(lambda out: any(sid + ": first bandwidth estimate" in line
                                               for line in out), timeout=30)
            result["switch_sessions"] = admin_get(daemon, "/api/webrtc/sessions")["sessions"]
            result["switch_reply"] = page4.evaluate(SWITCH)
            try:
                result["switch_after"] = page4.evaluate(SHRUNK % 320, timeout=60)
            except Exception as e:
                result["switch_error"] = repr(e)
            result["console"] += page4.console
            t = time.monotonic()
            result["exit_status"] = daemon.stop()
            result["stop_seconds"] = time.monotonic() - t
    finally:
        finish(result_path, result, daemon)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
