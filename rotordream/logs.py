"""The daemon's log lines: one line per event, ``event=<name>`` and ``key=value`` fields.

A part logs ``log.info("...", event="rtsp_session_start", client=..., stream=...)``;
:func:`format_line` renders ``level=info area=rtsp event=rtsp_session_start
client=127.0.0.1 stream=stream1``. Values are quoted and escaped when they need it
(``"``, ``\\``, newlines and other control characters), strings are cut to
:data:`MAX_VALUE` characters, and fields whose name says secret (password, token,
cookie, ...) are never written. The human text comes last as ``msg="..."``,
formatted from the same cleaned fields; log calls without an ``event`` are
``event=message``.

Levels are set per area (``rotordream.<area>`` namespaces) by ``[log] level`` and
``[log] levels``, and change on reload (:meth:`LogSetup.reconfigure`). Under
systemd (``JOURNAL_STREAM`` names the output stream) each line goes to the journal natively, with its
priority and the fields as ``ROTORDREAM_<KEY>`` journal fields, or, without the
journal socket, as ``<N>``-prefixed lines (sd-daemon(3)) that journald reads as
priorities.
"""

import functools
import os
import re
import socket
import struct
import time

from twisted.logger import (FilteringLogObserver, ILogObserver, LogLevel,
                            LogLevelFilterPredicate, formatEvent)
from zope.interface import implementer

MAX_VALUE = 160        # characters of one value (user input is cut here)
MAX_TRACEBACK = 4000   # characters of a failure's traceback (kept on the line, escaped)
MAX_MESSAGE = 240      # characters of the human text (msg)
REDACTED = "<redacted>"
# A field whose name contains one of these is never logged.
_SECRET_WORDS = ("password", "passwd", "secret", "token", "authorization", "cookie", "csrf",
                 "credential", "nonce")
# Credentials that travel in URLs (``/api/v1?token=...``) and so reach access-log lines.
_URL_SECRET = re.compile(r"((?:access_)?token|password|passwd|csrf|secret)=[^&\s\"']*",
                         re.IGNORECASE)
_BARE = re.compile(r"[A-Za-z0-9_.:/@+,=\[\]-]+\Z")
# Nothing in it needs an escape: it goes in double quotes as it is.
_QUOTABLE = re.compile('[^"\\\\\x00-\x1f\x7f-\x9f\u2028\u2029]*\\Z')
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_PRIORITY = {LogLevel.debug: 7, LogLevel.info: 6, LogLevel.warn: 4, LogLevel.error: 3,
             LogLevel.critical: 2}
JOURNAL_SOCKET = "/run/systemd/journal/socket"


@functools.lru_cache(maxsize=1024)  # field names come from the code: a few dozen
def is_secret(name):
    """True for a field name that may hold a credential."""
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def clean(value, limit=MAX_VALUE):
    """A field value as it may be logged: a string, at most ``limit`` characters."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "backslashreplace")
    elif not isinstance(value, str):
        value = str(value)
    if "=" in value:  # every credential the pattern finds is a "name=value"
        value = _URL_SECRET.sub(r"\1=" + REDACTED, value)
    if len(value) > limit:
        value = "%s...(%d characters)" % (value[:limit], len(value))
    return value


def quote(value):
    """``value`` bare when it is plain, else in double quotes with escapes (one line)."""
    if value and _BARE.match(value):
        return value
    if _QUOTABLE.match(value):
        return '"%s"' % value
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 32 or ord(ch) == 127 or 0x80 <= ord(ch) < 0xa0 or ch in "\u2028\u2029":
            out.append("\\x%02x" % ord(ch) if ord(ch) < 256 else "\\u%04x" % ord(ch))
        else:
            out.append(ch)
    return '"%s"' % "".join(out)


def area_of(namespace):
    """The area of a logger namespace: ``rotordream.rtsp.server`` -> ``rtsp``."""
    parts = (namespace or "-").split(".")
    if parts[0] == "rotordream" and len(parts) > 1:
        return parts[1]
    return parts[0]


_NOT_FIELDS = frozenset(("event", "format", "message", "time", "system", "isError", "why",
                         "failure"))


def _cleaned(event):
    """Every field of ``event`` but the ``log_`` ones, cleaned: {name: value}, secrets out."""
    return {name: REDACTED if is_secret(name) else clean(value)
            for name, value in event.items() if not name.startswith("log_")}


def fields_of(event, cleaned=None):
    """The event's own fields, cleaned: [(name, value)] in the order given, secrets out."""
    if cleaned is None:
        cleaned = _cleaned(event)
    return [(name, value) for name, value in cleaned.items() if name not in _NOT_FIELDS]


def _text(event, cleaned=None):
    """The human text of an event, formatted from its cleaned fields."""
    safe = dict(event)
    safe.update(_cleaned(event) if cleaned is None else cleaned)
    text = formatEvent(safe)
    if not text and "message" in event:  # a legacy log.msg
        text = " ".join(str(m) for m in event["message"])
    return clean(text, MAX_MESSAGE)


