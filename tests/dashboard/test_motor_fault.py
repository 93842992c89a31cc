"""A fault of a serial motor controller, shown by the dashboard in Chromium and over REST.

The controller is the motor simulator run alone on one end of a socat pty pair (the
daemon has ``--motor serial:/dev/pts/N``); tests/dashboard/netns_motor_fault.py does the
work in a network namespace of its own and this side asserts on what it found.
"""

import os

import pytest

from tests.conftest import require_tool, run_in_netns

HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "netns_motor_fault.py")
RED = "rgb(176, 0, 32)"  # --bad in ui/dashboard.css (#b00020)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    require_tool("chromium", "chromium")
    require_tool("socat", "socat")
    return run_in_netns(HELPER, tmp_path_factory.mktemp("motor-fault"), 180,
                        lambda result: "setup_error" not in result and "console" in result)


def ok(run, step):
    assert step + "_error" not in run, run[step + "_error"] + run["daemon_log"][-2000:]
    return run[step]


def test_the_serial_controller_links_up_idle(run):
    before = ok(run, "before")
    assert run["link"] == "idle"
    assert before["value"] == "idle" and not before["fault"] and before["color"] != RED


def test_a_controller_fault_shows_in_red_and_as_an_event_and_over_rest(run):
    fault = ok(run, "fault")
    assert fault["rest"] == "fault"
    assert fault["value"] == "fault" and fault["fault"] and fault["color"] == RED, fault
    assert fault["events"][0].endswith(" error: motor fault"), fault["events"]
    # A move asked for meanwhile is refused by the controller, and the page says why.
    assert fault["move_error"] == "motor: controller in fault; send FAULT CLEAR"


def test_the_fault_clears_when_the_controller_recovers(run):
    recovered = ok(run, "recover")
    assert recovered["rest"] in ("idle", "moving") and recovered["value"] == recovered["rest"]
    assert not recovered["fault"] and recovered["color"] != RED, recovered


def test_no_console_errors(run):
    assert run["console"] == [], run["console"]
    assert "Traceback" not in run["daemon_log"]
