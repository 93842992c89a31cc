"""The resource tree: one Site for REST (/api), WebSocket (/api/v1), ONVIF (/onvif), the page
(/) and the JavaScript client (/client/rotordream.js).

Every HTTP resource of the daemon is under :mod:`rotordream.web`; a part that is
off (no recorder, WebRTC disabled) simply has no resources mounted.
"""

import os

from autobahn.twisted.resource import WebSocketResource
from twisted.logger import Logger
from twisted.web import resource, server, static

from rotordream.auth.ratelimit import RateLimiter
from rotordream.rtsp.http_tunnel import install as install_rtsp_tunnel
from rotordream.web.api import openapi, recordings, settings, system, users, webrtc
from rotordream.web.api.base import ApiContext, ApiResource, NotFound
from rotordream.web.request import BodyLimits, BoundedRequest

log = Logger()

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")


class ApiRoot(ApiResource):
    """/api itself: a JSON 404; its children are the nouns."""

    methods = {}

    def render(self, request):
        return NotFound(self.api).render(request)


def build_api(ctx):
    """The /api resource with every REST noun."""
    limiter = RateLimiter(ctx.config.http.rate_limit, ctx.config.http.rate_period, ctx.reactor)
    api = ApiContext(ctx, limiter)
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
    root.putChild(b"openapi.json", openapi.OpenAPI(api, root))
    if ctx.recorder is not None:
        root.putChild(b"recording", recordings.RecordingRoot(api))
        root.putChild(b"recordings", recordings.Recordings(api))
    if ctx.webrtc is not None:
        root.putChild(b"webrtc", webrtc.WebRTCRoot(api))
    root.putChild(b"v1", WebSocketResource(ctx.websocket))
    return root


def make_site(ctx, onvif):
    """The twisted.web Site serving everything on the HTTP port; ``onvif`` is the /onvif
    resource (:func:`rotordream.onvif.resource.make_onvif_resource`)."""
    root = resource.Resource()
    root.putChild(b"", static.File(os.path.join(STATIC, "index.html"),
                                   defaultType="text/html; charset=utf-8"))
    client = resource.Resource()   # no directory listing: the one file only
    client.putChild(b"rotordream.js", static.File(os.path.join(STATIC, "client", "rotordream.js"),
                                                  defaultType="text/javascript; charset=utf-8"))
    root.putChild(b"client", client)
    root.putChild(b"api", build_api(ctx))
    root.putChild(b"onvif", onvif)
    # Bodies are bounded per route while they arrive and kept in memory; no form
    # parsing (every endpoint takes JSON or SOAP).
    factory = BoundedRequest.with_limits(BodyLimits.from_config(ctx.config))
    site = server.Site(root, requestFactory=factory, parsePOSTFormSubmission=False)
    site.displayTracebacks = False
    if ctx.rtsp is not None:
        # RTSP over HTTP on this port too (ONVIF GetStreamUri with the HTTP transport).
        install_rtsp_tunnel(site, ctx.rtsp)
    return site