def _failure(event):
    """``error``, ``where`` and ``traceback`` of a logged failure (the traceback escaped
    onto the same line: one line per event)."""
    f = event.get("log_failure")
    if f is None:
        return []
    where = ""
    frames = getattr(f, "frames", None)
    if frames:
        name, path, line = frames[-1][:3]
        where = "%s:%d" % (os.path.basename(path), line)
    out = [("error", clean("%s: %s" % (getattr(f.type, "__name__", f.type), f.getErrorMessage())))]
    if where:
        out.append(("where", where))
    try:
        out.append(("traceback", clean(f.getTraceback(), MAX_TRACEBACK)))
    except Exception:
        pass  # a failure that cannot render its traceback still has its error above
    return out


def parts_of(event):
    """The line's fields in order: level, area, event, the event's own, msg, error."""
    level = event.get("log_level", LogLevel.info)
    name = event.get("event")
    out = [("level", level.name), ("area", area_of(event.get("log_namespace")))]
    cleaned = _cleaned(event)
    if name:
        out.append(("event", clean(name)))
        out += fields_of(event, cleaned)
    else:
        out.append(("event", "message"))
    text = _text(event, cleaned)
    if text:
        out.append(("msg", text))
    return out + _failure(event)


def format_line(event):
    """One line (no newline) for ``event``: ``level=... area=... event=... key=value ...``."""
    return " ".join("%s=%s" % (name, quote(value)) for name, value in parts_of(event))


@implementer(ILogObserver)
class LineObserver:
    """Writes each event as one line to ``stream``: a UTC timestamp first, or under
    systemd an sd-daemon priority prefix instead (journald stamps lines itself)."""

    def __init__(self, stream, journal=False):
        self.stream = stream
        self.journal = journal

    def __call__(self, event):
        line = format_line(event)
        if self.journal:
            prefix = "<%d>" % _PRIORITY.get(event.get("log_level"), 6)
        else:
            t = event.get("log_time") or time.time()
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + \
                ".%03dZ " % int((t % 1) * 1000)
        try:
            self.stream.write(prefix + line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stream must not take the daemon down


def journal_fields(event):
    """The journal entry of ``event`` as [(FIELD, value)]: MESSAGE, PRIORITY, identifier
    and each field as ROTORDREAM_<NAME>."""
    level = event.get("log_level", LogLevel.info)
    out = [("MESSAGE", format_line(event)), ("PRIORITY", str(_PRIORITY.get(level, 6))),
           ("SYSLOG_IDENTIFIER", "rotordream")]
    for name, value in parts_of(event):
        key = re.sub(r"[^A-Z0-9_]", "_", name.upper())
        out.append(("ROTORDREAM_" + key, value))
    return out


def journal_datagram(fields):
    """The native journal protocol's datagram for ``fields`` (values may hold newlines)."""
    chunks = []
    for key, value in fields:
        data = value.encode("utf-8", "backslashreplace")
        if b"\n" in data:
            chunks.append(key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n")
        else:
            chunks.append(key.encode() + b"=" + data + b"\n")
    return b"".join(chunks)


@implementer(ILogObserver)
class JournalObserver:
    """Sends each event to journald's native socket; ``fallback`` (a LineObserver with
    priority prefixes) writes it when the socket refuses it."""

    def __init__(self, fallback, path=JOURNAL_SOCKET):
        self.fallback = fallback
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def __call__(self, event):
        try:
            self.sock.sendto(journal_datagram(journal_fields(event)), self.path)
        except OSError:
            self.fallback(event)


def to_journal(stream, environ=os.environ):
    """Does ``stream`` go to the journal? systemd's JOURNAL_STREAM names the device and
    inode of the stream it connected; a child whose output was redirected elsewhere
    inherits the variable but not the stream (sd-daemon(3))."""
    wanted = environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return wanted == "%d:%d" % (st.st_dev, st.st_ino)


class LogSetup:
    """The daemon's observer: per-area level filter in front of the line writer.

    ``section`` is ``[log]``; ``stream`` where lines go; ``environ`` decides journald.
    """

    def __init__(self, section, stream, environ=os.environ, journal_socket=JOURNAL_SOCKET):
        self.predicate = LogLevelFilterPredicate(LogLevel.info)
        journal = to_journal(stream, environ)
        writer = LineObserver(stream, journal=journal)
        if journal and os.path.exists(journal_socket):
            writer = JournalObserver(writer, journal_socket)
        self.writer = writer
        self.observer = FilteringLogObserver(writer, [self.predicate])
        self.reconfigure(section)

    def reconfigure(self, section):
        """Apply ``[log] level`` and ``levels`` (at start and on reload)."""
        # The default first: clearLogLevels puts it back as the level of every namespace.
        self.predicate.defaultLogLevel = LogLevel.levelWithName(section.level)
        self.predicate.clearLogLevels()
        for area, level in section.levels:
            self.predicate.setLogLevelForNamespace("rotordream." + area,
                                                   LogLevel.levelWithName(level))
