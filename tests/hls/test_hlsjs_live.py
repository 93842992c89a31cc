"""hls.js in headless Chromium plays the Low-Latency playlist from a page on another origin;
end-to-end latency (wall clock now minus the PROGRAM-DATE-TIME of what is on screen, i.e.
since capture) stays under 2 s with 200 ms parts.

hls.js comes from npm at test time (``npm install hls.js@HLSJS_VERSION`` into
``~/.cache/rotordream-tests``, once) and is served with the page by a local HTTP server.
"""

import functools
import http.server
import os
import statistics
import subprocess
import threading

import pytest

from tests.conftest import make_daemon, require_tool

HLSJS_VERSION = "1.7.4"
SETTLE = 8          # samples (of 250 ms) before hls.js has sought to its start position
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "rotordream-tests",
                     "hls.js-" + HLSJS_VERSION)
PAGE = """<!doctype html><meta charset="utf-8"><title>hls.js</title>
<video muted playsinline width="320"></video><script src="hls.js"></script>"""
PLAY = """new Promise((resolve, reject) => {
  const video = document.querySelector("video");
  if (!Hls.isSupported()) { reject(new Error("hls.js: MSE unsupported")); return; }
  // As LL players are set up: after a stall (this shared machine's CPU can be busy), play a
  // little faster until back at the target latency, and keep that target (hls.js otherwise
  // adds 1 s per stall). With hls.js's defaults it plays as close (docs/lessons.md).
  const hls = new Hls({lowLatencyMode: true, maxLiveSyncPlaybackRate: 1.5,
                       liveSyncOnStallIncrease: 0});
  hls.on(Hls.Events.ERROR, (e, d) => { if (d.fatal) reject(new Error(d.type + " " + d.details)); });
  const loads = {};   // how often each part was loaded: once, unless hls.js loops on a segment
  hls.on(Hls.Events.FRAG_LOADED, (e, d) => {
    const key = d.frag.sn + "." + (d.part ? d.part.index : "-");
    loads[key] = (loads[key] || 0) + 1;
  });
  hls.loadSource(%(url)r);
  hls.attachMedia(video);
  video.play().catch(() => {});
  const started = Date.now(), samples = [];
  const timer = setInterval(() => {
    if (video.currentTime > 0 && hls.playingDate) {
      samples.push((Date.now() - hls.playingDate.getTime()) / 1000);
    }
    if (samples.length >= 60) {
      clearInterval(timer);
      resolve({samples, width: video.videoWidth, height: video.videoHeight,
               reloads: Object.values(loads).reduce((n, c) => n + c - 1, 0),
               frames: video.getVideoPlaybackQuality().totalVideoFrames,
               parts: hls.latestLevelDetails ? hls.latestLevelDetails.partList.length : 0});
    } else if (Date.now() - started > 50000) {
      clearInterval(timer);
      reject(new Error("no playback: " + JSON.stringify({t: video.currentTime, samples})));
    }
  }, 250);
})"""


def hlsjs():
    """The path of hls.min.js, installed with npm into the cache once."""
    target = os.path.join(CACHE, "node_modules", "hls.js", "dist", "hls.min.js")
    if not os.path.exists(target):
        npm = require_tool("npm", "hls.js is fetched with npm")
        os.makedirs(CACHE, exist_ok=True)
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", CACHE,
                        "hls.js@" + HLSJS_VERSION], check=True, capture_output=True,
                       timeout=300)
    return target


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def page_server(tmp_path):
    """A local HTTP server (another origin than the camera) serving the page and hls.js."""
    with open(hlsjs(), "rb") as f:
        (tmp_path / "hls.js").write_bytes(f.read())
    (tmp_path / "index.html").write_text(PAGE)
    handler = functools.partial(_Quiet, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d/index.html" % server.server_address[1]
    server.shutdown()
    server.server_close()


def test_hlsjs_plays_low_latency_under_2_s(tmp_path_factory, page_server):
    require_tool("chromium")
    from tests.support.chromium import Chromium
    camera = make_daemon(tmp_path_factory, settings={"resolution": "640x360", "fps": 30})
    try:
        with Chromium() as browser:
            page = browser.open(page_server)
            result = page.evaluate(PLAY % {"url": camera.http + "/hls/stream1/index.m3u8"},
                                   timeout=70)
    finally:
        camera.stop()
    assert (result["width"], result["height"]) == (640, 360)
    assert result["frames"] > 100 and result["parts"] > 0, result
    # The first 2 s are hls.js finding its start: it plays the first part it has, then seeks
    # to PART-HOLD-BACK from the live edge. From then on every sample counts.
    settled = result["samples"][SETTLE:]
    print("hls.js latency: median %.2f s, max %.2f s, %d parts loaded more than once"
          % (statistics.median(settled), max(settled), result["reloads"]))
    assert max(settled) < 2.0, result
