"""The daemon's configuration: TOML file and command line into frozen dataclasses.

Every key has a type and a default here; ``conf/rotordream.toml`` documents
them all. An unknown section or key, a wrong type or a bad value raises
:class:`ConfigError` whose message is one line naming the key and the value.
Camera settings (resolution, brightness, ...) are not configuration: they
live in ``rotordream/state.py``.

Why it is long: every section's dataclass with each key's type and default,
and the checks that turn a bad value into one line, belong in one place.
"""

import dataclasses
import ipaddress
import math
import os
import re
import tomllib
from dataclasses import dataclass, field

DEFAULT_CONFIG_PATH = "/etc/rotordream/rotordream.toml"


class ConfigError(Exception):
    """A configuration problem, described in one line."""


@dataclass(frozen=True)
class Server:
    """Listeners, where state lives, and the video source and motor controller."""

    http: str = "tcp:80"
    https: str = ""          # off unless set, e.g. "ssl:443"
    rtsp: str = "tcp:554"
    rtsps: str = ""          # off unless set, e.g. "ssl:322"
    state_dir: str = "/var/lib/rotordream"
    source: str = "testsrc"  # testsrc | v4l2:/dev/videoN | file:PATH
    motor: str = "sim"       # sim | serial:/dev/ttyX[:baud] | none


@dataclass(frozen=True)
class TLS:
    """Certificate for HTTPS and RTSPS; empty paths mean a self-signed one in the state dir."""

    certificate: str = ""
    key: str = ""


@dataclass(frozen=True)
class Video:
    """Encoder settings that are not camera state."""

    profile: str = "baseline"  # the `profile` setting's default: baseline | main | high
    threads: int = 1           # libx264 threads per encoder
    snapshot_threads: int = 2  # thread pool size for JPEG encoding


@dataclass(frozen=True)
class Auth:
    """Users, anonymous access, tokens and login limits."""

    anonymous: str = "viewer"          # role of clients without credentials
    initial_admin_password: str = ""   # used once, on first start
    token_lifetime: int = 86400        # seconds a bearer token lives
    nonce_lifetime: int = 300          # seconds a Digest nonce lives
    login_failures: int = 5            # failed logins per user name and address per window ...
    login_window: int = 300            # ... of this many seconds (a lockout doubles on repeat)
    lockout_max: int = 3600            # longest lockout of one user name at one address, seconds
    user_failures: int = 1000          # failed logins per user name from all addresses per window
    attempts_per_address: int = 30     # password checks (not cached) per address per window ...
    attempts_window: int = 60          # ... of this many seconds; 0 attempts = off
    hash_threads: int = 2              # threads that verify password hashes
    hash_queue: int = 16               # password checks waiting for a thread; more are refused
    cache_seconds: int = 60            # a verified user name + password is remembered this long
    secret_file: str = "/etc/rotordream/secret.key"  # key for recoverable passwords, outside state_dir


@dataclass(frozen=True)
class HTTP:
    """REST limits and CORS."""

    rate_limit: int = 100              # requests per client per period; 0 disables
    rate_period: int = 60              # seconds
    max_body: int = 65536              # largest JSON request body, bytes
    cors_origins: tuple = ()           # allowed origins; empty disables CORS
    allowed_origins: tuple = ()        # foreign origins allowed to send state-changing requests
    max_ranges: int = 8                # byte ranges in one request; more, or overlapping: 416


@dataclass(frozen=True)
class WebSocket:
    """Limits of the control WebSocket."""

    rate_limit: int = 100              # messages per second per connection; 0 disables
    max_message: int = 65536           # bytes
    send_buffer: int = 1048576         # bytes queued for a client before it is dropped
    ping_interval: int = 20            # seconds


@dataclass(frozen=True)
class RTSP:
    """RTSP/RTP server limits."""

    max_sessions: int = 10
    mtu: int = 1400                    # RTP payload bytes
    rtp_port_min: int = 50000
    rtp_port_max: int = 50999
    session_timeout: int = 60
    client_queue: int = 4194304        # bytes queued per TCP client before dropping to a keyframe
    catchup_rate: int = 2000000        # bytes/s a new UDP viewer gets the cached GOP at; 0 = at once
    setup_timeout: int = 10            # seconds a SETUP session lives before PLAY
    max_sessions_per_address: int = 4  # sessions one client address may hold
    reserved_sessions: int = 2         # of max_sessions, kept for authenticated users
    tunnel_timeout: int = 10           # seconds an RTSP-over-HTTP tunnel lives without a session
    max_tunnels_per_address: int = 4   # RTSP-over-HTTP tunnels (and waiting halves) per address
    multicast_group: str = ""          # IPv4 group of stream1 (stream2: the next address); "" = off
    multicast_port: int = 40000        # RTP port of stream1 (RTCP +1; stream2 +2, +3)
    multicast_ttl: int = 1             # hops multicast RTP may travel (1-255)
    multicast_interface: str = ""      # local IPv4 address to send from; "" = the routing table's


