"""The motor service on a real pty pair with the simulator at the other end.

I/O goes through the real reactor (SerialPort on the pty); the simulator's physics and the
host's timeouts run on Clocks the tests advance, so no test sleeps.
"""

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from rotordream.auth.roles import Principal
from rotordream.config import from_dict
from rotordream.interfaces import IMotorController
from rotordream.motor import MotorError
from rotordream.motor.service import REST_CHECK, SILENCE, MotorService
from rotordream.state import CameraState

OPERATOR = Principal("op", "operator")


def when(state, predicate, timeout=10):
    """A Deferred firing once ``predicate(state)`` holds after some change."""
    d = defer.Deferred()

    def check(changes, origin):
        # Woken after the change is over: the test may write to the state next.
        if not d.called and predicate(state):
            reactor.callLater(0, lambda: d.called or d.callback(True))
    state.subscribe(check)
    if predicate(state):
        d.callback(True)
    return d.addTimeout(timeout, reactor)


@pytest.fixture
def motors(tmp_path):
    cfg = from_dict({"server": {"state_dir": str(tmp_path)}})
    state = CameraState()
    sim, host = Clock(), Clock()
    svc = MotorService(reactor, state, cfg.motor, str(tmp_path), "sim", sim_clock=sim,
                       clock=host)
    svc.startService()
    yield svc, state, sim, host
    svc.stopService()


def advance(clock, seconds, step=0.05):
    for _ in range(int(round(seconds / step))):
        clock.advance(step)


@pytest_twisted.inlineCallbacks
def test_identify_move_and_positions_reach_the_state(motors):
    svc, state, sim, host = motors
    assert verifyObject(IMotorController, svc)
    yield svc.when_connected().addTimeout(10, reactor)
    assert svc.identity["model"] == "RD-SIM-1" and svc.identity["proto"] == "1"
    state.set({"pan": 45.0, "tilt": -10.0}, OPERATOR)
    yield svc.proto.send("STATUS")  # replies come in order: the MOVE was handled before
    assert svc.model.pan.target == 45.0
    advance(sim, 3)  # simulated time: the move finishes and reports are pushed
    yield when(state, lambda s: s.get("pan-position") == 45.0 and s.get("tilt-position") == -10.0
               and s.get("motor-state") == "idle")


@pytest_twisted.inlineCallbacks
def test_stop_mid_move_limits_and_rotor(motors):
    svc, state, sim, host = motors
    yield svc.when_connected().addTimeout(10, reactor)
    yield svc.absolute_move(150, 0)
    advance(sim, 1)
    yield svc.stop()
    advance(sim, 2)
    stopped_at = svc.model.pan.position
    assert 10 < stopped_at < 150 and not svc.model.pan.moving
    with pytest.raises(MotorError) as e:
        yield svc.absolute_move(200, 0)
    assert e.value.code == "LIMIT"
    state.set({"rotor-speed": 1200, "rotor-enabled": True}, OPERATOR)
    yield svc.proto.send("STATUS")
    assert svc.model.rotor_on and svc.model.rotor_target == 1200
    advance(sim, 2)
    yield when(state, lambda s: s.get("rotor-rpm") == 1200)


@pytest_twisted.inlineCallbacks
def test_garbage_is_counted_and_silence_faults_then_recovers(motors):
    svc, state, sim, host = motors
    yield svc.when_connected().addTimeout(10, reactor)
    svc._sim_io.write(b"garbage\n1 OK*00\n\xff\xfe\n")
    yield svc.proto.send("STATUS")  # still talking after the damage
    assert svc.proto.bad_lines == 3
    state.set({"rotor-enabled": True, "rotor-speed": 2000}, OPERATOR)
    yield svc.proto.send("STATUS")
    assert svc.model.rotor_on
    svc.model.silent = True
    svc.model.rotor_on = False  # the controller lost its setpoint (e.g. it rebooted)
    host.advance(SILENCE + 0.1)
    assert state.get("motor-state") == "fault" and not svc.connected
    with pytest.raises(MotorError) as e:
        yield svc.absolute_move(1, 1)
    assert e.value.code == "DISCONNECTED"
    svc.model.silent = False
    host.advance(1.1)  # reconnect after the first backoff
    yield svc.when_connected().addTimeout(10, reactor)
    assert state.get("motor-state") != "fault"
    assert svc.model.rotor_on and svc.model.rotor_target == 2000  # setpoint restored


