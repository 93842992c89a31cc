"""A simulated motor controller speaking docs/motor-protocol.md.

:class:`ControllerModel` is the physics and the command logic, advanced by
``step(dt)`` (no clock of its own, so tests drive time exactly); the
protocol class puts it on a line-based transport: a pseudo-terminal inside
the daemon (``--motor sim``) or a serial device when run alone:

    python -m rotordream.motor.simulator /dev/pts/N

Run alone, SIGUSR1 and SIGUSR2 set and clear a fault (see :func:`main`).
"""

import sys

from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver

from rotordream.motor.codec import CodecError, Reply, Report, parse_from_host

log = Logger()


def _approach(value, target, max_step):
    if abs(target - value) <= max_step:
        return target
    return value + max_step if target > value else value - max_step


class Axis:
    """One positioning axis with limits, a speed limit and an acceleration ramp."""

    def __init__(self, name, low, high, max_speed, accel):
        self.name = name
        self.low, self.high = low, high
        self.max_speed = max_speed
        self.accel = accel
        self.position = 0.0
        self.velocity = 0.0
        self.target = None       # absolute target, or None
        self.jog = None          # commanded velocity (deg/s), or None
        self.speed = max_speed   # speed limit of the current move

    @property
    def moving(self):
        """True while the axis moves or has somewhere to go (a target, or a jog speed)."""
        return self.velocity != 0.0 or self.jog not in (None, 0.0) or (
            self.target is not None and abs(self.target - self.position) > 1e-6)

    def step(self, dt):
        """Advance ``dt`` seconds: ramp velocity toward what the move needs, stop at limits."""
        if self.jog is not None:
            wanted = self.jog
        elif self.target is not None:
            distance = self.target - self.position
            # The fastest speed from which we can still brake to the target in time.
            brake = (2 * self.accel * abs(distance)) ** 0.5
            wanted = min(self.speed, brake) * (1 if distance > 0 else -1)
        else:
            wanted = 0.0
        self.velocity = _approach(self.velocity, wanted, self.accel * dt)
        before = None if self.target is None else self.target - self.position
        self.position += self.velocity * dt
        if before is not None:
            after = self.target - self.position
            # Arrived: crossed the target this step, or crawling within a hundredth of it.
            if before * after <= 0 or abs(after) < 0.01:
                self.position, self.velocity, self.target = self.target, 0.0, None
        if self.position <= self.low or self.position >= self.high:
            self.position = min(max(self.position, self.low), self.high)
            self.velocity, self.jog, self.target = 0.0, None, None

    def ends(self):
        """End-stop flags hit by this axis."""
        p = self.name[0].upper()
        return [p + "-"] * (self.position <= self.low) + [p + "+"] * (self.position >= self.high)

    def stop(self):
        """Decelerate to a stop (no new target)."""
        self.target, self.jog = None, 0.0


class ControllerModel:
    """The controller's behaviour: rotor, pan, tilt, faults and the command set."""

    MODEL = "RD-SIM-1"
    FIRMWARE = "1.0.0"

    def __init__(self):
        self.pan = Axis("pan", -170.0, 170.0, 60.0, 120.0)
        self.tilt = Axis("tilt", -90.0, 90.0, 40.0, 80.0)
        self.rotor_on = False
        self.rotor_target = 3000
        self.rotor_dir = "CW"
        self.rpm = 0.0
        self.rpm_ramp = 2000.0  # rpm per second
        self.fault = False
        self.silent = False  # stop answering at all (tests of host timeouts)

    @property
    def moving(self):
        """True while an axis moves or the rotor ramps."""
        rotor_goal = self.rotor_target if self.rotor_on and not self.fault else 0
        return self.pan.moving or self.tilt.moving or abs(self.rpm - rotor_goal) > 0.5

    def step(self, dt):
        """Advance the physics by ``dt`` seconds."""
        for axis in (self.pan, self.tilt):
            axis.step(dt)
            if axis.jog == 0.0 and axis.velocity == 0.0:
                axis.jog = None
        goal = self.rotor_target if self.rotor_on and not self.fault else 0
        self.rpm = _approach(self.rpm, goal, self.rpm_ramp * dt)

    def status(self):
        """The status fields of a report or a STATUS reply."""
        ends = self.pan.ends() + self.tilt.ends()
        state = "FAULT" if self.fault else "MOVING" if self.moving else "IDLE"
        return {"pan": "%.2f" % self.pan.position, "tilt": "%.2f" % self.tilt.position,
                "rpm": "%d" % round(self.rpm), "rotor": "%d" % self.rotor_on,
                "dir": self.rotor_dir, "moving": "%d" % self.moving, "state": state,
                "ends": ",".join(ends) or "-"}

    def handle(self, cmd):
        """Answer one Command with a Reply."""
        try:
            fields = self._dispatch(cmd.name, [a.upper() for a in cmd.args])
        except _Refused as e:
            return Reply(cmd.seq, False, code=e.code, message=e.message)
        return Reply(cmd.seq, True, fields or {})

    def _dispatch(self, name, args):
        if name == "ID":
            return {"model": self.MODEL, "fw": self.FIRMWARE, "proto": "1"}
        if name == "STATUS":
            return self.status()
        if name == "FAULT":
            self.fault = args[:1] == ["SET"]
            return None
        if self.fault:
            raise _Refused("FAULT", "controller in fault; send FAULT CLEAR")
        if name == "ROTOR":
            return self._rotor(args)
        if name == "MOVE":
            return self._move(args)
        if name == "STOP":
            which = args[0] if args else "ALL"
            if which not in ("PAN", "TILT", "ALL"):
                raise _Refused("SYNTAX", "STOP PAN|TILT|ALL")
            for axis in (self.pan, self.tilt):
                if which in (axis.name.upper(), "ALL"):
                    axis.stop()
            return None
        if name == "HOME":
            for axis in (self.pan, self.tilt):
                axis.jog, axis.target, axis.speed = None, 0.0, axis.max_speed
            return None
        raise _Refused("UNKNOWN", "unknown command %s" % name)

    def _rotor(self, args):
        if args == ["ON"] or args == ["OFF"]:
            self.rotor_on = args[0] == "ON"
        elif len(args) == 2 and args[0] == "SPEED":
            rpm = _number(args[1])
            if not 0 <= rpm <= 6000:
                raise _Refused("RANGE", "rotor speed must be 0-6000 rpm")
            self.rotor_target = rpm
        elif len(args) == 2 and args[0] == "DIR" and args[1] in ("CW", "CCW"):
            self.rotor_dir = args[1]
        else:
            raise _Refused("SYNTAX", "ROTOR ON|OFF|SPEED <rpm>|DIR CW|CCW")
        return None

    def _move(self, args):
        if len(args) < 3 or args[0] not in ("ABS", "REL", "VEL"):
            raise _Refused("SYNTAX", "MOVE ABS|REL|VEL <pan> <tilt> [speed]")
        a, b = _number(args[1]), _number(args[2])
        if args[0] == "VEL":
            if not (-1 <= a <= 1 and -1 <= b <= 1):
                raise _Refused("RANGE", "velocities are -1..1")
            for axis, v in ((self.pan, a), (self.tilt, b)):
                axis.target, axis.jog = None, v * axis.max_speed
            return None
        if args[0] == "REL":
            a, b = self.pan.position + a, self.tilt.position + b
        for axis, value in ((self.pan, a), (self.tilt, b)):
            if not axis.low <= value <= axis.high:
                raise _Refused("LIMIT", "%s %.2f outside %g..%g"
                               % (axis.name, value, axis.low, axis.high))
        speed = _number(args[3]) if len(args) > 3 else None
        for axis, value in ((self.pan, a), (self.tilt, b)):
            axis.jog, axis.target = None, value
            axis.speed = min(speed, axis.max_speed) if speed else axis.max_speed
        return None


