"""The motor protocol's lines, without I/O (docs/motor-protocol.md)."""

from dataclasses import dataclass, field

MAX_LINE = 200


class CodecError(ValueError):
    """A line that fails the checksum or does not parse."""


def checksum(body):
    """XOR of the bytes of ``body`` as two hex digits."""
    value = 0
    for b in body.encode("ascii"):
        value ^= b
    return "%02X" % value


def frame(body):
    """``body`` with its checksum and newline, as bytes."""
    return ("%s*%s\n" % (body, checksum(body))).encode("ascii")


def unframe(line):
    """The body of one received line (bytes, without newline); CodecError if damaged."""
    if len(line) > MAX_LINE:
        raise CodecError("line too long")
    try:
        text = line.decode("ascii").rstrip("\r")
    except UnicodeDecodeError:
        raise CodecError("not ASCII") from None
    body, sep, ck = text.rpartition("*")
    if not sep or len(ck) != 2 or checksum(body) != ck.upper():
        raise CodecError("bad checksum")
    return body


@dataclass
class Command:
    """A host command."""

    seq: int
    name: str
    args: list = field(default_factory=list)

    def encode(self):
        """The framed line."""
        return frame(" ".join([str(self.seq), self.name] + [str(a) for a in self.args]))


@dataclass
class Reply:
    """A controller's answer to command ``seq``."""

    seq: int
    ok: bool
    fields: dict = field(default_factory=dict)
    code: str = ""
    message: str = ""

    def encode(self):
        """The framed line."""
        if self.ok:
            parts = ["%s=%s" % kv for kv in self.fields.items()]
            return frame(" ".join([str(self.seq), "OK"] + parts))
        return frame("%d ERR %s %s" % (self.seq, self.code, self.message))


@dataclass
class Report:
    """An unsolicited status report."""

    fields: dict

    def encode(self):
        """The framed line."""
        return frame("! STATUS " + " ".join("%s=%s" % kv for kv in self.fields.items()))


def _fields(tokens):
    out = {}
    for t in tokens:
        k, sep, v = t.partition("=")
        if not sep or not k:
            raise CodecError("bad field %r" % t)
        out[k] = v
    return out


def parse_from_controller(line):
    """Parse a controller line into a Reply or a Report; CodecError if damaged."""
    tokens = unframe(line).split()
    if len(tokens) >= 2 and tokens[0] == "!" and tokens[1] == "STATUS":
        return Report(_fields(tokens[2:]))
    if len(tokens) < 2 or not tokens[0].isdigit():
        raise CodecError("not a reply")
    seq = int(tokens[0])
    if tokens[1] == "OK":
        return Reply(seq, True, _fields(tokens[2:]))
    if tokens[1] == "ERR" and len(tokens) >= 3:
        return Reply(seq, False, code=tokens[2], message=" ".join(tokens[3:]))
    raise CodecError("not a reply")


def parse_from_host(line):
    """Parse a host line into a Command (for the controller side); CodecError if damaged."""
    tokens = unframe(line).split()
    if len(tokens) < 2 or not tokens[0].isdigit() or int(tokens[0]) > 65535:
        raise CodecError("not a command")
    return Command(int(tokens[0]), tokens[1].upper(), tokens[2:])
