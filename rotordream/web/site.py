"""The resource tree: one Site for REST (/api), WebSocket (/api/v1), ONVIF (/onvif), page (/)."""

import importlib

from twisted.logger import Logger
from twisted.web import resource, server, static

from rotordream.auth.ratelimit import RateLimiter
from rotordream.web.api import openapi, settings, system, users
from rotordream.web.api.base import ApiContext, ApiResource, NotFound
from rotordream.web.request import BodyLimits, BoundedRequest

log = Logger()

_PAGE = b"""<!doctype html><html><head><meta charset="utf-8"><title>RotorDream</title>
<meta name="viewport" content="width=device-width"></head>
<body><h1>RotorDream</h1>
<p><a href="/api/info">/api/info</a> &middot; <a href="/api/openapi.json">/api/openapi.json</a>
&middot; live: <a href="?stream=stream1">stream1</a> <a href="?stream=stream2">stream2</a></p>
<video id="video" autoplay muted playsinline style="max-width:100%;background:#000"></video>
<p id="status">connecting&hellip;</p>
<script>
// The API reference's WebRTC flow: the camera offers, the browser answers.
const status = document.getElementById("status");
const video = document.getElementById("video");
async function live(stream) {
  const response = await fetch("/api/webrtc/offer?stream=" + stream);
  const offer = await response.json();
  if (!response.ok) throw new Error(offer.error + " (" + offer.code + ")");
  window.rotordreamSession = offer.data.id;  // to switch streams or hang up
  const pc = new RTCPeerConnection({iceServers: []});
  pc.ontrack = (event) => {
    video.srcObject = event.streams[0] || new MediaStream([event.track]);
  };
  pc.onconnectionstatechange = () => { status.textContent = stream + ": " + pc.connectionState; };
  await pc.setRemoteDescription(offer);
  const answer = await pc.createAnswer();
  await pc.setLocalDescription(answer);
  const sent = await fetch("/api/webrtc/answer", {method: "POST", body: JSON.stringify(answer),
                                                  headers: {"Content-Type": "application/json"}});
  if (!sent.ok) throw new Error((await sent.json()).error);
  return pc;
}
const stream = new URLSearchParams(location.search).get("stream") || "stream1";
window.rotordream = live(stream).catch((e) => {
  status.textContent = "no live view: " + e.message;
  const img = document.createElement("img");
  img.src = "/api/snapshot"; img.alt = "latest snapshot"; img.style.maxWidth = "100%";
  video.replaceWith(img);
  throw e;
});
</script></body></html>"""


class ApiRoot(ApiResource):
    """/api itself: a JSON 404; its children are the nouns."""

    methods = {}

    def render(self, request):
        return NotFound(self.api).render(request)


def _optional(module, name):
    """A factory from a part that may be absent in this build (ModuleNotFoundError)."""
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as e:
        if not module.startswith(e.name or "\0"):
            raise
        return None


def build_api(ctx, secure=False):
    """The /api resource with every REST noun."""
    limiter = RateLimiter(ctx.config.http.rate_limit, ctx.config.http.rate_period, ctx.reactor)
    api = ApiContext(ctx, limiter, secure)
    root = ApiRoot(api)
    root.putChild(b"info", system.Info(api))
    root.putChild(b"health", system.Health(api))
    root.putChild(b"status", system.Status(api))
    camera = ApiRoot(api)
    camera.putChild(b"status", system.CameraStatus(api))
    root.putChild(b"camera", camera)
    root.putChild(b"streams", system.Streams(api))
    root.putChild(b"snapshot", system.Snapshot(api))
    root.putChild(b"settings", settings.Settings(api))
    root.putChild(b"login", users.Login(api))
    root.putChild(b"logout", users.Logout(api))
    root.putChild(b"users", users.Users(api))
    root.putChild(b"openapi.json", openapi.OpenAPI(api))
    recording = _optional("rotordream.recording.resource", "make_recording_resources")
    if recording is not None:
        for name, res in recording(ctx, api).items():
            root.putChild(name, res)
    webrtc = _optional("rotordream.webrtc.resource", "make_webrtc_resources")
    if webrtc is not None:
        for name, res in webrtc(ctx, api).items():
            root.putChild(name, res)
    websocket = _optional("rotordream.web.websocket", "make_websocket_resource")
    if websocket is not None:
        root.putChild(b"v1", websocket(ctx))
    return root


def make_site(ctx, secure=False):
    """The twisted.web Site serving everything on the HTTP port."""
    root = resource.Resource()
    root.putChild(b"", static.Data(_PAGE, "text/html; charset=utf-8"))
    root.putChild(b"api", build_api(ctx, secure))
    onvif = _optional("rotordream.onvif.resource", "make_onvif_resource")
    if onvif is not None:
        root.putChild(b"onvif", onvif(ctx))
    # Bodies are bounded per route while they arrive and kept in memory; no form
    # parsing (every endpoint takes JSON or SOAP).
    factory = BoundedRequest.with_limits(BodyLimits.from_config(ctx.config))
    site = server.Site(root, requestFactory=factory, parsePOSTFormSubmission=False)
    site.displayTracebacks = False
    if getattr(ctx, "rtsp", None) is not None:
        # RTSP over HTTP on this port too (ONVIF GetStreamUri with the HTTP transport).
        from rotordream.rtsp.http_tunnel import install
        install(site, ctx.rtsp)
    return site
