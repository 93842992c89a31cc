"""The motor service: owns the serial link (or the simulator on a pty) and the motor state.

It turns writes of the motor keys into commands, controller reports into
state updates (broadcast like every key), implements IMotorController for
ONVIF PTZ, and survives the controller going away: motor-state ``fault``,
reconnect with backoff, state re-read and rotor setpoint restored on return.

A move is reported ``moving`` as soon as the controller accepts it, and ``idle``
from the controller's report at rest (pushed at once by controllers that do, see
docs/motor-protocol.md); when the 10 Hz reports of a move stop coming without
one, the service asks for the status itself, so no client waits for the 1 Hz
idle report to learn that a move has ended.

Moves are commands: whoever asks (a ``pan``/``tilt`` write, ONVIF
AbsoluteMove, RelativeMove, GotoPreset, GotoHome, a jog and its stop), the
``pan``/``tilt`` targets report where the axes are headed, so a later write
of one axis never sends the other back to a stale target.

Why it is long: it holds the link's life cycle (connect, silence, reconnect),
the state commands, IMotorController and the presets around one controller;
the wire format and the serial protocol are apart (codec.py, protocol.py).
"""

import json
import os
import secrets
import tty

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from rotordream.config import parse_motor
from rotordream.fsutil import atomic_write, keep_corrupt_copy
from rotordream.interfaces import IMotorController
from rotordream.motor import MotorError
from rotordream.motor.protocol import MotorProtocol
from rotordream.motor.simulator import ControllerModel, SimulatorProtocol

log = Logger()

PRESETS_FILE = "presets.json"
SILENCE = 3.0          # seconds without any line from the controller = fault
BACKOFF = (1.0, 30.0)  # reconnect delays, doubling
# Reports come at 10 Hz while anything moves: none for this long means the axes are at
# rest (or the controller only says so at 1 Hz), so the host asks.
REST_CHECK = 0.12
ROTOR_KEYS = ("rotor-enabled", "rotor-speed", "rotor-direction")


