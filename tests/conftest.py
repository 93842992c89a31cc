"""Shared test fixtures: tool requirements, free ports, a running daemon."""

import os
import shutil

import pytest

REQUIRE_ALL = os.environ.get("ROTORDREAM_REQUIRE_ALL") == "1"


def require_tool(name, hint=""):
    """Return the path of command ``name``; skip without it, fail under ROTORDREAM_REQUIRE_ALL=1."""
    path = shutil.which(name)
    if path is None:
        message = "%s not installed%s" % (name, (": " + hint) if hint else "")
        if REQUIRE_ALL:
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_module(name):
    """Import and return module ``name``; skip without it, fail under ROTORDREAM_REQUIRE_ALL=1."""
    try:
        return __import__(name, fromlist=["_"])
    except ImportError as e:
        if REQUIRE_ALL:
            pytest.fail("python module %s missing: %s" % (name, e))
        pytest.skip("python module %s missing" % name)
