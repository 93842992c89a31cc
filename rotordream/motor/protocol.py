"""The host side of the motor protocol on a serial line (a thin adapter over codec.py).

Commands get a sequence number, are answered by the reply with the same
number, time out and are resent a bounded number of times; at most
``max_pending`` are outstanding. Status reports go to the receiver. Damaged
lines are counted and logged, never fatal.
"""

from twisted.internet import defer
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver

from rotordream.motor import MotorError
from rotordream.motor.codec import CodecError, Command, Report, parse_from_controller

log = Logger()


class _Pending:
    def __init__(self, command, deferred):
        self.command = command
        self.deferred = deferred
        self.attempts = 1
        self.timer = None


class MotorProtocol(LineOnlyReceiver):
    """Sends commands and correlates replies; the receiver gets reports and link events.

    The receiver provides ``report(fields)``, ``line_seen()``, ``timed_out()`` and
    ``link_lost(reason)``.
    """

    delimiter = b"\n"
    MAX_LENGTH = 1024

    def __init__(self, receiver, clock, timeout=1.0, retries=2, max_pending=16):
        self.receiver = receiver
        self.clock = clock
        self.timeout = timeout
        self.retries = retries
        self.max_pending = max_pending
        self.pending = {}
        self.seq = 0
        self.sent = 0  # lines written, resends included
        self.bad_lines = 0

    def send(self, name, *args):
        """Send a command; Deferred firing with the reply's fields, or MotorError."""
        if self.transport is None:
            return defer.fail(MotorError("DISCONNECTED", "the motor controller is not connected"))
        if len(self.pending) >= self.max_pending:
            return defer.fail(MotorError("BUSY", "too many motor commands waiting"))
        self.seq = (self.seq + 1) % 65536
        entry = _Pending(Command(self.seq, name, [str(a) for a in args]), defer.Deferred())
        self.pending[self.seq] = entry
        self._transmit(entry)
        return entry.deferred

    def _transmit(self, entry):
        self.transport.write(entry.command.encode())
        self.sent += 1
        entry.timer = self.clock.callLater(self.timeout, self._expired, entry.command.seq)

    def _expired(self, seq):
        entry = self.pending.get(seq)
        if entry is None:
            return
        if entry.attempts <= self.retries:
            entry.attempts += 1
            self._transmit(entry)
            return
        del self.pending[seq]
        entry.deferred.errback(MotorError("TIMEOUT", "no answer to %s after %d tries"
                                          % (entry.command.name, entry.attempts)))
        self.receiver.timed_out()

    def lineReceived(self, line):
        try:
            message = parse_from_controller(line.rstrip(b"\r"))
        except CodecError as e:
            self.bad_lines += 1
            log.info("ignored a bad motor line ({e}): {line!r}", e=e, line=line[:80])
            return
        self.receiver.line_seen()
        if isinstance(message, Report):
            self.receiver.report(message.fields)
            return
        entry = self.pending.pop(message.seq, None)
        if entry is None:
            return  # a late answer to a command already retried or given up
        if entry.timer is not None and entry.timer.active():
            entry.timer.cancel()
        if message.ok:
            entry.deferred.callback(message.fields)
        else:
            entry.deferred.errback(MotorError(message.code, message.message))

    def lineLengthExceeded(self, line):
        self.bad_lines += 1

    def connectionLost(self, reason):
        pending, self.pending = self.pending, {}
        for entry in pending.values():
            if entry.timer is not None and entry.timer.active():
                entry.timer.cancel()
            entry.deferred.errback(MotorError("DISCONNECTED", "the motor link was lost"))
        self.receiver.link_lost(reason)
