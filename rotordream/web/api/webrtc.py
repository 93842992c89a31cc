"""REST for WebRTC: /api/webrtc/offer, /api/webrtc/answer, /api/webrtc/sessions[/<id>],
and WHEP at /api/webrtc/whep.

The API reference's browser code works as written: the offer's JSON is both
our envelope and an RTCSessionDescriptionInit (``type`` and ``sdp`` at the
top), and the answer it posts back carries no id: it goes to the newest offer
waiting under the viewer-key cookie (HttpOnly, SameSite=Strict) every offer
sets. Scripts may name the session instead (``id`` in the body or ``?id=``).

That cookie is also what makes an anonymous viewer the owner of its sessions
(with its source address; see :mod:`rotordream.webrtc.access`): anonymous
scripts keep it in a cookie jar (``curl -c/-b``, ``requests.Session``) to answer,
switch or hang up.

WHEP (draft-ietf-wish-whep): ``POST /api/webrtc/whep?stream=`` of an
``application/sdp`` offer answers ``201 Created`` with the answer as
``application/sdp``, ``Location`` of the session resource
``/api/webrtc/whep/<secret>`` and the ICE servers as ``Link: rel="ice-server"``
headers; ``DELETE`` on that location ends the session (the secret name is the
capability, as WHEP players keep no cookies); ``PATCH`` (trickle ICE, ICE
restart) is not offered: 405. ``OPTIONS`` answers with ``Accept-Post`` and,
for a configured origin, the CORS headers.
"""

import re

from rotordream.auth import roles
from rotordream.web.api.base import (ApiError, ApiResource, Raw, client_key, envelope,
                                     read_json)
from rotordream.web.api.schema import VIEWER, Route
from rotordream.webrtc import ice
from rotordream.webrtc.access import Caller

COOKIE = b"rotordream_webrtc"
SDP_TYPE = b"application/sdp"
WHEP_PATH = "/api/webrtc/whep"
SDP_START = re.compile(r"v=0\r?\n")
STREAMS = ("stream1", "stream2")
CHOICES = STREAMS + ("auto",)   # auto: the viewer's bandwidth estimate chooses


def _description_schema(kind):
    return {"type": "object", "required": ["type", "sdp"],
            "properties": {"type": {"const": kind},
                           "sdp": {"type": "string", "pattern": "^v=0\\r?\\n"},
                           "id": {"type": "string"}}}



SWITCH_BODY = {"type": "object", "required": ["stream"], "additionalProperties": False,
               "properties": {"stream": {"enum": list(CHOICES)}}}


def _description(request, kind):
    """The SDP of a JSON session description of ``kind`` in the body, and its ``id``."""
    body = read_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a session description: {\"type\", \"sdp\"}")
    if body.get("type") != kind:
        raise ApiError(400, "type must be %r" % kind, key="type")
    sdp = body.get("sdp")
    if not isinstance(sdp, str) or not SDP_START.match(sdp):
        raise ApiError(400, "sdp must be an SDP text starting with a v=0 line", key="sdp")
    sid = body.get("id")
    if sid is not None and not isinstance(sid, str):
        raise ApiError(400, "id must be a string", key="id")
    return sdp, sid


def _stream(request):
    raw = request.args.get(b"stream", [b"stream1"])[0].decode("utf-8", "replace")
    if raw not in CHOICES:
        raise ApiError(400, "stream must be one of %s" % ", ".join(CHOICES), key="stream",
                       allowed=list(CHOICES))
    return raw


def _caller(request, principal):
    """Who asks: the principal, its source address and the viewer key it presented."""
    return Caller(principal, client_key(request), _cookie(request))


def _with_description(result):
    """The envelope with ``type`` and ``sdp`` also at the top (RTCSessionDescriptionInit)."""
    return envelope(result, type=result["type"], sdp=result["sdp"])