@dataclass(frozen=True)
class Recording:
    """Where recordings go and how much room they may take."""

    directory: str = ""                # default <state_dir>/recordings
    segment_seconds: int = 300
    max_total_mb: int = 0              # 0: no limit but free space
    min_free_mb: int = 256


@dataclass(frozen=True)
class Motor:
    """Serial motor controller link."""

    baud: int = 115200
    command_timeout: float = 1.0
    retries: int = 2


@dataclass(frozen=True)
class ONVIF:
    """ONVIF service options."""

    password_text: bool = False        # accept WS-Security PasswordText
    created_window: int = 300          # seconds of clock skew allowed on Created
    max_subscriptions: int = 16
    max_subscriptions_per_user: int = 4  # per user name (anonymous counts as one); admins exempt
    password_digest: bool = True       # keep a recoverable password copy for PasswordDigest
    max_body: int = 131072             # largest SOAP request body, bytes


@dataclass(frozen=True)
class Discovery:
    """WS-Discovery. Off by default so a test or developer daemon never multicasts."""

    enabled: bool = False
    interfaces: tuple = ()             # interface names; empty: every interface


@dataclass(frozen=True)
class WebRTC:
    """WebRTC viewing in browsers: the encoded streams sent as they are (aiortc)."""

    enabled: bool = True
    max_sessions: int = 10             # peer connections, offered or connected
    offer_timeout: int = 30            # seconds an offer waits for its answer, and for ICE
    addresses: tuple = ()              # host candidate addresses; empty: every interface
    ice_servers: tuple = ()            # STUN/TURN URLs the camera uses; none by default
    max_sessions_per_address: int = 4  # sessions one client address may hold
    reserved_sessions: int = 2         # of max_sessions, kept for authenticated users
    turn_secret: str = ""              # coturn use-auth-secret: TURN URLs get REST credentials
    turn_lifetime: int = 3600          # seconds those credentials stay valid
    max_keyframe_requests_per_s: int = 1  # forced IDRs of the shared encoder for all viewers
    transport_cc: bool = False         # offer transport-wide congestion control feedback


@dataclass(frozen=True)
class Metrics:
    """GET /metrics for Prometheus."""

    enabled: bool = True
    public: bool = True                # false: a logged-in user is required, not just status.read


@dataclass(frozen=True)
class HLS:
    """(Low-Latency) HLS at /hls/<stream>/index.m3u8, packaged in memory while requested."""

    enabled: bool = True
    part_duration: float = 0.2         # seconds of a partial segment (EXT-X-PART)
    window: int = 10                   # complete segments kept (about a second each)
    idle_timeout: int = 30             # seconds without a request before packaging stops
    max_waiting: int = 1000            # blocking requests (playlist reloads, parts) per stream
    rate_limit: int = 50               # HLS requests per second per client address; 0 disables


@dataclass(frozen=True)
class Push:
    """One upstream server the encoded stream is pushed to (RTSP ANNOUNCE/RECORD)."""

    url: str                           # rtsp[s]://user:pass@host:port/path
    stream: str = "stream1"            # stream1 | stream2
    transport: str = "tcp"             # tcp (interleaved) | udp
    enabled: bool = True
    tls_verify: bool = True            # rtsps: check the server's certificate


@dataclass(frozen=True)
class PushTargets:
    """RTSP push: ``[[push]]`` tables (or ``[push] targets = [...]``), one per upstream."""

    targets: tuple = ()                # (Push, ...)


LOG_LEVELS = ("debug", "info", "warn", "error", "critical")
# Areas [log] levels may name: the daemon's packages (a logger's namespace is
# rotordream.<area>...), plus "service" for the daemon's own start, stop and reloads.
LOG_AREAS = ("auth", "discovery", "hls", "media", "motor", "onvif", "push", "recording", "rtp",
             "rtsp", "service", "web", "webrtc")


@dataclass(frozen=True)
class Log:
    """Log levels: one for everything, and per area (``levels = {rtsp = "debug"}``)."""

    level: str = "info"                # debug | info | warn | error | critical
    levels: tuple = ()                 # ((area, level), ...) from the TOML table


