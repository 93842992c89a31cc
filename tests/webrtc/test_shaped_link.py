"""Chromium on a link squeezed and released: stream=auto goes down, plays on, comes back up.

Runs netns_shaped.py in network namespaces of its own, joined by the userspace link
emulator (see there for the link: 3 Mbit/s, then 400 kbit/s with 50 ms of one-way
delay and 1 % loss, then 3 Mbit/s). The figures are the issue's targets.
``ROTORDREAM_WEBRTC_TRANSPORT_CC=1`` runs the same with transport-cc instead of REMB.
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
    require_tool("nsenter", "util-linux")
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
    print("squeeze fps", rate(squeeze), "down after", down, "s")
    assert min(fps) >= 12, fps


def test_back_up_within_30_s_of_the_recovery(run):
    recovered = run["phases"]["recovered"]
    up = next(i for i, s in enumerate(recovered) if s["width"] == 1280)
    print("back on stream1", up, "s after the recovery")
    assert up <= 30, [s["width"] for s in recovered]
    [mine] = run["mine"]
    moves = [(s["from"], s["to"], s["reason"]) for s in mine["switches"]]
    print("switches", moves, "estimated by", mine.get("estimate_source"))
    assert any(m[:2] == ("stream1", "stream2") and m[2] in ("estimate", "picture_loss")
               for m in moves) and moves[-1][1] == "stream1", moves


def test_freezes_stay_under_2_s_over_the_run(run):
    last = run["phases"]["recovered"][-1]
    print("freezes", last["freezes"], "frozen", last["frozen"])
    assert last["frozen"] < 2.0, last


def test_the_squeeze_had_the_delay_and_loss_asked_for(run):
    # The emulator's counters at the end of each phase (both directions together).
    squeeze = run["link"]["squeeze"]
    print("link", {d: {k: v for k, v in c.items()} for d, c in squeeze.items()})
    down, up = squeeze["down"], squeeze["up"]
    assert (down["rate"], down["delay"], down["loss"]) == (400_000, 0.05, 0.01)
    assert (up["rate"], up["delay"], up["loss"]) == (400_000, 0.05, 0.01)
    fast = run["link"]["fast"]["down"]
    lost = down["lost"] - fast["lost"]
    sent = down["sent"] - fast["sent"]
    assert sent > 500 and 0.002 < lost / sent < 0.03, (lost, sent)
