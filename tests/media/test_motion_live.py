"""Motion in the picture is camera status: the `motion` key, broadcast like any other."""

import requests

from tests.support.live import StateWatcher


def test_the_moving_test_pattern_sets_motion_for_every_client(daemon):
    # The test source's bar sweeps the picture: the detector on stream2 sees it move.
    with StateWatcher(daemon) as watch:
        assert "motion" in watch.state
        watch.wait("motion", True, timeout=30)
    data = requests.get(daemon.http + "/api/settings/motion", timeout=10).json()["data"]
    assert data == {"motion": True}
    r = requests.post(daemon.http + "/api/settings", json={"motion": False},
                      auth=("admin", daemon.admin_password), timeout=10)
    assert r.status_code in (400, 403) and r.json()["key"] == "motion"   # status: read-only
