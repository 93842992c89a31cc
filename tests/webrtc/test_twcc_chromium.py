"""Headless Chromium with ``[webrtc] transport_cc = true``: it accepts the extension, sends
transport-cc feedback, and the camera's estimate for it comes from that feedback.

Runs tests/webrtc/netns_twcc.py in a network namespace of its own (only ``lo``).
"""

import os

import pytest

from rotordream.webrtc import twcc
from tests.conftest import require_tool, run_in_netns

HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "netns_twcc.py")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    require_tool("chromium", "chromium")
    return run_in_netns(HELPER, tmp_path_factory.mktemp("twcc"), 240,
                        lambda result: "look" in result)


def test_chromium_accepts_transport_cc_in_its_answer(run):
    offered = twcc.extension_id(run["look"]["offer"])
    assert offered is not None
    assert twcc.extension_id(run["look"]["answer"]) == offered
    assert "transport-cc" in run["look"]["answer"]


def test_feedback_arrives_and_its_estimate_is_used(run):
    [session] = run["samples"][-1]
    sending = session["sending"]
    print("transport-cc session:", session["estimated_bitrate"], sending["transport_cc"],
          "remb", sending["remb"])
    assert session["estimate_source"] == "transport-cc", session
    feedback = sending["transport_cc"]
    assert feedback["feedbacks"] >= 20 and feedback["malformed"] == 0, feedback
    assert feedback["received"] > 500 and feedback["loss"] < 0.02, feedback
    # A clean loopback link: about what is sent (the test pattern's ~1 Mbit/s), up to the
    # cap (1.5x what was sent over 2 s, 1.8x before it pulls down), not below what is
    # acknowledged.
    estimate = session["estimated_bitrate"]
    assert feedback["acked_rate"] * 0.9 <= estimate <= feedback["sent_rate"] * 1.8, feedback
    assert 300_000 <= estimate <= 5_000_000, estimate
    counts = [s[0]["sending"]["transport_cc"]["feedbacks"] for s in run["samples"]]
    assert counts == sorted(counts) and counts[-1] > counts[0]   # it keeps coming


def test_video_plays(run):
    watch, look = run["watch"], run["look"]
    assert (watch["width"], watch["height"]) == (1280, 720) and watch["frames"] >= 90
    assert watch["state"] == "connected"
    assert look["frames_decoded"] >= 200, look
    print("page stats:", {k: v for k, v in look.items() if k not in ("offer", "answer")})


def test_a_clean_stop(run):
    assert run["exit_status"] == 0
    assert "Traceback" not in run["daemon_log"], run["daemon_log"]
