"""Reloading the configuration in a running daemon (SIGHUP, ``systemctl reload``).

One :class:`Reloader` reads the file again, checks all of it first (values,
directories, the new listener endpoints, which it binds), and only when
everything is valid puts the new :class:`~rotordream.config.Config` in force
and calls each part's ``reconfigure``. An invalid file changes nothing: one
log line names the key and ``failures`` (the metric
``rotordream_config_reload_failures_total``) counts it. Clients stay connected
throughout; a listener moved to a new endpoint serves there at once, and the
connections it accepted on the old one run until they end.
"""

import dataclasses
import os

from twisted.logger import Logger

from rotordream.config import ConfigError
from rotordream.listener import ListenError

log = Logger(namespace="rotordream.service.reload")

# What a running daemon cannot take over: a changed value is reported, not applied.
RESTART_KEYS = frozenset([
    ("server", "state_dir"), ("server", "source"), ("server", "motor"),
    ("tls", "certificate"), ("tls", "key"),
    ("video", "profile"), ("video", "threads"), ("video", "snapshot_threads"),
    ("auth", "initial_admin_password"), ("auth", "secret_file"),
    ("rtsp", "mtu"), ("rtsp", "rtp_port_min"), ("rtsp", "rtp_port_max"),
    ("rtsp", "tunnel_timeout"), ("rtsp", "max_tunnels_per_address"),
    ("rtsp", "multicast_group"), ("rtsp", "multicast_port"), ("rtsp", "multicast_ttl"),
    ("rtsp", "multicast_interface"),
    ("motor", "baud"), ("motor", "command_timeout"), ("motor", "retries"),
    ("onvif", "password_digest"), ("onvif", "created_window"), ("onvif", "password_text"),
    ("webrtc", "enabled"), ("hls", "enabled"),
])

# Listener endpoints: moved live; switching one on or off needs a restart.
ENDPOINT_KEYS = (("server", "http"), ("server", "https"), ("server", "rtsp"),
                 ("server", "rtsps"))


class LiveConfig:
    """The configuration in force: reads go to the current :class:`Config`, which a reload
    replaces as a whole (each Config stays frozen; a reader sees the old one or the new).

    Parts that read their settings per request (``ctx.config.http.cors_origins``) see a
    reload at once through this; parts that copy settings have a ``reconfigure`` method.
    """

    def __init__(self, current):
        self.current = current

    def replace(self, new):
        """Put ``new`` in force."""
        self.current = new

    def __getattr__(self, name):
        return getattr(self.current, name)


def changed_keys(old, new):
    """The ``(section, key)`` pairs whose values differ between two Configs, in order."""
    out = []
    for section in dataclasses.fields(new):
        a, b = getattr(old, section.name), getattr(new, section.name)
        if a == b:
            continue
        for f in dataclasses.fields(b):
            if getattr(a, f.name) != getattr(b, f.name):
                out.append((section.name, f.name))
    return out


def check_directory(section, key, path):
    """Raise ConfigError unless ``path`` is (or can be made) a writable directory."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".writable")
        with open(probe, "w"):
            pass
        os.unlink(probe)
    except OSError as e:
        raise ConfigError("[%s] %s = %r: not a writable directory (%s)"
                          % (section, key, path, e.strerror)) from None


class Reloader:
    """Validate-then-apply of a new configuration over ``live`` (a LiveConfig).

    ``load()`` returns the new Config or raises ConfigError (the file plus the command
    line's overrides); ``checks`` are callables ``check(new)`` that may raise
    ConfigError (directories, ...); ``listeners`` maps ``(section, key)`` to the
    :class:`~rotordream.listener.Listener` serving it; ``parts`` are ``(name,
    apply)`` pairs, ``apply(old, new)`` run in order once everything is valid (each
    part's ``reconfigure``).
    """

    def __init__(self, live, load, parts=(), checks=(), listeners=None):
        self.live = live
        self.load = load
        self.parts = list(parts)
        self.checks = list(checks)
        self.listeners = dict(listeners or {})
        self.applied = 0    # reloads put in force (metrics)
        self.failures = 0   # reloads refused (metrics: rotordream_config_reload_failures_total)

    def add(self, name, apply):
        """Call ``apply(old, new)`` on each reload (``name`` says which part in the log)."""
        self.parts.append((name, apply))

    def reload(self):
        """Read, check and apply the configuration; True when it is in force."""
        old = self.live.current
        try:
            new = self.load()
            for check in self.checks:
                check(new)
            moves = self._open_listeners(old, new)
        except (ConfigError, ListenError) as e:
            self.failures += 1
            log.error("configuration not reloaded: {error}", event="config_reload_failed",
                      error=str(e))
            return False
        self.live.replace(new)
        # Moved first, in the same reactor turn as the parts (no request runs between):
        # parts that announce the port (WS-Discovery XAddrs) see the new one.
        for listener, description, port in moves:
            listener.move_to(description, port)
            log.info("{option} moved to {endpoint}", event="listening", option=listener.option,
                     endpoint=description, port=port.getHost().port)
        for name, apply in self.parts:
            try:
                apply(old, new)
            except Exception:
                # A part that fails must not keep the others on the old values.
                log.failure("{part} failed to take the new configuration",
                            event="config_reload", part=name, applied=False)
        changed = changed_keys(old, new)
        for section, key in changed:
            if (section, key) in RESTART_KEYS or self._switched(old, new, section, key):
                log.warn("{key} changed: needs a restart", event="config_reload",
                         key="%s.%s" % (section, key), applied=False, reason="restart needed")
        self.applied += 1
        log.info("configuration reloaded", event="config_reloaded",
                 changed=",".join("%s.%s" % k for k in changed) or "none")
        return True

    @staticmethod
    def _switched(old, new, section, key):
        """An endpoint switched on or off (not just moved)."""
        if (section, key) not in ENDPOINT_KEYS:
            return False
        return not getattr(old.server, key) or not getattr(new.server, key)

    def _open_listeners(self, old, new):
        """Bind every moved endpoint beside its old one; [(listener, endpoint, port)].

        If one cannot be bound, the ones opened already are closed and ListenError says
        which (nothing changed).
        """
        moves = []
        try:
            for (section, key), listener in self.listeners.items():
                before, after = getattr(old.server, key), getattr(new.server, key)
                if before == after or not before or not after or listener is None:
                    continue
                moves.append((listener, after, listener.open(after)))
        except ListenError as e:
            for _, _, port in moves:
                port.stopListening()
            raise ListenError("[server] %s: %s" % (key, e)) from None
        return moves
