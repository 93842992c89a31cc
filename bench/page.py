"""The dashboard's weight and its time to the first live video frame after navigation.

    .venv/bin/python bench/page.py [--loads 10] [--resolution 1280x720]

A daemon (the built-in test pattern at 1280x720@30, rate limits off) serves the page at
/; headless Chromium loads it ``--loads`` times, each in a fresh browser context (empty
cache, as a first visit), and reports:

- page weight: the bytes the page itself fetched over HTTP (HTML, CSS, JS, the client),
  from Chromium's Network events (bodies and headers as sent, uncompressed here),
  excluding the API calls it makes and the video;
- time to first frame: from the start of navigation (performance.timeOrigin) to the first
  video frame the page presents (requestVideoFrameCallback), i.e. HTML, scripts, the
  WebRTC offer/answer, ICE on 127.0.0.1 and the first decoded picture. The callback is
  asked for at the load event: a frame shown before that counts as the next one, so a
  figure may be up to one frame interval (33 ms) high, never low.

WebRTC in Chromium offers candidates on every interface it sees, so the script re-runs
itself under ``unshare -n`` (as root, ``-rn`` otherwise): daemon and browser share a
network namespace whose only link is ``lo`` and nothing leaves the machine.
Targets (the dashboard issue): page under 300 KB, first frame under 1 s.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

FIRST_FRAME = """new Promise((resolve) => {
  const video = document.getElementById("live");
  video.requestVideoFrameCallback(() => resolve(performance.now()));
})"""

# Static files of the page (the API calls and the video are not page weight).
STATIC = ("/", "/ui/", "/client/")


def static(url, base):
    path = url[len(base):].split("?")[0]
    return path == "/" or path.startswith(STATIC[1:])


def measure(loads, resolution):
    """Run inside the namespace: the figures of ``loads`` page loads."""
    from bench._daemon import NO_LIMITS, BenchDaemon
    from tests.dashboard.netns_dashboard import context_page
    from tests.support.chromium import Chromium
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    daemon = BenchDaemon(NO_LIMITS + '[webrtc]\naddresses = ["127.0.0.1"]\n',
                         settings={"resolution": resolution, "fps": 30})
    runs = []
    try:
        with Chromium() as browser:
            for _ in range(loads):
                page = context_page(browser, "about:blank")
                page.call("Network.enable")
                page.call("Network.setCacheDisabled", {"cacheDisabled": True})
                page.navigate(daemon.http + "/")
                first_ms = page.evaluate(FIRST_FRAME, timeout=30)
                urls = {}
                for e in page.events:
                    params = e.get("params", {})
                    if e["method"] == "Network.responseReceived":
                        urls[params["requestId"]] = params["response"]["url"]
                weight, files = 0, {}
                for e in page.events:
                    params = e.get("params", {})
                    if e["method"] == "Network.loadingFinished":
                        url = urls.get(params["requestId"], "")
                        if static(url, daemon.http):
                            weight += params["encodedDataLength"]
                            files[url[len(daemon.http):]] = params["encodedDataLength"]
                runs.append({"first_frame_ms": first_ms, "bytes": weight, "files": files,
                             "console": [c for c in page.console
                                         if c.startswith(("error", "uncaught"))]})
                page.evaluate("window.dashboard.view && window.dashboard.view.close()"
                              ".then(() => true)")
                page.close()
    finally:
        daemon.stop()
    return runs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loads", type=int, default=10)
    ap.add_argument("--resolution", default="1280x720")
    ap.add_argument("--inside", help=argparse.SUPPRESS)  # the namespace run's result file
    args = ap.parse_args()
    if args.inside:
        with open(args.inside, "w") as f:
            json.dump(measure(args.loads, args.resolution), f)
        return
    import tempfile
    out = os.path.join(tempfile.mkdtemp(prefix="rd-page-"), "runs.json")
    prefix = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-r", "-n"]
    subprocess.run(prefix + [sys.executable, os.path.abspath(__file__), "--loads",
                             str(args.loads), "--resolution", args.resolution,
                             "--inside", out], check=True)
    with open(out) as f:
        runs = json.load(f)
    firsts = sorted(r["first_frame_ms"] for r in runs)
    print("page weight: %d bytes (%.1f KB) in %d files: %s" % (
        runs[0]["bytes"], runs[0]["bytes"] / 1024, len(runs[0]["files"]),
        ", ".join("%s %d" % kv for kv in sorted(runs[0]["files"].items()))))
    print("first video frame after navigation, %d loads: median %.0f ms, min %.0f ms, "
          "max %.0f ms" % (len(runs), statistics.median(firsts), firsts[0], firsts[-1]))
    errors = [c for r in runs for c in r["console"]]
    print("console errors: %d%s" % (len(errors), (" " + repr(errors[:3])) if errors else ""))


if __name__ == "__main__":
    main()
