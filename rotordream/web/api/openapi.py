"""GET /api/openapi.json: the OpenAPI 3.1 document of the REST API, built from one table."""

from rotordream import API_VERSION, PRODUCT
from rotordream.state import KEYS
from rotordream.web.api.base import ApiResource, Raw

import json

_ANY = {}
_OBJ = {"type": "object"}
_STR = {"type": "string"}


def value_schema(spec):
    """The JSON schema of one state key's values (from its declaration in state.py)."""
    if spec.kind == "int":
        return {"type": "integer", "minimum": spec.minimum, "maximum": spec.maximum}
    if spec.kind == "float":
        return {"type": "number", "minimum": spec.minimum, "maximum": spec.maximum}
    if spec.kind in ("bool", "trigger"):
        return {"type": "boolean"}
    if spec.kind == "choice":
        return {"enum": list(spec.choices)}
    if spec.kind == "record":
        return {"anyOf": [{"type": "boolean"},
                          {"enum": ["on", "off", "pause", "pause_release"]}]}
    return {"type": "string", "maxLength": spec.max_length, "pattern": "^[^\\x00-\\x1f]*$"}


_SETTINGS_BODY = {
    "type": "object", "minProperties": 1, "additionalProperties": False,
    "description": "keys of rotordream/state.py and their new values (all or nothing)",
    "properties": {spec.name: value_schema(spec) for spec in KEYS if spec.writable},
}
_CRED = {"type": "object", "required": ["username", "password"],
         "properties": {"username": _STR, "password": _STR}}
_NAME = {"type": "string", "pattern": "^[A-Za-z0-9_.@-]{1,32}$"}
_PASS = {"type": "string", "minLength": 8, "maxLength": 128, "pattern": "^[^\\x00-\\x1f]*$"}
_NEW_USER = {"type": "object", "required": ["username", "password", "role"],
             "properties": {"username": _NAME, "password": _PASS,
                            "role": {"enum": ["admin", "operator", "viewer", "guest"]}}}
_ROLE = {"type": "object", "required": ["role"],
         "properties": {"role": {"enum": ["admin", "operator", "viewer", "guest"]}}}
_PASSWORD = {"type": "object", "required": ["password"],
             "properties": {"password": _PASS, "current": _STR}}

# (path, method, summary, access, request body schema or None, success status, media type)
# access: True = public; "viewer" = open to anonymous clients while [auth] anonymous is
# viewer (the default), so credentials are optional; False = credentials required.
V = "viewer"
ROUTES = [
    ("/api/info", "get", "Product, version, capabilities and stream URLs", True, None, 200, None),
    ("/api/health", "get", "Liveness for monitoring", True, None, 200, None),
    ("/api/status", "get", "Uptime, CPU, memory, disk, encoder counters, clients (RTSP "
     "session ids and client addresses shown to operators and admins only)", V, None, 200,
     None),
    ("/api/camera/status", "get", "Camera heads, signal, size and rate", V, None, 200, None),
    ("/api/streams", "get", "Each stream: URL, codec, size, fps, bitrate, clients", V, None,
     200, None),
    ("/api/snapshot", "get", "JPEG of the latest frame", V, None, 200, "image/jpeg"),
    ("/api/settings", "get", "Every camera setting the caller may read", V, None, 200, None),
    ("/api/settings", "post", "Change settings, all or nothing", False, _SETTINGS_BODY, 200,
     None),
    ("/api/settings/{key}", "get", "One setting", V, None, 200, None),
    ("/api/settings/{key}", "post", "Set one setting (bare JSON value)", False, _ANY, 200, None),
    ("/api/login", "post", "Log in: bearer token and session cookie", True, _CRED, 200, None),
    ("/api/logout", "post", "Revoke the caller's token or session", False, None, 200, None),
    ("/api/users", "get", "List users (admin)", False, None, 200, None),
    ("/api/users", "post", "Create a user (admin)", False, _NEW_USER, 201, None),
    ("/api/users/{name}", "get", "One user", False, None, 200, None),
    ("/api/users/{name}", "put", "Change a user's role (admin)", False, _ROLE, 200, None),
    ("/api/users/{name}", "delete", "Delete a user (admin)", False, None, 200, None),
    ("/api/users/{name}/permissions", "get", "A user's permissions", False, None, 200, None),
    ("/api/users/{name}/password", "put", "Change a password", False, _PASSWORD, 200, None),
    ("/api/openapi.json", "get", "This document", True, None, 200, "application/json"),
]

EXTRA_ROUTES = []
"""Other parts (recording, WebRTC) append their routes here in the same form."""

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
                                     "CAMERA_NOT_CONNECTED", "INTERNAL"]},
                   "timestamp": {"type": "integer"}, "key": {}, "allowed": {},
                   "limit": {}, "period": {}, "retry_after": {}, "size": {}},
}
_ERRORS = {"400": "Bad request", "401": "Unauthorized", "403": "Forbidden",
           "404": "Not found", "405": "Method not allowed", "409": "Conflict",
           "413": "Payload too large", "429": "Rate limited", "500": "Internal error",
           "503": "Camera not connected", "507": "Insufficient storage"}


def document():
    """The OpenAPI 3.1 document as a dict."""
    paths = {}
    for path, method, summary, public, body, status, media in ROUTES + EXTRA_ROUTES:
        op = {"summary": summary, "operationId": "%s_%s" % (
            method, path.strip("/").replace("/", "_").replace("{", "").replace("}", "")),
              "responses": {}}
        if "{" in path:
            name = path[path.index("{") + 1:path.index("}")]
            op["parameters"] = [{"name": name, "in": "path", "required": True,
                                 "schema": _STR}]
        if path == "/api/snapshot":
            op["parameters"] = [{"name": "quality", "in": "query", "required": False,
                                 "schema": {"type": "integer", "minimum": 1, "maximum": 100}}]
        if public is True:
            op["security"] = []
        elif public == V:
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
    """GET /api/openapi.json (public)."""

    methods = {"GET": ("get", None)}

    def get(self, request, principal):
        return Raw(json.dumps(document(), indent=1).encode(), b"application/json")
