"""Run the fuzz targets' Hypothesis tests as plain calls.

pytest-twisted would run every example through the reactor and replace Hypothesis's inner
test with a ``**kwargs`` wrapper, so a failure would print the failing example with its
arguments blank. No fuzz target needs the reactor: they feed parsers, in-memory transports
and real sockets synchronously.
"""

import pytest

from tests.support.fuzz import assert_no_failures, watch_log


@pytest.fixture(autouse=True, scope="module")
def no_failure_logged_in_the_module():
    """Whatever a module's targets leave behind (a Deferred that failed unseen is reported
    when collected) must not log a failure either."""
    with watch_log(collect=True) as seen:
        yield
    assert_no_failures(seen)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Call a Hypothesis test directly (other tests go on to pytest-twisted)."""
    if getattr(pyfuncitem.obj, "hypothesis", None) is None:
        return None
    names = pyfuncitem._fixtureinfo.argnames
    pyfuncitem.obj(**{name: pyfuncitem.funcargs[name] for name in names})
    return True