class Offer(ApiResource):
    """GET: the camera offers. POST: the viewer offers and gets the answer."""

    routes = (
        Route("/api/webrtc/offer", "get", "The camera's SDP offer for a live view (?stream=stream1|"
              "stream2|auto; auto follows the viewer's bandwidth) and the ICE servers to use; "
              "also sets the session cookie the answer is matched by", VIEWER),
        Route("/api/webrtc/offer", "post", "Answer a viewer's SDP offer (?stream=); WHEP-style",
              VIEWER, body=_description_schema("offer")),
    )

    isLeaf = True
    methods = {"GET": ("get", roles.STREAM_WATCH), "POST": ("post", roles.STREAM_WATCH)}

    def get(self, request, principal):
        if request.method == b"HEAD":
            # A HEAD must not leave a peer connection behind.
            raise ApiError(405, "HEAD is not allowed here", headers={b"allow": b"GET, POST"},
                           allowed=["GET", "POST"])
        return self.ctx.webrtc.offer(_stream(request), _caller(request, principal)) \
            .addCallback(self._opened, request)

    def post(self, request, principal):
        stream = _stream(request)
        sdp, _ = _description(request, "offer")
        return self.ctx.webrtc.accept(stream, sdp, _caller(request, principal)) \
            .addCallback(self._opened, request)

    def _opened(self, result, request):
        # The viewer key goes to the opener's cookie only, never into a body page
        # scripts can read.
        _set_cookie(request, result.pop("key"))
        result.pop("resource", None)
        # A browser's RTCPeerConnection for this offer needs them (TURN credentials).
        result["ice_servers"] = self.ctx.webrtc.ice_servers()
        return _with_description(result)


def _set_cookie(request, key):
    request.addCookie(COOKIE, key.encode(), path=b"/api/webrtc", httpOnly=True,
                      sameSite="strict", secure=request.isSecure())


class Answer(ApiResource):
    """POST the browser's answer to the camera's offer."""

    routes = (
        Route("/api/webrtc/answer", "post", "The browser's SDP answer to the camera's offer",
              VIEWER, body=_description_schema("answer")),
    )

    isLeaf = True
    methods = {"POST": ("post", roles.STREAM_WATCH)}

    def post(self, request, principal):
        sdp, sid = _description(request, "answer")
        sid = sid or _arg(request, b"id")
        caller = _caller(request, principal)
        if not sid and not caller.key:
            raise ApiError(400, "which session? send the offer's id (body or ?id=) or its "
                                "cookie", key="id")
        return self.ctx.webrtc.answer(sid or None, sdp, caller)


def _arg(request, name):
    raw = request.args.get(name, [None])[0]
    return raw.decode("utf-8", "replace") if raw else None


def _cookie(request):
    raw = request.getCookie(COOKIE)
    return raw.decode("utf-8", "replace") if raw else None


class Sessions(ApiResource):
    """GET the list: operators and admins see every session, a user their own, an
    anonymous client those opened with its viewer key from its address."""

    routes = (
        Route("/api/webrtc/sessions", "get", "WebRTC sessions: id, stream, user, state (operators "
              "see all and their client addresses, others their own)", VIEWER),
    )

    methods = {"GET": ("get", roles.STREAM_WATCH)}

    def get(self, request, principal):
        return {"sessions": self.ctx.webrtc.visible(_caller(request, principal)),
                "max_sessions": self.ctx.config.webrtc.max_sessions}

    def getChild(self, name, request):
        return OneSession(self.api, name.decode("utf-8", "replace"))


class OneSession(ApiResource):
    """DELETE /api/webrtc/sessions/<id>: hang up. PATCH {"stream": ...}: switch streams."""

    routes = (
        Route("/api/webrtc/sessions/{id}", "delete", "End a WebRTC session (its opener, an operator "
              "or an admin)", VIEWER),
        Route("/api/webrtc/sessions/{id}", "patch", "Switch a session to the other stream from its "
              "next keyframe, without renegotiating", VIEWER, body=SWITCH_BODY),
    )

    isLeaf = True
    methods = {"DELETE": ("delete", roles.STREAM_WATCH), "PATCH": ("patch", roles.STREAM_WATCH)}

    def __init__(self, api, sid):
        super().__init__(api)
        self.sid = sid

    def delete(self, request, principal):
        if request.postpath:
            raise ApiError(404, "no WebRTC session %r" % self.sid)
        return self.ctx.webrtc.hang_up(self.sid, _caller(request, principal)).addCallback(
            lambda _: {"ended": self.sid})

    def patch(self, request, principal):
        if request.postpath:
            raise ApiError(404, "no WebRTC session %r" % self.sid)
        body = read_json(request)
        if not isinstance(body, dict) or set(body) != {"stream"} or body["stream"] not in CHOICES:
            raise ApiError(400, "the body must be {\"stream\": one of %s}" % ", ".join(CHOICES),
                           key="stream", allowed=list(CHOICES))
        return self.ctx.webrtc.switch(self.sid, body["stream"], _caller(request, principal))