@dataclass(frozen=True)
class Config:
    """The whole configuration."""

    server: Server = field(default_factory=Server)
    tls: TLS = field(default_factory=TLS)
    video: Video = field(default_factory=Video)
    auth: Auth = field(default_factory=Auth)
    http: HTTP = field(default_factory=HTTP)
    websocket: WebSocket = field(default_factory=WebSocket)
    rtsp: RTSP = field(default_factory=RTSP)
    recording: Recording = field(default_factory=Recording)
    motor: Motor = field(default_factory=Motor)
    onvif: ONVIF = field(default_factory=ONVIF)
    discovery: Discovery = field(default_factory=Discovery)
    webrtc: WebRTC = field(default_factory=WebRTC)
    metrics: Metrics = field(default_factory=Metrics)
    log: Log = field(default_factory=Log)
    push: PushTargets = field(default_factory=PushTargets)
    hls: HLS = field(default_factory=HLS)

    @property
    def recording_dir(self):
        """The recordings directory, defaulting under the state dir."""
        return self.recording.directory or os.path.join(self.server.state_dir, "recordings")


_CHOICES = {
    ("server", "source"): None,  # checked by parse_source
    ("auth", "anonymous"): ("admin", "operator", "viewer", "guest"),
    ("video", "profile"): ("baseline", "main", "high"),
    ("log", "level"): LOG_LEVELS,
}
_POSITIVE = {("rtsp", "max_sessions"), ("rtsp", "mtu"), ("rtsp", "session_timeout"),
             ("motor", "baud"), ("video", "threads"), ("video", "snapshot_threads"),
             ("http", "max_body"), ("websocket", "max_message"), ("auth", "token_lifetime"),
             ("recording", "segment_seconds"), ("onvif", "max_subscriptions"),
             ("webrtc", "max_sessions"), ("webrtc", "offer_timeout"),
             ("auth", "login_window"), ("auth", "lockout_max"), ("auth", "hash_threads"), ("auth", "hash_queue"),
             ("http", "max_ranges"), ("rtsp", "setup_timeout"),
             ("rtsp", "max_sessions_per_address"), ("rtsp", "tunnel_timeout"),
             ("rtsp", "max_tunnels_per_address"), ("onvif", "max_subscriptions_per_user"),
             ("onvif", "max_body"), ("webrtc", "max_sessions_per_address"),
             ("webrtc", "turn_lifetime"), ("hls", "window"), ("hls", "idle_timeout"),
             ("hls", "max_waiting")}
_ENDPOINT_KEYS = {("server", "http"), ("server", "https"), ("server", "rtsp"), ("server", "rtsps")}
_PORT_KEYS = {("rtsp", "rtp_port_min"), ("rtsp", "rtp_port_max"), ("rtsp", "multicast_port")}
# ASCII digits only: str.isdigit() is also true for "²", which int() refuses.
_DIGITS = re.compile(r"[0-9]{1,10}\Z")


def _coerce(section, key, ftype, value):
    where = "[%s] %s = %r" % (section, key, value)
    if ftype == "bool":
        if not isinstance(value, bool):
            raise ConfigError("%s: expected true or false" % where)
    elif ftype == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError("%s: expected an integer" % where)
        if (section, key) in _POSITIVE and value <= 0:
            raise ConfigError("%s: must be positive" % where)
        if value < 0:
            raise ConfigError("%s: must not be negative" % where)
        if (section, key) in _PORT_KEYS and not 1 <= value <= 65535:
            raise ConfigError("%s: must be a port number 1-65535" % where)
    elif ftype == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError("%s: expected a number" % where)
        if not math.isfinite(value) or value <= 0:  # nan passes "<= 0" unnoticed
            raise ConfigError("%s: must be a positive finite number" % where)
        value = float(value)
    elif ftype == "str":
        if not isinstance(value, str):
            raise ConfigError("%s: expected a string" % where)
        if "\0" in value:  # no path, endpoint or name holds one; os calls would raise later
            raise ConfigError("%s: must not contain a NUL character" % where)
        choices = _CHOICES.get((section, key))
        if choices and value not in choices:
            raise ConfigError("%s: expected one of %s" % (where, ", ".join(choices)))
        if (section, key) in _ENDPOINT_KEYS and value:
            check_endpoint(section, key, value)
        if (section, key) == ("server", "source"):
            parse_source(value)
        if (section, key) == ("server", "motor"):
            parse_motor(value)
    elif (section, key) == ("log", "levels"):
        value = _log_levels(where, value)
    elif ftype == "tuple":
        if not isinstance(value, (list, tuple)) or \
                not all(isinstance(v, str) and "\0" not in v for v in value):
            raise ConfigError("%s: expected a list of strings" % where)
        value = tuple(value)
    return value