class _Refused(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def _number(text):
    try:
        value = float(text)
    except ValueError:
        raise _Refused("SYNTAX", "not a number: %s" % text) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise _Refused("RANGE", "not a finite number")
    return value


class SimulatorProtocol(LineOnlyReceiver):
    """The model on a line transport: answers commands, pushes status reports.

    Reports go out at 10 Hz while anything moves and 1 Hz otherwise, and at once after
    the reply to a command that starts or stops the axes and on the tick the axes come to
    rest (``rest_reports``), so the host knows a move's end without waiting a second.
    """

    delimiter = b"\n"
    MAX_LENGTH = 1024

    MOTION_COMMANDS = ("MOVE", "STOP", "HOME")

    def __init__(self, model, clock, tick=0.05, rest_reports=True):
        self.model = model
        self.rest_reports = rest_reports
        self._axes_moving = False
        self.clock = clock
        self.tick = tick
        self.bad_lines = 0
        self.commands = 0  # well-formed commands received (answered or not)
        self._since_report = 0  # ticks
        self._loop = LoopingCall.withCount(self._step)
        self._loop.clock = clock

    def connectionMade(self):
        self._loop.start(self.tick, now=False)

    def connectionLost(self, reason):
        if self._loop.running:
            self._loop.stop()

    def lineReceived(self, line):
        try:
            cmd = parse_from_host(line.rstrip(b"\r"))
        except CodecError:
            self.bad_lines += 1
            return
        self.commands += 1
        if self.model.silent:
            return
        reply = self.model.handle(cmd)
        self.transport.write(reply.encode())
        self._axes_moving = self._axes()
        if reply.ok and cmd.name in self.MOTION_COMMANDS and self.rest_reports:
            self._report()

    def _axes(self):
        return self.model.pan.moving or self.model.tilt.moving

    def _report(self):
        self._since_report = 0
        self.transport.write(Report(self.model.status()).encode())

    def _step(self, count):
        # count > 1 when the reactor was late: simulate the time that really passed.
        self.model.step(self.tick * count)
        self._since_report += count
        came_to_rest = self._axes_moving and not self._axes()
        self._axes_moving = self._axes()
        if self.model.silent:
            return
        interval = 0.1 if self.model.moving else 1.0
        if self._since_report >= round(interval / self.tick) or (
                came_to_rest and self.rest_reports):
            self._report()


def main(argv):
    """Run the simulator on a serial device (e.g. one end of a socat pty pair).

    A fault can be injected from outside, as ``FAULT SET`` / ``FAULT CLEAR`` would from
    the host: SIGUSR1 puts the controller into fault and SIGUSR2 clears it, each followed
    at once by a status report. "simulator on DEVICE" on stdout says it is running.
    """
    import signal

    from twisted.internet import reactor
    from twisted.internet.serialport import SerialPort
    if len(argv) != 2:
        sys.exit("usage: python -m rotordream.motor.simulator /dev/ptyX")
    model = ControllerModel()
    proto = SimulatorProtocol(model, reactor)
    SerialPort(proto, argv[1], reactor, baudrate=115200)

    def set_fault(on):
        model.fault = on
        if not model.silent:
            proto._report()

    for number, on in ((signal.SIGUSR1, True), (signal.SIGUSR2, False)):
        # A signal handler may run mid-write: hand the change to the reactor's thread.
        signal.signal(number, lambda *_, on=on: reactor.callFromThread(set_fault, on))
    reactor.callWhenRunning(lambda: print("simulator on %s" % argv[1], flush=True))
    reactor.run()


if __name__ == "__main__":
    main(sys.argv)