class _Whep(ApiResource):
    """What the WHEP endpoint and its session resources share: OPTIONS and CORS."""

    accept_post = False

    def render(self, request):
        """OPTIONS as WHEP asks (``Accept-Post``, CORS for configured origins); the rest as
        every API call."""
        if request.method != b"OPTIONS":
            return super().render(request)
        allow = ", ".join(sorted(set(self.methods) | {"OPTIONS"})).encode()
        request.setResponseCode(200)
        request.setHeader(b"allow", allow)
        if self.accept_post:
            request.setHeader(b"accept-post", SDP_TYPE)
        if self._cors(request) and request.getHeader(b"access-control-request-method"):
            request.setHeader(b"access-control-allow-methods", allow)
            request.setHeader(b"access-control-allow-headers",
                              b"authorization, content-type, if-match, x-requested-with")
            request.setHeader(b"access-control-max-age", b"600")
        request.setHeader(b"content-length", b"0")
        return b""

    def _finish(self, request, result):
        if request.getHeader(b"origin") and self._cors(request):
            request.setHeader(b"access-control-expose-headers", b"Location, Link")
        return super()._finish(request, result)


class WhepEndpoint(_Whep):
    """POST /api/webrtc/whep: a WHEP player's offer in, the answer and its resource out."""

    routes = (
        Route(WHEP_PATH, "post", "WHEP: an application/sdp offer (?stream=stream1|stream2|"
              "auto); 201 with the application/sdp answer, Location of the session resource and "
              "Link rel=ice-server headers", VIEWER, status=201, media="application/sdp",
              query={"stream": {"enum": list(CHOICES)}}),
    )

    isLeaf = False
    accept_post = True
    methods = {"POST": ("post", roles.STREAM_WATCH)}

    def _precheck(self, request):
        if request.method == b"POST" and _media_type(request) not in (SDP_TYPE, b""):
            raise ApiError(415, "a WHEP offer is application/sdp", allowed=["application/sdp"])
        try:
            return super()._precheck(request)
        except ApiError as e:
            # application/sdp is no JSON, but no CORS-safelisted type either: a page of
            # another origin cannot send it without asking first (the JSON case).
            if e.status == 415 and request.method == b"POST":
                return "POST", self.methods["POST"]
            raise

    def post(self, request, principal):
        stream = _stream(request)
        sdp = request.content.read().decode("utf-8", "replace")
        if not SDP_START.match(sdp):
            raise ApiError(400, "the body must be an SDP offer starting with a v=0 line")
        return self.ctx.webrtc.accept(stream, sdp, _caller(request, principal)) \
            .addCallback(self._answered, request)

    def _answered(self, result, request):
        _set_cookie(request, result["key"])
        headers = {b"location": ("%s/%s" % (WHEP_PATH, result["resource"])).encode()}
        links = ice.link_headers(self.ctx.webrtc.ice_servers())
        if links:
            headers[b"link"] = b", ".join(v.encode() for v in links)
        return Raw(result["sdp"].encode(), SDP_TYPE, headers)

    def _respond(self, request, result):
        body = super()._respond(request, result)
        if isinstance(result, Raw):
            request.setResponseCode(201)
        return body

    def getChild(self, name, request):
        return WhepSession(self.api, name.decode("utf-8", "replace"))


class WhepSession(_Whep):
    """DELETE /api/webrtc/whep/<resource>: end that WHEP session."""

    routes = (
        Route(WHEP_PATH + "/{resource}", "delete", "WHEP: end the session of this session "
              "resource (the Location a WHEP POST answered with)", VIEWER),
    )

    isLeaf = True
    methods = {"DELETE": ("delete", roles.STREAM_WATCH)}

    def __init__(self, api, resource):
        super().__init__(api)
        self.resource = resource

    def delete(self, request, principal):
        if request.postpath:
            raise ApiError(404, "no such WHEP session")
        return self.ctx.webrtc.end_resource(self.resource, _caller(request, principal)) \
            .addCallback(lambda sid: {"ended": sid})


def _media_type(request):
    raw = request.getHeader(b"content-type") or b""
    return raw.split(b";")[0].strip().lower()


class WebRTCRoot(ApiResource):
    """/api/webrtc."""

    def __init__(self, api):
        super().__init__(api)
        self.putChild(b"offer", Offer(api))
        self.putChild(b"answer", Answer(api))
        self.putChild(b"sessions", Sessions(api))
        self.putChild(b"whep", WhepEndpoint(api))


# The classes made per request, for the OpenAPI document.
Sessions.child_classes = (OneSession,)
WhepEndpoint.child_classes = (WhepSession,)