def _log_levels(where, value):
    """``{area = level}`` as sorted ((area, level), ...) pairs; ConfigError names a bad one."""
    if isinstance(value, (list, tuple)):  # already pairs (a Config rebuilt from another)
        try:
            value = dict(value)
        except (TypeError, ValueError):
            raise ConfigError("%s: expected a table such as {rtsp = \"debug\"}" % where) \
                from None
    if not isinstance(value, dict):
        raise ConfigError("%s: expected a table such as {rtsp = \"debug\"}" % where)
    for area, level in value.items():
        if area not in LOG_AREAS:
            raise ConfigError("[log] levels: unknown area %s (known: %s)"
                              % (_name(area), ", ".join(LOG_AREAS)))
        if level not in LOG_LEVELS:
            raise ConfigError("[log] levels.%s = %r: expected one of %s"
                              % (area, level, ", ".join(LOG_LEVELS)))
    return tuple(sorted(value.items()))


def check_endpoint(section, key, value):
    """Raise ConfigError unless ``value`` is a usable server endpoint string.

    tcp/tcp6/unix/systemd go through Twisted's own parser; ssl is built by
    us with the daemon's certificate, so only its port is checked here.
    """
    from twisted.internet.endpoints import _parseServer  # the parser serverFromString uses
    where = "[%s] %s = %r" % (section, key, value)
    kind, _, rest = value.partition(":")
    kind = kind.lower()
    if kind not in ("tcp", "tcp6", "ssl", "unix", "systemd"):
        raise ConfigError("%s: unknown endpoint type %r (use tcp:PORT or ssl:PORT)"
                          % (where, kind))
    if kind in ("tcp", "tcp6", "ssl"):
        port = rest.split(":")[0]
        if not _DIGITS.match(port) or int(port) > 65535:
            raise ConfigError("%s: port must be a number 0-65535" % where)
    if kind != "ssl":
        try:
            _parseServer(value, None)
        except Exception as e:
            raise ConfigError("%s: not a valid endpoint (%s)" % (where, e)) from None


def parse_source(spec):
    """Split a source spec into (kind, argument); raise ConfigError when malformed."""
    if spec == "testsrc":
        return ("testsrc", None)
    kind, _, arg = spec.partition(":")
    if kind in ("v4l2", "file") and arg:
        return (kind, arg)
    raise ConfigError("[server] source = %r: expected testsrc, v4l2:/dev/videoN or file:PATH"
                      % (spec,))


def parse_motor(spec):
    """Split a motor spec into (kind, device, baud or None); raise ConfigError when malformed."""
    if spec in ("sim", "none"):
        return (spec, None, None)
    kind, _, rest = spec.partition(":")
    if kind == "serial" and rest:
        device, _, baud = rest.partition(":")
        if baud:
            if not _DIGITS.match(baud) or int(baud) <= 0:
                raise ConfigError("[server] motor = %r: baud must be a positive number" % spec)
            return ("serial", device, int(baud))
        return ("serial", device, None)
    raise ConfigError("[server] motor = %r: expected sim, none or serial:/dev/ttyX[:baud]"
                      % (spec,))


def _field_type(f):
    t = f.type if isinstance(f.type, str) else f.type.__name__
    return t


def _name(name):
    """A section or key name for a message: as is when plain, else quoted (one line always)."""
    return name if isinstance(name, str) and re.fullmatch(r"[\w.-]+", name, re.ASCII) \
        else repr(name)


def from_dict(data, overrides=None):
    """Build a :class:`Config` from parsed TOML ``data`` plus ``{(section, key): value}`` overrides."""
    if not isinstance(data, dict):
        raise ConfigError("configuration must be a table")
    sections = {f.name: f for f in dataclasses.fields(Config)}
    merged = {}
    data = dict(data)
    pushes = _push_targets(data.pop("push", {}))
    for name, table in data.items():
        if name not in sections:
            raise ConfigError("unknown section [%s] (known: %s)"
                              % (_name(name), ", ".join(sections)))
        if not isinstance(table, dict):
            raise ConfigError("[%s] must be a table" % name)
        merged[name] = dict(table)
    for (section, key), value in (overrides or {}).items():
        merged.setdefault(section, {})[key] = value
    built = {"push": PushTargets(pushes)}
    for name, sf in sections.items():
        if name == "push":
            continue
        cls = sf.default_factory
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values = {}
        for key, value in merged.get(name, {}).items():
            if key not in fields:
                raise ConfigError("[%s] %s: unknown key (known: %s)"
                                  % (name, _name(key), ", ".join(fields)))
            values[key] = _coerce(name, key, _field_type(fields[key]), value)
        built[name] = cls(**values)
    rtsp = built["rtsp"]
    if rtsp.rtp_port_min >= rtsp.rtp_port_max:
        raise ConfigError("[rtsp] rtp_port_min = %d, rtp_port_max = %d: the range holds no "
                          "port pair" % (rtsp.rtp_port_min, rtsp.rtp_port_max))
    _check_multicast(rtsp)
    return Config(**built)


