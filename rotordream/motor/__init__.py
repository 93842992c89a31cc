"""Motors on a serial line: the rotor disc and the pan/tilt axes (docs/motor-protocol.md)."""


class MotorError(Exception):
    """A refused or failed motor command; ``code`` is LIMIT, RANGE, FAULT, BUSY, TIMEOUT, ..."""

    def __init__(self, code, message):
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message
