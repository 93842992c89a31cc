"""The twistd plugin's Options and makeService: assemble every part under one MultiService.

makeService only assembles: each part's factory builds its own service from
the shared :class:`rotordream.context.Context`.
"""

import asyncio
import errno
import importlib
import os
import sys
import time

from twisted.application import service
from twisted.application.internet import StreamServerEndpointService
from twisted.internet import endpoints, error
from twisted.logger import Logger
from twisted.python import threadpool, usage

from rotordream import config as configmod

log = Logger()

# Command-line option -> (config section, key).
_OPTION_KEYS = {
    "http": ("server", "http"),
    "https": ("server", "https"),
    "rtsp": ("server", "rtsp"),
    "rtsps": ("server", "rtsps"),
    "state-dir": ("server", "state_dir"),
    "source": ("server", "source"),
    "motor": ("server", "motor"),
    "secret-file": ("auth", "secret_file"),
}


def install_asyncio_reactor():
    """Install the asyncio reactor (aiortc needs it) unless a reactor is already running.

    Raises SystemExit with one line if another reactor was chosen.
    """
    if "twisted.internet.reactor" in sys.modules:
        from twisted.internet import reactor
        from twisted.internet.asyncioreactor import AsyncioSelectorReactor
        if not isinstance(reactor, AsyncioSelectorReactor):
            raise SystemExit("rotordream: needs the asyncio reactor, not %s; "
                             "drop --reactor or use --reactor=asyncio"
                             % type(reactor).__name__)
        return
    from twisted.internet import asyncioreactor
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)


class Options(usage.Options):
    """rotordream [options]: the camera server."""

    synopsis = "[options]"
    longdesc = ("Runs the RotorDream camera server: REST, WebSocket, RTSP, ONVIF and the "
                "capture/encode pipeline. Every option can also be set in the TOML config; "
                "the command line wins.")
    optParameters = [
        ["config", "c", None, "TOML config file (default %s when it exists)"
         % configmod.DEFAULT_CONFIG_PATH],
        ["http", None, None, "HTTP endpoint (default tcp:80)"],
        ["https", None, None, "HTTPS endpoint, e.g. ssl:443 (default off)"],
        ["rtsp", None, None, "RTSP endpoint (default tcp:554)"],
        ["rtsps", None, None, "RTSPS endpoint, e.g. ssl:322 (default off)"],
        ["state-dir", None, None, "state directory (default /var/lib/rotordream)"],
        ["source", None, None, "video source: testsrc | v4l2:/dev/videoN | file:PATH"],
        ["motor", None, None, "motor controller: sim | serial:/dev/ttyX[:baud] | none"],
        ["secret-file", None, None, "key file for recoverable passwords, outside the state "
         "directory (default /etc/rotordream/secret.key)"],
    ]

    def __init__(self):
        super().__init__()
        install_asyncio_reactor()

    def postOptions(self):
        """Load the config file and apply the command line over it."""
        overrides = {_OPTION_KEYS[name]: self[name] for name in _OPTION_KEYS
                     if self[name] is not None}
        try:
            self["parsed"] = configmod.load(self["config"], overrides)
        except configmod.ConfigError as e:
            # One clear line and a non-zero exit, not a usage dump.
            raise SystemExit("rotordream: %s" % e)


class Listener(StreamServerEndpointService):
    """A listening port that fails the start with a clear message when it cannot bind."""

    def __init__(self, reactor, description, factory, option, tls=None):
        if tls is not None:
            endpoint = _tls_endpoint(reactor, description, tls)
        else:
            endpoint = endpoints.serverFromString(reactor, description)
        super().__init__(endpoint, factory)
        self.description = description
        self.option = option
        self.port = None
        self._raiseSynchronously = True

    def privilegedStartService(self):
        """Bind now, so a taken or privileged port stops the start with one line."""
        try:
            super().privilegedStartService()
        except error.CannotListenError as e:
            raise SystemExit("rotordream: " + listen_error_message(self.option,
                                                                   self.description, e))
        self._waitingForPort.addCallback(self._bound)

    def _bound(self, port):
        self.port = port
        return port


def _tls_endpoint(reactor, description, context_factory):
    """An SSL endpoint from ``ssl:PORT[:interface=...]`` with our context factory."""
    parts = description.split(":")
    kwargs = dict(p.split("=", 1) for p in parts[2:] if "=" in p)
    return endpoints.SSL4ServerEndpoint(reactor, int(parts[1]), context_factory,
                                        interface=kwargs.get("interface", ""))


def listen_error_message(option, description, exc):
    """Say why ``description`` could not be bound and how to pick another port."""
    socket_error = getattr(exc, "socketError", None)
    code = getattr(socket_error, "errno", None)
    if code == errno.EADDRINUSE:
        why = "the port is already in use"
    elif code in (errno.EACCES, errno.EPERM):
        why = "ports below 1024 need root"
    else:
        why = str(socket_error or exc)
    example = "tcp:8554" if option in ("rtsp", "rtsps") else "tcp:8080"
    return ("cannot listen on %s (--%s): %s; pick another port with --%s %s or in the "
            "config file" % (description, option, why, option, example))


def _part(module, name):
    """The factory ``name`` of ``module``, or a no-op while that part is not built yet."""
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as e:
        if e.name != module and not module.startswith(e.name + "."):
            raise
        log.warn("{module} is not available yet; running without it", module=module)
        return lambda *a, **kw: None


def _add(parent, child):
    if child is not None:
        child.setServiceParent(parent)