def _check_multicast(rtsp):
    """The [rtsp] multicast keys: a group with room for both streams, ports, TTL, interface."""
    if rtsp.multicast_group:
        try:
            group = ipaddress.IPv4Address(rtsp.multicast_group)
        except ValueError:
            group = None
        if group is None or not group.is_multicast or \
                not (group + 1).is_multicast:  # stream2 takes the next address
            raise ConfigError("[rtsp] multicast_group = %r: expected an IPv4 multicast address "
                              "(224.0.0.0/4, e.g. 239.255.42.1)" % rtsp.multicast_group)
    if rtsp.multicast_port % 2 or rtsp.multicast_port > 65532:
        raise ConfigError("[rtsp] multicast_port = %d: expected an even port up to 65532 "
                          "(RTP even, RTCP +1, stream2 +2)" % rtsp.multicast_port)
    if not 1 <= rtsp.multicast_ttl <= 255:
        raise ConfigError("[rtsp] multicast_ttl = %d: must be 1-255" % rtsp.multicast_ttl)
    if rtsp.multicast_interface:
        try:
            ipaddress.IPv4Address(rtsp.multicast_interface)
        except ValueError:
            raise ConfigError("[rtsp] multicast_interface = %r: expected a local IPv4 address"
                              % rtsp.multicast_interface) from None


def _push_targets(value):
    """``[[push]]`` tables (or ``[push] targets = [...]``) as a tuple of :class:`Push`."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"targets"})
        if unknown:
            raise ConfigError("[push] %s: unknown key (known: targets)" % _name(unknown[0]))
        value = value.get("targets", ())
    if not isinstance(value, (list, tuple)):
        raise ConfigError("[[push]]: expected tables")
    out = []
    fields = {f.name: f for f in dataclasses.fields(Push)}
    for n, table in enumerate(value, 1):
        if isinstance(table, Push):
            table = dataclasses.asdict(table)
        where = "[[push]] #%d" % n
        if not isinstance(table, dict):
            raise ConfigError("%s: expected a table" % where)
        for key, v in table.items():
            if key not in fields:
                raise ConfigError("%s %s: unknown key (known: %s)"
                                  % (where, _name(key), ", ".join(fields)))
            ftype = _field_type(fields[key])
            if (ftype == "bool") != isinstance(v, bool) or \
                    (ftype == "str" and (not isinstance(v, str) or "\0" in v)):
                raise ConfigError("%s %s = %r: expected %s" % (
                    where, key, v, "true or false" if ftype == "bool" else "a string"))
        url = table.get("url")
        if not isinstance(url, str) or not re.match(r"rtsps?://[^/\s]+", url, re.I) or \
                re.search(r"[\s]", url):
            raise ConfigError("%s url: expected rtsp://[user:pass@]host[:port]/path "
                              "(or rtsps://)" % where)
        if table.get("stream", "stream1") not in ("stream1", "stream2"):
            raise ConfigError("%s stream = %r: expected stream1 or stream2"
                              % (where, table["stream"]))
        if table.get("transport", "tcp") not in ("tcp", "udp"):
            raise ConfigError("%s transport = %r: expected tcp or udp"
                              % (where, table["transport"]))
        out.append(Push(**table))
    return tuple(out)


def load(path=None, overrides=None):
    """Read the TOML file at ``path`` (None: the default path if it exists) and apply overrides."""
    data = {}
    if path is None and os.path.exists(DEFAULT_CONFIG_PATH):
        path = DEFAULT_CONFIG_PATH
    if path is not None:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError("config file %s does not exist" % path) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:  # TOML is UTF-8 only
            raise ConfigError("config file %s: %s" % (path, e)) from None
        except RecursionError:
            raise ConfigError("config file %s: nested too deeply" % path) from None
        except OSError as e:
            raise ConfigError("config file %s: %s" % (path, e.strerror)) from None
    return from_dict(data, overrides)