@implementer(IMotorController)
class MotorService(service.Service):
    """The motors, as the state keys and IMotorController see them.

    ``config`` is the ``[motor]`` section (baud, command timeout, retries);
    presets are kept in ``state_dir``; ``kind`` is ``sim`` or ``serial``.
    """

    name = "motor"
    _jog_timeout = None   # the delayed stop of a continuous move with a timeout

    def __init__(self, reactor, state, config, state_dir, kind, device=None, baud=None,
                 sim_clock=None, clock=None):
        self.state = state
        self.reactor = reactor
        self.config = config
        self.kind = kind
        self.device = device
        self.baud = baud or config.baud
        self.clock = clock or reactor          # timeouts, silence, reconnects
        self.sim_clock = sim_clock or reactor  # the simulator's physics
        self.model = ControllerModel() if kind == "sim" else None
        self.proto = None
        self.port = None
        self.identity = None
        self.connected = False
        self.faults = 0   # times the motor went into fault (read by metrics)
        self._sim_io = None
        self._retry = None
        self._silence = None
        self._backoff = BACKOFF[0]
        self._connected_waiters = []
        self.presets_path = os.path.join(state_dir, PRESETS_FILE)
        self._presets = self._load_presets()
        self._settle = None  # after a jog or stop: "moving" then "idle" sets the targets
        self._rest_check = None  # asks for the status when a move's reports stop coming
        self.state.set_command(ROTOR_KEYS, self._rotor_command)
        self.state.set_command(("pan", "tilt"), self._move_command)

    # -- link -----------------------------------------------------------

    def startService(self):
        service.Service.startService(self)
        self.connect()

    def stopService(self):
        service.Service.stopService(self)
        for call in (self._retry, self._silence, self._rest_check, self._jog_timeout):
            if call is not None and call.active():
                call.cancel()
        self._close()

    def connect(self):
        """Open the link and run the handshake (ID, STATUS, restore the rotor)."""
        from twisted.internet.serialport import SerialPort
        self._retry = None
        self._close()  # a previous link (or simulator pty) is done with
        cfg = self.config
        self.proto = MotorProtocol(self, self.clock, cfg.command_timeout, cfg.retries)
        try:
            path = self._open_simulator() if self.kind == "sim" else self.device
            self.port = SerialPort(self.proto, path, self.reactor, baudrate=self.baud)
        except Exception as e:
            log.error("cannot open the motor port {dev}: {e}", dev=self.device, e=e)
            self._schedule_reconnect()
            self._fault("cannot open %s" % self.device)
            return
        self._watch_silence()
        d = self.proto.send("ID")
        d.addCallback(self._identified)
        d.addErrback(lambda f: f.trap(MotorError) and None)

    def _open_simulator(self):
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        path = os.ttyname(slave)
        from twisted.internet.stdio import StandardIO
        self._sim_proto = SimulatorProtocol(self.model, self.sim_clock)
        self._sim_io = StandardIO(self._sim_proto, stdin=master, stdout=master,
                                  reactor=self.reactor)
        self._sim_slave = slave  # kept open so the pty lives while the port reopens
        return path

    def _identified(self, fields):
        self.identity = fields
        self.connected = True
        self._backoff = BACKOFF[0]
        log.info("motor controller {model} firmware {fw}", model=fields.get("model"),
                 fw=fields.get("fw"))
        d = self.proto.send("STATUS")
        d.addCallback(self.report)
        d.addCallback(lambda _: self._restore_rotor())
        d.addErrback(lambda f: f.trap(MotorError) and None)
        d.addCallback(lambda _: self._wake_connected())
        return d

    def when_connected(self):
        """A Deferred firing once the link is up and the rotor setpoint restored."""
        if self.connected and self.proto is not None and not self.proto.pending:
            return defer.succeed(self)
        d = defer.Deferred()
        self._connected_waiters.append(d)
        return d

    def _wake_connected(self):
        waiters, self._connected_waiters = self._connected_waiters, []
        for d in waiters:
            d.callback(self)

    def _restore_rotor(self):
        s = self.state
        cmds = [self.proto.send("ROTOR", "SPEED", s.get("rotor-speed")),
                self.proto.send("ROTOR", "DIR", s.get("rotor-direction").upper()),
                self.proto.send("ROTOR", "ON" if s.get("rotor-enabled") else "OFF")]
        return defer.gatherResults(cmds, consumeErrors=True)

    def _close(self):
        self.connected = False
        if self.port is not None:
            port, self.port = self.port, None
            try:
                port.loseConnection()
            except Exception:
                pass
        if self._sim_io is not None:
            io, self._sim_io = self._sim_io, None
            io.loseConnection()
            try:
                os.close(self._sim_slave)
            except OSError:
                pass

    def _schedule_reconnect(self):
        if self.running and (self._retry is None or not self._retry.active()):
            self._retry = self.clock.callLater(self._backoff, self.connect)
            self._backoff = min(self._backoff * 2, BACKOFF[1])

    def _fault(self, why):
        self.connected = False
        if self.state.get("motor-state") != "fault":
            log.error("motor fault: {reason}", event="motor_fault", reason=why)
            self.faults += 1
            self.state.update({"motor-state": "fault"}, origin="motor")
            self.state.publish_event({"error": "motor controller: %s" % why,
                                      "key": "motor-state", "code": "MOTOR_FAULT"})

    def _watch_silence(self):
        if self._silence is not None and self._silence.active():
            self._silence.reset(SILENCE)
        else:
            self._silence = self.clock.callLater(SILENCE, self._silent)

    def _silent(self):
        log.warn("the motor controller stopped talking", event="motor_silent")
        self._close()
        self._schedule_reconnect()
        self._fault("no answer")

    # -- MotorProtocol receiver -----------------------------------------

    def line_seen(self):
        """Any line from the controller: it is alive."""
        if self.running:
            self._watch_silence()

    def report(self, fields):
        """A status report (or STATUS reply): publish positions, rpm and motor state."""
        try:
            update = {"pan-position": round(float(fields["pan"]), 1),
                      "tilt-position": round(float(fields["tilt"]), 1),
                      "rotor-rpm": int(fields["rpm"]),
                      "motor-state": fields["state"].lower()}
        except (KeyError, ValueError):
            log.info("incomplete motor status {fields}", fields=fields)
            return
        if update["motor-state"] not in ("idle", "moving", "fault"):
            return
        if self._settle == "jog" and update["motor-state"] == "moving":
            self._settle = "stop"
        elif self._settle == "stop" and update["motor-state"] == "idle":
            # A jog or stop ended where it ended: that is the target now.
            self._settle = None
            update.update(pan=update["pan-position"], tilt=update["tilt-position"])
        self.state.update(update, origin="motor")
        self.last_status = fields
        self._watch_rest(update["motor-state"] == "moving")

    def _watch_rest(self, moving):
        """While a move goes on, ask for the status once its reports stop coming."""
        if not moving:
            if self._rest_check is not None and self._rest_check.active():
                self._rest_check.cancel()
            return
        if self._rest_check is not None and self._rest_check.active():
            self._rest_check.reset(REST_CHECK)
        elif self.running:
            self._rest_check = self.clock.callLater(REST_CHECK, self._ask_status)

    def _ask_status(self):
        if self.proto is None or not self.connected:
            return
        d = self.proto.send("STATUS")
        d.addCallback(self.report)
        d.addErrback(lambda f: f.trap(MotorError) and None)

    def _accepted(self, result):
        """The controller took a move: the axes are moving from now on."""
        if self.state.get("motor-state") != "fault":
            self.state.update({"motor-state": "moving"}, origin="motor")
        self._watch_rest(True)
        return result

    def timed_out(self):
        """A command got no answer after its retries."""
        self._fault("command timed out")

    def link_lost(self, reason):
        """The port closed under us (USB unplugged, controller gone)."""
        if self.port is None:
            return  # we closed it ourselves
        self.port = None
        # Finish after the port's own teardown: reopening inside it could reuse its fd
        # number while the old port still unregisters that fd from the reactor.
        self.reactor.callLater(0, self._after_link_lost)

    def _after_link_lost(self):
        # Reconnect first: observers of the fault run synchronously and may act on it.
        self._schedule_reconnect()
        self._fault("link lost")

    # -- state commands ---------------------------------------------------

    def _rotor_command(self, values, origin):
        """Rotor keys written: they are settings the controller applies; report, then send."""
        self.state.update(values, origin=origin)
        d = self.set_rotor(enabled=values.get("rotor-enabled"), speed=values.get("rotor-speed"),
                           direction=values.get("rotor-direction"))
        d.addErrback(self._command_failed, next(iter(values)))
        return None

    def _move_command(self, values, origin):
        """``pan``/``tilt`` written: the new targets are reported and the move is sent.

        Both targets go out together: a batch {"pan", "tilt"} is one move, and a
        write of one axis keeps the other's target.
        """
        pan = values.get("pan", self.state.get("pan"))
        tilt = values.get("tilt", self.state.get("tilt"))
        self._settle = None
        self.state.update({"pan": pan, "tilt": tilt}, origin=origin)
        d = self._send(*self._abs_args(pan, tilt, None))
        d.addCallback(self._accepted)
        d.addErrback(self._command_failed, next(iter(values)))
        return None

    def _command_failed(self, failure, key):
        failure.trap(MotorError)
        self.state.publish_event({"error": str(failure.value), "key": key,
                                  "code": failure.value.code})

    def _targets(self, pan, tilt):
        # Every accepted move reports where the axes are headed (see module docstring).
        def report(result):
            self._settle = None
            self.state.update({"pan": _clamp(self.state.spec("pan"), pan),
                               "tilt": _clamp(self.state.spec("tilt"), tilt)}, origin="motor")
            return self._accepted(result)
        return report

    # -- IMotorController -------------------------------------------------

    def _send(self, *args):
        if self.proto is None or not self.connected:
            return defer.fail(MotorError("DISCONNECTED", "the motor controller is not "
                                                         "connected"))
        return self.proto.send(*args)

    def continuous_move(self, pan_velocity, tilt_velocity, timeout=None):
        self._end_jog_timeout()
        d = self._send("MOVE", "VEL", "%.3f" % pan_velocity, "%.3f" % tilt_velocity)
        # A zero velocity brakes like a stop.
        d.addCallback(self._jogging if pan_velocity or tilt_velocity else self._stopping)
        if timeout:
            self._jog_timeout = self.clock.callLater(timeout, self._jog_expired)
        return d

    def _end_jog_timeout(self):
        # A later command replaces the jog: its timeout must not stop that command's move.
        if self._jog_timeout is not None and self._jog_timeout.active():
            self._jog_timeout.cancel()
        self._jog_timeout = None

    def _jog_expired(self):
        self._jog_timeout = None
        self.stop().addErrback(lambda f: None)

    def _jogging(self, result):
        # The targets follow once the jog has started and ended (report()).
        self._settle = "jog"
        return self._accepted(result)

    def _abs_args(self, pan, tilt, speed):
        return ["MOVE", "ABS", "%.2f" % pan, "%.2f" % tilt] + (["%.1f" % speed] if speed else [])

    def absolute_move(self, pan=None, tilt=None, speed=None):
        self._end_jog_timeout()
        pan = self.state.get("pan-position") if pan is None else pan
        tilt = self.state.get("tilt-position") if tilt is None else tilt
        return self._send(*self._abs_args(pan, tilt, speed)).addCallback(
            self._targets(pan, tilt))

    def relative_move(self, pan=0.0, tilt=0.0, speed=None):
        self._end_jog_timeout()
        args = ["MOVE", "REL", "%.2f" % pan, "%.2f" % tilt] + (["%.1f" % speed] if speed else [])
        # The controller moves from where the axes are now.
        target = (self.state.get("pan-position") + pan, self.state.get("tilt-position") + tilt)
        return self._send(*args).addCallback(self._targets(*target))

    def stop(self, pan=True, tilt=True):
        self._end_jog_timeout()
        which = "ALL" if pan and tilt else "PAN" if pan else "TILT"
        return self._send("STOP", which).addCallback(self._stopping)

    def _stopping(self, result):
        # Still moving while the axes brake: the report at rest says idle, or the
        # status is asked for once the reports stop.
        self._settle = "stop"
        self._watch_rest(self.state.get("motor-state") == "moving")
        return result

    def home(self):
        self._end_jog_timeout()
        home = self._presets.get("home")
        if home:
            return self.absolute_move(home["pan"], home["tilt"])
        return self._send("HOME").addCallback(self._targets(0.0, 0.0))

    def set_home(self):
        self._presets["home"] = {"name": "home", "pan": self.state.get("pan-position"),
                                 "tilt": self.state.get("tilt-position")}
        self._save_presets()

    def set_rotor(self, enabled=None, speed=None, direction=None):
        cmds = []
        if speed is not None:
            cmds.append(("ROTOR", "SPEED", int(speed)))
        if direction is not None:
            cmds.append(("ROTOR", "DIR", direction.upper()))
        if enabled is not None:
            cmds.append(("ROTOR", "ON" if enabled else "OFF"))
        return defer.gatherResults([self._send(*c) for c in cmds], consumeErrors=True) \
            .addErrback(lambda f: f.value.subFailure if hasattr(f.value, "subFailure") else f)

    def status(self):
        s = self.state
        return {"pan": s.get("pan-position"), "tilt": s.get("tilt-position"),
                "pan_moving": s.get("motor-state") == "moving",
                "tilt_moving": s.get("motor-state") == "moving",
                "state": s.get("motor-state"), "rotor_enabled": s.get("rotor-enabled"),
                "rotor_rpm": s.get("rotor-rpm"), "connected": self.connected}

    def limits(self):
        pan, tilt = self.state.spec("pan"), self.state.spec("tilt")
        return {"pan_min": pan.minimum, "pan_max": pan.maximum, "tilt_min": tilt.minimum,
                "tilt_max": tilt.maximum, "pan_speed": 60.0, "tilt_speed": 40.0}

    # -- presets ----------------------------------------------------------

    def _load_presets(self):
        try:
            with open(self.presets_path, "rb") as f:
                data = json.loads(f.read().decode())
            assert isinstance(data, dict)
            return data
        except FileNotFoundError:
            return {}
        except Exception as e:
            log.error("presets file unreadable ({e}); starting without presets", e=e)
            keep_corrupt_copy(self.presets_path, log)
            return {}

    def _save_presets(self):
        atomic_write(self.presets_path, json.dumps(self._presets, indent=1).encode())

    def presets(self):
        return [dict(token=t, **p) for t, p in self._presets.items() if t != "home"]

    def set_preset(self, name, token=None):
        token = token or "p" + secrets.token_hex(4)
        self._presets[token] = {"name": name, "pan": self.state.get("pan-position"),
                                "tilt": self.state.get("tilt-position")}
        self._save_presets()
        return token

    def goto_preset(self, token, speed=None):
        p = self._presets[token]
        return self.absolute_move(p["pan"], p["tilt"], speed)

    def remove_preset(self, token):
        if token == "home":
            raise KeyError(token)
        del self._presets[token]
        self._save_presets()


def _clamp(spec, value):
    return round(min(spec.maximum, max(spec.minimum, float(value))), 2)


def build_motor_service(reactor, state, config):
    """The motor service for ``[server] motor`` (sim or serial), or None for ``none``."""
    kind, device, baud = parse_motor(config.server.motor)
    if kind == "none":
        return None
    return MotorService(reactor, state, config.motor, config.server.state_dir, kind, device,
                        baud)