def _state_dir(path):
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".writable")
        with open(probe, "w"):
            pass
        os.unlink(probe)
    except OSError as e:
        raise SystemExit("rotordream: state directory %s is not writable (%s); pick another "
                         "with --state-dir DIR" % (path, e.strerror))
    return path


def makeService(options):
    """Build the daemon: one MultiService holding every part."""
    from twisted.internet import reactor

    from rotordream.auth.service import AuthService
    from rotordream.context import Context
    from rotordream.media.pipeline import VideoPipeline
    from rotordream.media.sources import make_source
    from rotordream.state import CameraState

    cfg = options["parsed"]
    state_dir = _state_dir(cfg.server.state_dir)
    top = service.MultiService()

    pool = threadpool.ThreadPool(minthreads=1, maxthreads=cfg.video.snapshot_threads,
                                 name="rotordream-work")
    top.addService(_PoolService(pool))

    # Its own thread: a settings write (two fsyncs) never waits behind snapshots.
    state_pool = threadpool.ThreadPool(minthreads=1, maxthreads=1, name="rotordream-state")
    state = CameraState(state_dir, clock=reactor, pool=state_pool)
    top.addService(_StateService(state, state_pool))
    ctx = Context(config=cfg, reactor=reactor, state=state, threadpool=pool,
                  started=time.time())

    # Password hashes (scrypt, ~40 ms each) are checked here, never on the event loop;
    # AuthService bounds the work waiting for it ([auth] hash_threads, hash_queue).
    hash_pool = threadpool.ThreadPool(minthreads=0, maxthreads=max(1, cfg.auth.hash_threads),
                                      name="rotordream-auth")
    top.addService(_PoolService(hash_pool))
    ctx.auth = AuthService(cfg, state_dir, reactor, pool=hash_pool)

    source = make_source(*configmod.parse_source(cfg.server.source))
    ctx.pipeline = VideoPipeline(reactor, state, source, pool, profile=cfg.video.profile,
                                 threads=cfg.video.threads)
    ctx.pipeline.setServiceParent(top)

    if cfg.server.motor != "none":
        _add(top, _part("rotordream.motor.service", "make_motor_service")(ctx))

    tls = None
    if cfg.server.https or cfg.server.rtsps:
        tls = _part("rotordream.web.tls", "make_tls_context_factory")(ctx)

    # The RTSP server exists before the recorder so playback mounts can register.
    make_rtsp = _part("rotordream.rtsp.service", "make_rtsp_service")
    _add(top, make_rtsp(ctx, cfg.server.rtsp))
    if cfg.server.rtsps:
        _add(top, make_rtsp(ctx, cfg.server.rtsps, tls_context_factory=tls))

    _add(top, _part("rotordream.recording.recorder", "make_recorder_service")(ctx))
    _add(top, _part("rotordream.onvif.service", "make_onvif_service")(ctx))
    _add(top, _part("rotordream.webrtc.sessions", "make_webrtc_service")(ctx))

    listeners = []
    site = _part("rotordream.web.site", "make_site")(ctx)
    if site is not None:
        listeners.append(Listener(reactor, cfg.server.http, site, "http"))
        if cfg.server.https:
            listeners.append(Listener(reactor, cfg.server.https, site, "https", tls=tls))
    for listener in listeners:
        listener.setServiceParent(top)

    _add(top, _part("rotordream.discovery.service", "make_discovery_service")(ctx))
    _Lifecycle(ctx, listeners).setServiceParent(top)
    top.context = ctx
    return top


class _PoolService(service.Service):
    """Runs the shared worker thread pool for the daemon's lifetime."""

    def __init__(self, pool):
        self.pool = pool

    def startService(self):
        service.Service.startService(self)
        self.pool.start()

    def stopService(self):
        service.Service.stopService(self)
        self.pool.stop()


class _StateService(_PoolService):
    """Runs the state file's writer thread; flushes on stop so the last change is never lost."""

    def __init__(self, state, pool):
        super().__init__(pool)
        self.state = state

    def stopService(self):
        self.state.flush()
        super().stopService()


class _Lifecycle(service.Service):
    """Says where the daemon listens once it runs; makes SIGTERM a clean exit (status 0).

    Twisted re-raises a terminating signal after shutdown so the exit status
    shows it; for a camera daemon SIGTERM is the normal way to stop, and the
    stop has been orderly by then (threads joined, files closed).
    """

    def __init__(self, ctx, listeners):
        self.ctx = ctx
        self.listeners = listeners

    def startService(self):
        service.Service.startService(self)
        reactor = self.ctx.reactor
        reactor.addSystemEventTrigger("after", "shutdown", self._clean_exit)
        reactor.callLater(0, self._banner)

    def _clean_exit(self):
        if getattr(self.ctx.reactor, "_exitSignal", None) is not None:
            self.ctx.reactor._exitSignal = None

    def _banner(self):
        lines = ["RotorDream %s is running" % _version()]
        for listener in self.listeners:
            port = listener.port.getHost().port if listener.port else "?"
            scheme = "https" if listener.option == "https" else "http"
            live = "live view (WebRTC) at /, " if self.ctx.webrtc is not None else ""
            lines.append("  %s://localhost:%s/  (%sREST /api, WebSocket /api/v1, ONVIF /onvif)"
                         % (scheme, port, live))
        for name, url in self.ctx.stream_urls("localhost").items():
            lines.append("  %s  (%s)" % (url, name))
        auth = self.ctx.auth
        hint = getattr(auth, "login_hint", None) if auth is not None else None
        lines.append("  log in as admin: %s" % (hint() if callable(hint) else
                                                "see the state directory"))
        for line in lines:
            print(line, flush=True)


def _version():
    from rotordream import __version__
    return __version__
