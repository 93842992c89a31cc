"""The resource tree: one Site for REST (/api), WebSocket (/api/v1), ONVIF (/onvif), the page
(/), the JavaScript client (/client/rotordream.js) and Prometheus metrics (/metrics).

Every HTTP resource of the daemon is under :mod:`rotordream.web`; a part that is
off (no recorder, WebRTC disabled) simply has no resources mounted.
"""

import os

from autobahn.twisted.resource import WebSocketResource
from twisted.logger import Logger
from twisted.web import resource, server, static

from rotordream.auth.ratelimit import RateLimiter
from rotordream.rtsp.http_tunnel import install as install_rtsp_tunnel
from rotordream.web.api import openapi, ptz, push as push_api, recordings, settings, system, \
    users, webrtc
from rotordream.web.api.base import ApiContext, ApiResource, NotFound
from rotordream.web.hls import make_hls_resource
from rotordream.web.metrics import MetricsResource, make_registry
from rotordream.web.request import BodyLimits, BoundedRequest

log = Logger()

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")


class Assets(static.File):
    """The page's own files (scripts, styles, icons) under /ui/: files only, no listing."""

    def directoryListing(self):
        """A directory is not found (no listing of what the camera ships)."""
        return resource.NoResource()


class ApiRoot(ApiResource):
    """/api itself: a JSON 404; its children are the nouns."""

    methods = {}

    def render(self, request):
        return NotFound(self.api).render(request)


class CountingSite(server.Site):
    """A Site that counts every answered request by method and status code."""

    def __init__(self, resource, counts, **kwargs):
        super().__init__(resource, **kwargs)
        self.counts = counts

    def log(self, request):
        """Count the request, then log it as Site does."""
        self.counts.request(request.method.decode("ascii", "replace"), request.code)
        super().log(request)


def build_api(ctx, http_counts=None, push=None):
    """The /api resource with every REST noun (its rate limiter joins ``http_counts``;
    ``push`` is the RTSP push service, None: no /api/push)."""
    limiter = RateLimiter(ctx.config.http.rate_limit, ctx.config.http.rate_period, ctx.reactor)
    if http_counts is not None:
        http_counts.limiters.append(limiter)
    api = ApiContext(ctx, limiter)
    root = ApiRoot(api)
    root.putChild(b"info", system.Info(api))
    root.putChild(b"health", system.Health(api))
    root.putChild(b"status", system.Status(api, push))
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
    if ctx.motor is not None:
        root.putChild(b"ptz", ptz.Ptz(api))
    if push is not None:
        root.putChild(b"push", push_api.PushRoot(api, push))
    root.putChild(b"v1", WebSocketResource(ctx.websocket))
    return root


def make_site(ctx, onvif, metrics=None, push=None, hls=None):
    """The twisted.web Site serving everything on the HTTP port; ``onvif`` is the /onvif
    resource (:func:`rotordream.onvif.resource.make_onvif_resource`), ``metrics`` the
    :class:`rotordream.web.metrics.DaemonCollector` served at /metrics (None: no /metrics),
    ``push`` the :class:`rotordream.push.service.PushService` behind /api/push, ``hls``
    the :class:`rotordream.hls.service.HlsService` behind /hls (None: no /hls)."""
    root = resource.Resource()
    root.putChild(b"", static.File(os.path.join(STATIC, "index.html"),
                                   defaultType="text/html; charset=utf-8"))
    client = resource.Resource()   # no directory listing: the one file only
    client.putChild(b"rotordream.js", static.File(os.path.join(STATIC, "client", "rotordream.js"),
                                                  defaultType="text/javascript; charset=utf-8"))
    root.putChild(b"client", client)
    root.putChild(b"ui", Assets(os.path.join(STATIC, "ui")))
    api = build_api(ctx, metrics.http if metrics is not None else None, push)
    root.putChild(b"api", api)
    root.putChild(b"onvif", onvif)
    if hls is not None:
        root.putChild(b"hls", make_hls_resource(ctx, hls))
    if metrics is not None:
        root.putChild(b"metrics", MetricsResource(api.api, make_registry(metrics),
                                                  public=ctx.config.metrics.public))
    # Bodies are bounded per route while they arrive and kept in memory; no form
    # parsing (every endpoint takes JSON or SOAP).
    factory = BoundedRequest.with_limits(BodyLimits.from_config(ctx.config))
    if metrics is not None:
        site = CountingSite(root, metrics.http, requestFactory=factory,
                            parsePOSTFormSubmission=False)
    else:
        site = server.Site(root, requestFactory=factory, parsePOSTFormSubmission=False)
    site.displayTracebacks = False
    if ctx.rtsp is not None:
        # RTSP over HTTP on this port too (ONVIF GetStreamUri with the HTTP transport).
        install_rtsp_tunnel(site, ctx.rtsp)
    return site
