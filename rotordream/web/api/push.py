"""REST for RTSP push: GET/POST /api/push and DELETE /api/push/<id> (operators).

Targets from the config's ``[[push]]`` tables and those added here are listed
together, each with its state, bytes sent, reconnect count and last error.
A URL's password is taken, never shown: answers carry the URL without it.
"""

from rotordream.auth import roles
from rotordream.push.service import PushSpec
from rotordream.web.api.base import ApiError, ApiResource, read_json
from rotordream.web.api.schema import AUTHENTICATED, Route

PUSH_BODY = {"type": "object", "required": ["url"], "additionalProperties": False,
             "properties": {"url": {"type": "string", "pattern": "^rtsps?://"},
                            "stream": {"enum": ["stream1", "stream2"]},
                            "transport": {"enum": ["tcp", "udp"]},
                            "enabled": {"type": "boolean"},
                            "tls_verify": {"type": "boolean"}}}
MAX_TARGETS = 16   # targets added over the API (each costs an upstream connection)


class PushRoot(ApiResource):
    """GET /api/push: every target; POST: add one."""

    routes = (
        Route("/api/push", "get", "RTSP push targets: state, bytes, reconnects, last error "
              "(operator)", AUTHENTICATED),
        Route("/api/push", "post", "Push a stream to an upstream RTSP server (ANNOUNCE/RECORD; "
              "operator)", AUTHENTICATED, body=PUSH_BODY, status=201),
    )

    methods = {"GET": ("get", roles.CAMERA_CONTROL), "POST": ("post", roles.CAMERA_CONTROL)}

    def __init__(self, api, push):
        super().__init__(api)
        self.push = push

    def get(self, request, principal):
        return {"targets": self.push.status()}

    def post(self, request, principal):
        body = read_json(request)
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object")
        unknown = sorted(set(body) - set(PUSH_BODY["properties"]))
        if unknown:
            raise ApiError(400, "unknown field %s" % unknown[0], key=unknown[0])
        if sum(1 for t in self.push.targets if t.origin == "api") >= MAX_TARGETS:
            raise ApiError(409, "at most %d push targets may be added at run time"
                           % MAX_TARGETS)
        try:
            spec = PushSpec(**body)
        except (TypeError, ValueError) as e:
            key = str(e).split(":")[0] if ":" in str(e) else "url"
            raise ApiError(400, str(e), "INVALID_VALUE", key=key)
        target = self.push.add(spec)
        request.setResponseCode(201)
        return target.status()

    def getChild(self, name, request):
        return OnePush(self.api, self.push, name.decode("utf-8", "replace"))


class OnePush(ApiResource):
    """DELETE /api/push/<id> (GET /api/push lists every target)."""

    routes = (
        Route("/api/push/{id}", "delete", "Stop and remove a push target (operator)",
              AUTHENTICATED),
    )

    isLeaf = True
    methods = {"DELETE": ("delete", roles.CAMERA_CONTROL)}

    def __init__(self, api, push, ident):
        super().__init__(api)
        self.push = push
        self.ident = ident

    def _target(self, request):
        target = None if request.postpath else self.push.get(self.ident)
        if target is None:
            raise ApiError(404, "no such push target")
        return target

    def delete(self, request, principal):
        self.push.remove(self._target(request).id)
        return {"deleted": self.ident}


PushRoot.child_classes = (OnePush,)
