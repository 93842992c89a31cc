"""Chromium on a link tc squeezes and releases: stream=auto goes down, plays on, comes back up.

Runs netns_shaped.py in a network namespace of its own (see there for the link).
"""

import os

import pytest

from tests.conftest import require_tool, run_in_netns

HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "netns_shaped.py")


def rate(samples):
    """Decoded frames per second over each one-second sample step."""
    return [b["decoded"] - a["decoded"] for a, b in zip(samples, samples[1:])]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    require_tool("chromium", "chromium")
    require_tool("tc", "iproute2")
    return run_in_netns(HELPER, tmp_path_factory.mktemp("shaped"), 400,
                        lambda result: "recovered" in result.get("phases", {}))


def test_the_session_survives_every_switch(run):
    [mine] = run["mine"]
    assert mine["state"] == "connected" and mine["mode"] == "auto"
    every = [s for p in ("fast", "squeeze", "recovered") for s in run["phases"][p]]
    assert all(s["state"] == "connected" for s in every)
    assert "ended:" not in run["daemon_log"].split("daemon stopping")[0]


def test_full_size_on_the_fast_link(run):
    fast = run["phases"]["fast"]
    assert fast[-1]["width"] == 1280
    assert min(rate(fast[3:])) >= 20, rate(fast)


def test_down_to_stream2_within_5_s_and_at_least_12_fps_through_the_squeeze(run):
    squeeze = run["phases"]["squeeze"]
    down = next(i for i, s in enumerate(squeeze) if s["width"] == 320)
    assert down <= 5, [s["width"] for s in squeeze]
    fps = rate(squeeze[down + 1:])
    # stream2's rate through the squeeze: every second but at most one (a moment when the
    # 2-core machine running Chromium, the daemon and the suite is busy elsewhere), and on
    # average.
    assert sum(f < 12 for f in fps) <= 1 and sum(fps) / len(fps) >= 12, fps


def test_back_up_within_30_s_of_the_recovery(run):
    recovered = run["phases"]["recovered"]
    up = next(i for i, s in enumerate(recovered) if s["width"] == 1280)
    assert up <= 30, [s["width"] for s in recovered]
    [mine] = run["mine"]
    moves = [(s["from"], s["to"], s["reason"]) for s in mine["switches"]]
    assert ("stream1", "stream2", "estimate") in moves and moves[-1][1] == "stream1", moves


def test_freezes_stay_under_2_s_over_the_run(run):
    last = run["phases"]["recovered"][-1]
    print("freezes", last["freezes"], "frozen", last["frozen"])
    assert last["frozen"] < 2.0, last
