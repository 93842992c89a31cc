"""/api/login, /api/logout and /api/users: sessions and user management."""

from twisted.internet import defer

from rotordream.auth import roles
from rotordream.auth.service import SESSION_COOKIE, AuthError
from rotordream.auth.users import UserError
from rotordream.web.api.base import ApiError, ApiResource, client_key, envelope, read_json, \
    require_object
from rotordream.web.api.schema import (AUTHENTICATED, CREDENTIALS, NEW_USER, PASSWORD, PUBLIC,
                                       ROLE, Route)


def _user_error(e):
    status = {"CONFLICT": 409, "NOT_FOUND": 404}.get(e.code, 400)
    return ApiError(status, e.message, e.code)


class Login(ApiResource):
    """POST {"username", "password"} -> bearer token (also at the top level) and a cookie."""

    routes = (
        Route("/api/login", "post", "Log in: bearer token and session cookie", PUBLIC,
              body=CREDENTIALS),
    )

    methods = {"POST": ("post", None)}
    public_write = True

    def authenticate(self, request):
        # Login takes credentials from the body only; a stale cookie must not interfere.
        return self.ctx.auth.anonymous()

    def post(self, request, principal):
        username, password = require_object(read_json(request), "username", "password")
        # The password check may run in a thread: answer when it is done.
        d = defer.maybeDeferred(self.ctx.auth.login, username, password,
                                client=client_key(request))
        d.addErrback(self._refused)
        return d.addCallback(self._logged_in, request)

    def _logged_in(self, result, request):
        who = result["principal"]
        request.addCookie(SESSION_COOKIE.encode(), result["token"].encode(), path=b"/",
                          httpOnly=True, sameSite="strict", secure=request.isSecure(),
                          max_age=str(self.ctx.config.auth.token_lifetime).encode())
        data = {"token": result["token"], "expires": int(result["expires"]),
                "csrf_token": result["csrf"], "user": who.name, "role": who.role,
                "permissions": sorted(who.permissions)}
        # Top-level token too: the reference's scripts read it with `jq -r .token`.
        return envelope(data, token=result["token"])


class Logout(ApiResource):
    """POST: revoke the token or session that authenticated this request."""

    routes = (
        Route("/api/logout", "post", "Revoke the caller's token or session", AUTHENTICATED),
    )

    methods = {"POST": ("post", roles.STATE_READ)}

    def post(self, request, principal):
        header = request.getHeader(b"authorization") or b""
        token = None
        if header.lower().startswith(b"bearer "):
            token = header[7:].strip().decode("latin-1")
        elif request.getCookie(SESSION_COOKIE.encode()):
            token = request.getCookie(SESSION_COOKIE.encode()).decode("latin-1")
        revoked = self.ctx.auth.logout(token) if token else False
        request.addCookie(SESSION_COOKIE.encode(), b"", path=b"/", httpOnly=True,
                          sameSite="strict", max_age=b"0")
        return {"logged_out": revoked}


def _user_view(store, name):
    rec = store.get(name)
    return {"username": name, "role": rec["role"],
            "permissions": sorted(roles.permissions_for(rec["role"]))}


class Users(ApiResource):
    """GET the users; POST {"username", "password", "role"} to add one (admins)."""

    routes = (
        Route("/api/users", "get", "List users (admin)", AUTHENTICATED),
        Route("/api/users", "post", "Create a user (admin)", AUTHENTICATED, body=NEW_USER, status=201),
    )

    methods = {"GET": ("get", roles.USERS_ADMIN), "POST": ("post", roles.USERS_ADMIN)}

    def getChild(self, name, request):
        """/api/users/<name>[/permissions|/password]."""
        try:
            user = name.decode("utf-8")
        except UnicodeDecodeError:
            return super().getChild(name, request)
        return User(self.api, user)

    def get(self, request, principal):
        store = self.ctx.auth.users
        return {"users": [_user_view(store, n) for n in store.names()]}

    def post(self, request, principal):
        body = read_json(request)
        username, password, role = require_object(body, "username", "password", "role")
        try:
            self.ctx.auth.users.add(username, password, role)
        except UserError as e:
            raise _user_error(e)
        request.setResponseCode(201)
        return _user_view(self.ctx.auth.users, username)