@pytest_twisted.inlineCallbacks
def test_commands_time_out_after_bounded_retries(motors):
    svc, state, sim, host = motors
    yield svc.when_connected().addTimeout(10, reactor)
    svc.model.silent = True
    proto = svc.proto
    before = proto.sent
    d = proto.send("STATUS")
    failures = []
    d.addErrback(failures.append)
    for _ in range(3):  # timeout 1 s, 2 retries: three sends in all
        host.advance(1.0)
    assert failures and failures[0].value.code == "TIMEOUT"
    assert proto.sent - before == 3  # sent, then resent twice
    assert state.get("motor-state") == "fault"


@pytest_twisted.inlineCallbacks
def test_port_closed_and_reopened_restores_the_link(motors):
    svc, state, sim, host = motors
    yield svc.when_connected().addTimeout(10, reactor)
    lost = when(state, lambda s: s.get("motor-state") == "fault")
    svc.port.loseConnection()  # as if the USB adapter went away
    yield lost
    host.advance(1.1)
    yield svc.when_connected().addTimeout(10, reactor)
    assert (yield svc.proto.send("ID"))["model"] == "RD-SIM-1"


@pytest_twisted.inlineCallbacks
def test_presets_persist_and_move(motors, tmp_path):
    svc, state, sim, host = motors
    yield svc.when_connected().addTimeout(10, reactor)
    yield svc.absolute_move(30, 10)
    advance(sim, 2)
    yield when(state, lambda s: s.get("pan-position") == 30.0)
    token = svc.set_preset("door")
    svc.set_home()
    assert [p["name"] for p in svc.presets()] == ["door"]
    yield svc.absolute_move(-20, 0)
    advance(sim, 3)
    yield when(state, lambda s: s.get("pan-position") == -20.0)
    yield svc.goto_preset(token)
    advance(sim, 3)
    yield when(state, lambda s: s.get("pan-position") == 30.0 and s.get("tilt-position") == 10.0)
    again = MotorService(reactor, svc.state, svc.config, str(tmp_path), "sim",
                         sim_clock=Clock(), clock=Clock())
    assert again.presets() == svc.presets()
    svc.remove_preset(token)
    assert svc.presets() == []
    with pytest.raises(KeyError):
        svc.goto_preset(token)


@pytest_twisted.inlineCallbacks
def test_every_move_keeps_the_pan_and_tilt_targets_true(motors):
    svc, state, sim, host = motors
    yield svc.when_connected().addTimeout(10, reactor)
    yield svc.absolute_move(40, 5)
    assert (state.get("pan"), state.get("tilt")) == (40.0, 5.0)
    advance(sim, 2)
    yield when(state, lambda s: s.get("pan-position") == 40.0 and s.get("motor-state") == "idle")
    yield svc.relative_move(-10, 5)
    assert (state.get("pan"), state.get("tilt")) == (30.0, 10.0)
    advance(sim, 2)
    yield when(state, lambda s: s.get("pan-position") == 30.0 and s.get("motor-state") == "idle")
    # A tilt write alone keeps the pan where the last move put it.
    state.set({"tilt": -5.0}, OPERATOR)
    yield svc.proto.send("STATUS")
    assert svc.model.pan.target == 30.0 and svc.model.tilt.target == -5.0
    advance(sim, 2)
    yield when(state, lambda s: s.get("tilt-position") == -5.0 and s.get("motor-state") == "idle")
    # A jog ends where its stop leaves it: that is the target then.
    yield svc.continuous_move(0.5, 0)
    advance(sim, 1)
    yield when(state, lambda s: s.get("motor-state") == "moving")
    yield svc.stop()
    advance(sim, 2)
    yield when(state, lambda s: s.get("motor-state") == "idle")
    assert state.get("pan") == state.get("pan-position") > 30.0
    yield svc.home()
    assert (state.get("pan"), state.get("tilt")) == (0.0, 0.0)


def axes_moving(svc):
    return svc.model.pan.moving or svc.model.tilt.moving


@pytest_twisted.inlineCallbacks
def tick(svc, sim):
    """One control cycle of simulated time, then every report it pushed has been read
    (replies and reports come in order: a STATUS answered means all before it arrived)."""
    sim.advance(0.05)
    yield svc.proto.send("STATUS")


