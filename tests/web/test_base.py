"""The REST base on in-memory requests: a crash answers 500 without the traceback."""

import json

from twisted.internet.task import Clock
from twisted.web.test.requesthelper import DummyRequest

from rotordream.auth.ratelimit import RateLimiter
from rotordream.auth.service import AuthService
from rotordream.config import from_dict
from rotordream.context import Context
from rotordream.state import CameraState
from rotordream.web.api.base import ApiContext, ApiResource


class Broken(ApiResource):
    methods = {"GET": ("get", None)}

    def get(self, request, principal):
        raise KeyError("secret-internal-detail")


def test_an_exception_is_a_500_envelope_that_hides_the_traceback(tmp_path):
    clock = Clock()
    cfg = from_dict({"auth": {"initial_admin_password": "admin-password"}})
    ctx = Context(cfg, clock, CameraState())
    ctx.auth = AuthService(cfg, str(tmp_path), clock)
    resource = Broken(ApiContext(ctx, RateLimiter(100, 60, clock)))
    request = DummyRequest([b""])
    request.method = b"GET"
    request.uri = b"/api/broken"
    body = resource.render(request)
    assert request.responseCode == 500
    data = json.loads(body)
    assert data["status"] == "error" and data["code"] == "INTERNAL"
    assert "secret-internal-detail" not in body.decode() and "Traceback" not in body.decode()