class User(ApiResource):
    """GET/PUT {"role"}/DELETE one user (admins; a user may GET itself)."""

    routes = (
        Route("/api/users/{name}", "get", "One user", AUTHENTICATED),
        Route("/api/users/{name}", "put", "Change a user's role (admin)", AUTHENTICATED, body=ROLE),
        Route("/api/users/{name}", "delete", "Delete a user (admin)", AUTHENTICATED),
    )

    methods = {"GET": ("get", roles.STATE_READ), "PUT": ("put", roles.USERS_ADMIN),
               "DELETE": ("delete", roles.USERS_ADMIN)}

    def __init__(self, api, name):
        super().__init__(api)
        self.name = name

    def getChild(self, name, request):
        if name == b"permissions":
            return Permissions(self.api, self.name)
        if name == b"password":
            return Password(self.api, self.name)
        return super().getChild(name, request)

    def _existing(self, principal):
        if principal.name != self.name and not principal.can(roles.USERS_ADMIN):
            raise ApiError(403, "only admins may see other users")
        if self.ctx.auth.users.get(self.name) is None:
            raise ApiError(404, "no such user")
        return _user_view(self.ctx.auth.users, self.name)

    def get(self, request, principal):
        return self._existing(principal)

    def put(self, request, principal):
        self._existing(principal)
        body = read_json(request)
        (role,) = require_object(body, "role")
        try:
            self.ctx.auth.users.set_role(self.name, role)
        except UserError as e:
            raise _user_error(e)
        return _user_view(self.ctx.auth.users, self.name)

    def delete(self, request, principal):
        self._existing(principal)
        try:
            self.ctx.auth.users.delete(self.name)
        except UserError as e:
            raise _user_error(e)
        return {"deleted": self.name}


class Permissions(User):
    """GET the permissions of a user (the user itself or an admin)."""

    routes = (
        Route("/api/users/{name}/permissions", "get", "A user's permissions", AUTHENTICATED),
    )

    methods = {"GET": ("get", roles.STATE_READ)}
    isLeaf = True

    def get(self, request, principal):
        view = self._existing(principal)
        return {"username": view["username"], "role": view["role"],
                "permissions": view["permissions"]}


class Password(User):
    """PUT {"password"[, "current"]}: admins set any password; users change their own."""

    routes = (
        Route("/api/users/{name}/password", "put", "Change a password", AUTHENTICATED,
              body=PASSWORD),
    )

    methods = {"PUT": ("put", roles.STATE_READ), "POST": ("put", roles.STATE_READ)}
    isLeaf = True

    def put(self, request, principal):
        self._existing(principal)
        body = read_json(request)
        (password,) = require_object(body, "password")
        if principal.can(roles.USERS_ADMIN):
            return self._set(password)
        (current,) = require_object(body, "current")
        # Checked like a login (off the reactor, counted against lockouts).
        d = defer.maybeDeferred(self.ctx.auth.check_password, self.name, current,
                                client=client_key(request))
        d.addErrback(self._wrong_current)
        return d.addCallback(lambda _: self._set(password))

    def _wrong_current(self, failure):
        e = failure.trap(AuthError) and failure.value
        if e.code == "RATE_LIMITED":
            raise ApiError.from_auth(e)
        raise ApiError(403, "the current password is wrong")

    def _set(self, password):
        try:
            self.ctx.auth.users.set_password(self.name, password)
        except UserError as e:
            raise _user_error(e)
        return {"username": self.name, "password_changed": True}


# The classes made per request, for the OpenAPI document.
Users.child_classes = (User,)
User.child_classes = (Permissions, Password)
