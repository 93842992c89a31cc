"""Fixtures of the client tests: Python clients logged in to the shared daemon."""

import pytest

from tests.conftest import require_module


@pytest.fixture
def admin(daemon):
    """A synchronous rotordream_client.Camera logged in as admin (HTTP Digest)."""
    client = require_module("rotordream_client")
    cam = client.Camera(daemon.http, "admin", daemon.admin_password)
    yield cam
    cam.close()

