"""GET /api/openapi.json: the OpenAPI 3.1 document of the REST API.

Built from the resources' own declarations (:mod:`rotordream.web.api.schema`):
:func:`collect` walks the mounted /api tree, and the site's other resources that declare
routes (/hls), so the document lists exactly what this daemon serves.
"""

import json

from rotordream import API_VERSION, PRODUCT
from rotordream.web.api.base import ApiResource, Raw
from rotordream.web.api.schema import ANY as _ANY
from rotordream.web.api.schema import PUBLIC, STR as _STR, VIEWER, Route

_OBJ = {"type": "object"}

_ENVELOPE = {
    "type": "object", "required": ["status", "version", "data", "timestamp"],
    "properties": {"status": {"const": "success"}, "version": _STR, "data": _ANY,
                   "timestamp": {"type": "integer"}},
}
_ERROR = {
    "type": "object", "required": ["status", "version", "error", "code", "timestamp"],
    "properties": {"status": {"const": "error"}, "version": _STR, "error": _STR,
                   "code": {"enum": ["BAD_REQUEST", "INVALID_VALUE", "UNAUTHORIZED",
                                     "FORBIDDEN", "NOT_FOUND", "METHOD_NOT_ALLOWED",
                                     "CONFLICT", "PAYLOAD_TOO_LARGE",
                                     "UNSUPPORTED_MEDIA_TYPE", "RANGE_NOT_SATISFIABLE",
                                     "RATE_LIMITED", "INSUFFICIENT_STORAGE",
                                     "CAMERA_NOT_CONNECTED", "MOTOR_NOT_CONNECTED",
                                     "INTERNAL"]},
                   "timestamp": {"type": "integer"}, "key": {}, "allowed": {},
                   "limit": {}, "period": {}, "retry_after": {}, "size": {},
                   "motor_code": {}},
}
_ERRORS = {"400": "Bad request", "401": "Unauthorized", "403": "Forbidden",
           "404": "Not found", "405": "Method not allowed", "409": "Conflict",
           "413": "Payload too large", "429": "Rate limited", "500": "Internal error",
           "503": "Camera not connected", "507": "Insufficient storage"}


def collect(root):
    """Every :class:`Route` declared under ``root`` (a resource), in tree order."""
    seen, routes = set(), []

    def visit(cls, children=()):
        if cls not in seen:
            seen.add(cls)
            routes.extend(getattr(cls, "routes", ()))
            for child in getattr(cls, "child_classes", ()):
                visit(child)
        for child in children:
            visit(type(child), getattr(child, "children", {}).values())

    visit(type(root), root.children.values())
    return routes


def document(routes):
    """The OpenAPI 3.1 document (a dict) of ``routes``."""
    paths = {}
    for route in routes:
        path, method, summary, public, body, status, media, query = route
        op = {"summary": summary, "operationId": "%s_%s" % (
            method, path.strip("/").replace("/", "_").replace("{", "").replace("}", "")),
              "responses": {}}
        if "{" in path:
            name = path[path.index("{") + 1:path.index("}")]
            op["parameters"] = [{"name": name, "in": "path", "required": True,
                                 "schema": _STR}]
        if query:
            op["parameters"] = [{"name": name, "in": "query", "required": False,
                                 "schema": schema} for name, schema in query.items()]
        if public is True:
            op["security"] = []
        elif public == VIEWER:
            op["security"] = [{}, {"basic": []}, {"digest": []}, {"bearer": []},
                              {"cookie": []}]
        if body is not None:
            op["requestBody"] = {"required": True,
                                 "content": {"application/json": {"schema": body}}}
        if media and media != "application/json":
            ok = {"description": "OK", "content": {media: {"schema": {"type": "string",
                                                                      "format": "binary"}}}}
        else:
            ok = {"description": "OK",
                  "content": {"application/json": {"schema": _OBJ if media else
                                                   {"$ref": "#/components/schemas/Envelope"}}}}
        op["responses"][str(status)] = ok
        errors = dict(_ERRORS)
        if body is not None:
            errors["415"] = "Unsupported media type (the body must be JSON)"
        if media == "video/mp4":
            errors["416"] = "Range not satisfiable (too many or overlapping ranges)"
        for code, text in sorted(errors.items()):
            op["responses"][code] = {"description": text, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Error"}}}}
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "%s REST API" % PRODUCT, "version": API_VERSION},
        "paths": paths,
        "components": {
            "schemas": {"Envelope": _ENVELOPE, "Error": _ERROR},
            "securitySchemes": {"basic": {"type": "http", "scheme": "basic"},
                                "digest": {"type": "http", "scheme": "digest"},
                                "bearer": {"type": "http", "scheme": "bearer"},
                                "cookie": {"type": "apiKey", "in": "cookie",
                                           "name": "rotordream_session"}},
        },
        "security": [{"basic": []}, {"digest": []}, {"bearer": []}, {"cookie": []}],
    }


class OpenAPI(ApiResource):
    """GET /api/openapi.json (public): the document of the /api tree it is mounted in and of
    the site serving it."""

    routes = (
        Route("/api/openapi.json", "get", "This document", PUBLIC, media="application/json"),
    )
    methods = {"GET": ("get", None)}

    def __init__(self, api, root):
        super().__init__(api)
        self.root = root
        self._body = None

    def get(self, request, principal):
        if self._body is None:  # the tree is fixed once the site is built
            routes = collect(self.root)
            # /hls is mounted beside /api, not under it: walk the whole site for it.
            site = getattr(getattr(request, "site", None), "resource", None)
            if site is not None:
                routes += [r for r in collect(site) if r not in routes]
            self._body = json.dumps(document(routes), indent=1).encode()
        return Raw(self._body, b"application/json")