@pytest_twisted.inlineCallbacks
def test_a_move_is_moving_once_accepted_and_idle_the_cycle_the_axes_stop(motors):
    svc, state, sim, host = motors
    yield svc.when_connected().addTimeout(10, reactor)
    seen = []
    state.subscribe(lambda changes, origin: seen.append(changes.get("motor-state")))
    for dpan, dtilt in ((6.0, 3.0), (-6.0, -3.0), (2.0, 0.0)):
        assert state.get("motor-state") == "idle"
        yield svc.relative_move(dpan, dtilt)
        # Accepted: moving before any simulated time passed (a poll must not see idle).
        assert state.get("motor-state") == "moving" and axes_moving(svc)
        cycles = 0
        while axes_moving(svc):
            assert state.get("motor-state") == "moving"
            yield tick(svc, sim)
            cycles += 1
        # No further simulated time: the controller's report at rest said so.
        assert state.get("motor-state") == "idle" and cycles > 3
    assert [s for s in seen if s] == ["moving", "idle"] * 3


@pytest_twisted.inlineCallbacks
def test_a_stop_is_idle_the_cycle_the_axes_stop_and_the_jog_end_is_the_target(motors):
    svc, state, sim, host = motors
    yield svc.when_connected().addTimeout(10, reactor)
    yield svc.continuous_move(0.5, 0)
    assert state.get("motor-state") == "moving"
    for _ in range(10):
        yield tick(svc, sim)
    yield svc.stop()
    assert state.get("motor-state") == "moving"  # braking
    cycles = 0
    while axes_moving(svc):
        yield tick(svc, sim)
        cycles += 1
    assert state.get("motor-state") == "idle" and cycles <= 6  # 30 deg/s at 120 deg/s2
    assert state.get("pan") == state.get("pan-position") > 0


@pytest_twisted.inlineCallbacks
def test_without_rest_reports_the_service_asks_when_the_reports_stop(motors):
    svc, state, sim, host = motors
    yield svc.when_connected().addTimeout(10, reactor)
    svc._sim_proto.rest_reports = False  # a controller that only reports at 10 Hz / 1 Hz
    yield svc.relative_move(4.0, 0.0)
    assert state.get("motor-state") == "moving"
    while axes_moving(svc):
        yield tick(svc, sim)
    assert state.get("motor-state") == "moving"  # its next report would be a second away
    asked = svc.proto.sent
    host.advance(REST_CHECK)  # no 10 Hz report for that long: the service asks
    assert svc.proto.sent == asked + 1
    yield svc.proto.send("STATUS")
    assert state.get("motor-state") == "idle"
    assert state.get("pan-position") == state.get("pan") == 4.0


def test_a_write_from_inside_a_change_is_refused():
    state = CameraState()
    errors = []

    def observer(changes, origin):
        try:
            state.update({"pan": 1.0})
        except RuntimeError as e:
            errors.append(e)
    state.subscribe(observer)
    state.set({"tilt": 3.0}, OPERATOR)
    assert len(errors) == 1 and state.get("pan") == 0.0


@pytest_twisted.inlineCallbacks
def test_a_move_after_a_timed_jog_is_not_stopped_by_the_jogs_timeout(motors):
    svc, state, sim, host = motors
    yield svc.when_connected().addTimeout(10, reactor)
    yield svc.continuous_move(0.5, 0.0, timeout=1.0)
    advance(sim, 0.5)
    yield svc.absolute_move(-60.0, 20.0)   # replaces the jog before its timeout
    host.advance(1.0)                      # the jog's timeout passes: no stop now
    yield svc.proto.send("STATUS")
    assert (svc.model.pan.target, svc.model.tilt.target) == (-60.0, 20.0)
    advance(sim, 6)
    yield when(state, lambda s: s.get("pan-position") == -60.0 and
               s.get("tilt-position") == 20.0 and s.get("motor-state") == "idle")
    # A jog left alone still ends at its timeout.
    yield svc.continuous_move(0.5, 0.0, timeout=1.0)
    advance(sim, 0.5)
    assert svc.model.pan.moving
    host.advance(1.0)
    yield svc.proto.send("STATUS")
    advance(sim, 2)
    assert not svc.model.pan.moving
