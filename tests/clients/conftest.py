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


def wait_for(watch, predicate, what):
    """Next changes from a ``watch`` iterator until ``predicate(merged changes)``; the merge.

    The iterator blocks on the daemon's own broadcasts: no clock involved.
    """
    merged = {}
    for change in watch:
        merged.update(change)
        if predicate(merged):
            return merged
    raise AssertionError("the watch ended before %s" % what)
