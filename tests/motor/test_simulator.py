"""The simulated controller: physics driven by explicit time steps, commands, faults."""

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from rotordream.motor.codec import Command, Report, parse_from_controller
from rotordream.motor.simulator import ControllerModel, SimulatorProtocol


def run(model, seconds, dt=0.05):
    for _ in range(int(round(seconds / dt))):
        model.step(dt)


def ask(model, name, *args):
    return model.handle(Command(1, name, [str(a) for a in args]))


def test_absolute_move_ramps_and_ends_at_the_target():
    m = ControllerModel()
    assert ask(m, "MOVE", "ABS", 90, -30).ok
    run(m, 0.5)
    assert 0 < m.pan.position < 90 and m.moving
    assert abs(m.pan.velocity) <= m.pan.max_speed + 1e-9
    run(m, 4)
    assert m.pan.position == 90 and m.tilt.position == -30 and not m.moving
    assert m.status()["state"] == "IDLE"


def test_relative_velocity_stop_home_and_limits():
    m = ControllerModel()
    ask(m, "MOVE", "REL", 10, 5)
    run(m, 2)
    assert (m.pan.position, m.tilt.position) == (10, 5)
    ask(m, "MOVE", "VEL", 1, 0)
    run(m, 1)
    moving_at = m.pan.position
    assert ask(m, "STOP", "PAN").ok
    run(m, 1)
    assert not m.pan.moving and m.pan.position > moving_at
    refused = ask(m, "MOVE", "ABS", 200, 0)
    assert not refused.ok and refused.code == "LIMIT" and "170" in refused.message
    ask(m, "MOVE", "VEL", -1, 0)
    run(m, 8)
    assert m.pan.position == -170 and "P-" in m.status()["ends"]
    ask(m, "HOME")
    run(m, 8)
    assert (m.pan.position, m.tilt.position) == (0, 0)


def test_rotor_ramps_and_faults_refuse_commands():
    m = ControllerModel()
    ask(m, "ROTOR", "SPEED", 3000)
    ask(m, "ROTOR", "ON")
    run(m, 0.5)
    assert 900 < m.rpm < 1100
    run(m, 2)
    assert m.rpm == 3000
    assert not ask(m, "ROTOR", "SPEED", 9000).ok
    ask(m, "FAULT", "SET")
    assert ask(m, "MOVE", "ABS", 1, 1).code == "FAULT"
    run(m, 3)
    assert m.rpm == 0 and m.status()["state"] == "FAULT"
    ask(m, "FAULT", "CLEAR")
    assert ask(m, "ID").fields["proto"] == "1"
    for bad in (("MOVE", "ABS", "x", 1), ("MOVE", "ABS", "nan", 0), ("BOGUS",),
                ("ROTOR", "SIDEWAYS")):
        assert not ask(m, *bad).ok


def test_protocol_answers_and_reports_on_a_clock():
    clock = Clock()
    proto = SimulatorProtocol(ControllerModel(), clock, tick=0.0625)  # exact in binary
    t = StringTransport()
    proto.makeConnection(t)
    proto.dataReceived(Command(5, "MOVE", ["ABS", "150", "0"]).encode())
    reply = parse_from_controller(t.value().split(b"\n")[0])
    assert reply.seq == 5 and reply.ok
    t.clear()
    clock.pump([0.0625] * 16)  # one second of simulated time
    lines = [l for l in t.value().split(b"\n") if l]
    reports = [parse_from_controller(l) for l in lines]
    # While moving a report every round(0.1 / tick) = 2 ticks: 8 in the second.
    assert all(isinstance(r, Report) for r in reports) and len(reports) == 8
    assert 0 < float(reports[-1].fields["pan"]) < 150
    proto.dataReceived(b"5 MOVE ABS 1 1*00\n\xff garbage\n")
    assert proto.bad_lines == 2


def test_the_simulator_runs_alone_on_a_pty(tmp_path):
    import os
    import select
    import subprocess
    import sys
    import tty

    from rotordream.motor.codec import Reply

    master, slave = os.openpty()
    tty.setraw(master)
    proc = subprocess.Popen([sys.executable, "-m", "rotordream.motor.simulator",
                             os.ttyname(slave)], stderr=subprocess.PIPE)
    try:
        buf = b""
        deadline = 20
        os.write(master, Command(1, "ID").encode())
        while b"OK" not in buf:
            ready, _, _ = select.select([master], [], [], deadline)
            assert ready, "no answer from the simulator"
            buf += os.read(master, 4096)
            if b"\n" in buf and b"OK" not in buf.split(b"\n")[0]:
                buf = buf.split(b"\n", 1)[1]  # a status report came first
                os.write(master, Command(1, "ID").encode())
        line = [l for l in buf.split(b"\n") if b" OK " in l or l.startswith(b"1 OK")][0]
        reply = parse_from_controller(line.rstrip(b"\r"))
        assert isinstance(reply, Reply) and reply.fields["model"] == "RD-SIM-1"
    finally:
        proc.terminate()
        proc.wait(10)
        os.close(master)
        os.close(slave)


def _reports(t):
    lines = [parse_from_controller(l) for l in t.value().split(b"\n") if l]
    t.clear()
    return [r.fields["state"] for r in lines if isinstance(r, Report)]


def test_a_report_follows_a_move_or_stop_at_once_and_the_tick_the_axes_come_to_rest():
    clock = Clock()
    proto = SimulatorProtocol(ControllerModel(), clock, tick=0.0625)
    t = StringTransport()
    proto.makeConnection(t)
    proto.dataReceived(Command(1, "MOVE", ["REL", "3", "0"]).encode())
    assert _reports(t) == ["MOVING"]  # right after the reply, before any tick
    states = []
    while proto.model.pan.moving:
        clock.advance(0.0625)
        states += _reports(t)
    # Reported on the very tick the axis stopped, not a second later.
    assert states[-1] == "IDLE" and states.count("IDLE") == 1
    proto.dataReceived(Command(2, "MOVE", ["VEL", "0.5", "0"]).encode())
    assert _reports(t) == ["MOVING"]  # a jog is moving before it has any speed
    clock.pump([0.0625] * 8)
    _reports(t)
    proto.dataReceived(Command(3, "STOP", ["ALL"]).encode())
    assert _reports(t) == ["MOVING"]  # braking
    states = []
    while proto.model.pan.moving:
        clock.advance(0.0625)
        states += _reports(t)
    assert states[-1] == "IDLE"
    proto.dataReceived(Command(4, "STOP", ["ALL"]).encode())
    assert _reports(t) == ["IDLE"]  # nothing to stop


def test_a_controller_without_rest_reports_says_idle_only_at_its_1_hz_report():
    clock = Clock()
    proto = SimulatorProtocol(ControllerModel(), clock, tick=0.0625, rest_reports=False)
    t = StringTransport()
    proto.makeConnection(t)
    proto.dataReceived(Command(1, "MOVE", ["REL", "3", "0"]).encode())
    assert _reports(t) == []
    while proto.model.pan.moving:
        clock.advance(0.0625)
    assert "IDLE" not in _reports(t)
    clock.pump([0.0625] * 16)
    assert _reports(t) == ["IDLE"]
