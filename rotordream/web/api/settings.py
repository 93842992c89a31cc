"""/api/settings and /api/settings/<key>: camera state over REST, through rotordream/state.py."""

from rotordream.auth import roles
from rotordream.state import StateError, declarations
from rotordream.web.api.base import ApiError, ApiResource, read_json
from rotordream.web.api.schema import ANY, AUTHENTICATED, SETTINGS_BODY, VIEWER, Route


class Settings(ApiResource):
    """GET every readable key; POST a JSON object of keys (all or nothing)."""

    routes = (
        Route("/api/settings", "get", "Every camera setting the caller may read", VIEWER),
        Route("/api/settings", "post", "Change settings, all or nothing", AUTHENTICATED,
              body=SETTINGS_BODY),
    )

    methods = {"GET": ("get", roles.STATE_READ), "POST": ("post", None)}

    def getChild(self, name, request):
        """/api/settings/schema and /api/settings/<key>."""
        if name == b"schema":
            return SettingsSchema(self.api)
        try:
            key = name.decode("utf-8")
            self.ctx.state.spec(key)
        except (UnicodeDecodeError, StateError):
            return super().getChild(name, request)
        return Setting(self.api, key)

    def get(self, request, principal):
        return self.ctx.state.read("*", principal)

    def post(self, request, principal):
        body = read_json(request)
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object of keys and values")
        result = self.ctx.state.set(body, principal, origin="rest")
        return _confirmation(self.ctx.state, body, result)


def _confirmation(state, sent, result):
    names = [state.spec(k).name for k in sent]
    data = {name: (state.get(name) if state.spec(name).kind != "trigger" else True)
            for name in names}
    if result.info:
        data["info"] = result.info
    return data


class Setting(ApiResource):
    """GET one key; POST its new value (a bare JSON value such as 75, or {"value": 75})."""

    routes = (
        Route("/api/settings/{key}", "get", "One setting", VIEWER),
        Route("/api/settings/{key}", "post", "Set one setting (bare JSON value)", AUTHENTICATED,
              body=ANY),
    )

    methods = {"GET": ("get", roles.STATE_READ), "POST": ("post", None),
               "PUT": ("post", None)}
    isLeaf = True

    def __init__(self, api, key):
        super().__init__(api)
        self.key = key

    def get(self, request, principal):
        return self.ctx.state.read([self.key], principal)

    def post(self, request, principal):
        body = read_json(request)
        if isinstance(body, dict) and set(body) == {"value"}:
            body = body["value"]
        elif isinstance(body, dict) and set(body) == {self.key}:
            body = body[self.key]
        result = self.ctx.state.set({self.key: body}, principal, origin="rest")
        return _confirmation(self.ctx.state, {self.key: body}, result)


class SettingsSchema(ApiResource):
    """GET the declarations of the keys the caller may read, and which it may write."""

    routes = (
        Route("/api/settings/schema", "get",
              "Declarations of the readable keys: type, range, choices, description, "
              "permissions, and whether the caller may write each (with the reason if not)",
              VIEWER),
    )

    methods = {"GET": ("get", roles.STATE_READ)}
    isLeaf = True

    def get(self, request, principal):
        state = self.ctx.state
        specs = [state.specs[name] for name in state.specs]
        current = {s.name: state.choices(s.name) for s in specs if s.kind == "choice"}
        keys = []
        for decl in declarations(specs, current):
            if not principal.can(decl["read"]):
                continue
            decl["writable"] = decl["write"] is not None and principal.can(decl["write"])
            if not decl["writable"]:
                decl["reason"] = _why_not(decl, principal)
            keys.append(decl)
        return {"user": principal.name, "role": principal.role,
                "authenticated": principal.authenticated,
                "permissions": sorted(principal.permissions), "keys": keys}


def _why_not(decl, principal):
    if decl["write"] is None:
        return "read-only: set by the camera" if decl["status"] else "read-only"
    if not principal.authenticated:
        return "log in to change %s" % decl["key"]
    return "%s may not change %s" % (principal.role, decl["key"])


# The classes made per request, for the OpenAPI document.
Settings.child_classes = (Setting, SettingsSchema)
