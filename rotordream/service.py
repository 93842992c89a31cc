"""The twistd plugin's Options and makeService: assemble every part under one MultiService.

makeService only assembles, top-down: each part is built from its collaborators,
then the :class:`rotordream.context.Context` bundle the web tree and ONVIF read.

Why it is long: the one place that builds every part, in order, with its reload hooks.
"""

import asyncio
import os
import signal
import sys
import time
from functools import partial

from twisted.application import service
from twisted.logger import Logger
from twisted.python import threadpool, usage

from rotordream import config as configmod
from rotordream.listener import Listener
from rotordream.reload import LiveConfig, Reloader, check_directory

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


# glibc's mallopt parameters and prctl's PR_SET_THP_DISABLE (<malloc.h>, <linux/prctl.h>).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
_PR_SET_THP_DISABLE = 41


def tune_memory():
    """Allocator settings that keep the daemon small (Linux with glibc; elsewhere nothing).

    Returns True when they were applied. Measured with bench/memory.py (bench/RESULTS.md):
    about 20 MB less RSS, idle and loaded, at no measurable CPU cost.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    try:
        libc = ctypes.CDLL(None)
        mallopt, prctl = libc.mallopt, libc.prctl
    except (OSError, AttributeError):
        return False   # a libc without mallopt (musl)
    # x264 asks for transparent huge pages for its big buffers (madvise), which then
    # stay resident in whole 2 MB pages.
    prctl(_PR_SET_THP_DISABLE, 1, 0, 0, 0)
    # A fixed mmap threshold turns off glibc's sliding one, which after the first freed
    # frame keeps every block under 32 MB in the heap and lets up to 64 MB of free heap
    # top stay resident. 4 MB keeps a 1080p frame (3 MB) in the heap, reused frame after
    # frame; the trim threshold gives freed heap top back past 1 MB. Two arenas: each
    # thread that allocates (capture, pools, aiortc's) would otherwise get its own.
    ok = mallopt(_M_MMAP_THRESHOLD, 4 << 20) == 1
    ok &= mallopt(_M_TRIM_THRESHOLD, 1 << 20) == 1
    ok &= mallopt(_M_ARENA_MAX, 2) == 1
    return bool(ok)


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
    optFlags = [
        ["check-config", None, "check the config file (and options), print ok or the "
         "problem, exit 0 or 1 without starting"],
    ]

    def __init__(self):
        super().__init__()
        # Before the parts (FFmpeg, x264, aiortc) allocate anything.
        tune_memory()
        install_asyncio_reactor()

    def postOptions(self):
        """Load the config file and apply the command line over it."""
        overrides = {_OPTION_KEYS[name]: self[name] for name in _OPTION_KEYS
                     if self[name] is not None}
        self["overrides"] = overrides
        try:
            self["parsed"] = configmod.load(self["config"], overrides)
        except configmod.ConfigError as e:
            # One clear line and a non-zero exit, not a usage dump.
            raise SystemExit("rotordream: %s" % e)
        if self["check-config"]:
            print("ok", flush=True)
            raise SystemExit(0)


def _add(parent, child):
    if child is not None:
        child.setServiceParent(parent)


def _state_dir(path):
    try:
        check_directory("server", "state_dir", path)
    except configmod.ConfigError as e:
        raise SystemExit("rotordream: %s; pick another with --state-dir DIR" % e)
    return path


def makeService(options):
    """Build the daemon top-down: every part from its collaborators, one MultiService."""
    from twisted.internet import reactor

    # Imported here, not at the top: twistd parses Options (which installs the asyncio
    # reactor) before the parts, some of which import the reactor, are loaded.
    from rotordream.auth.service import AuthService
    from rotordream.context import Context
    from rotordream.discovery.service import build_discovery_service
    from rotordream.media import motion
    from rotordream.media.pipeline import VideoPipeline
    from rotordream.media.sources import make_source
    from rotordream.motor.service import build_motor_service
    from rotordream.onvif.eventsources import EventsService, make_broker
    from rotordream.onvif.resource import make_onvif_resource
    from rotordream.hls.service import HlsService
    from rotordream.push.service import PushService
    from rotordream.recording.recorder import build_recorder
    from rotordream.rtsp.server import RTSPServer
    from rotordream.rtsp.service import build_rtsp_service
    from rotordream.state import CameraState, with_defaults
    from rotordream.web.site import make_site
    from rotordream.web.metrics import DaemonCollector, ReactorLag
    from rotordream.web.tls import make_tls_context_factory
    from rotordream.web.websocket import ControlFactory
    from rotordream.webrtc.sessions import build_webrtc_service

    cfg = options["parsed"]
    # What every part reads from; a reload replaces the Config inside (see reload.py).
    live = LiveConfig(cfg)
    state_dir = _state_dir(cfg.server.state_dir)
    logging = _log_setup(getattr(options, "parent", None), cfg.log)
    top = _Daemon(logging.observer if logging is not None else None)

    pool = threadpool.ThreadPool(minthreads=1, maxthreads=cfg.video.snapshot_threads,
                                 name="rotordream-work")
    top.addService(_Running(pool.start, pool.stop))

    # Its own thread: a settings write (two fsyncs) never waits behind snapshots.
    state_pool = threadpool.ThreadPool(minthreads=1, maxthreads=1, name="rotordream-state")
    # The config file gives the H.264 profile's factory default; a profile someone set wins.
    state = CameraState(state_dir, clock=reactor, pool=state_pool,
                        keys=with_defaults(profile=cfg.video.profile))
    top.addService(_Running(state_pool.start, partial(_stop_state, state, state_pool)))

    # Password hashes (scrypt, ~40 ms each) are checked here, never on the event loop;
    # AuthService bounds the work waiting for it ([auth] hash_threads, hash_queue).
    hash_pool = threadpool.ThreadPool(minthreads=0, maxthreads=max(1, cfg.auth.hash_threads),
                                      name="rotordream-auth")
    top.addService(_Running(hash_pool.start, hash_pool.stop))
    auth = AuthService(cfg, state_dir, reactor, pool=hash_pool)

    source = make_source(*configmod.parse_source(cfg.server.source))
    pipeline = VideoPipeline(reactor, state, source, pool,
                             threads=cfg.video.threads)
    pipeline.setServiceParent(top)
    # Motion in the picture is camera status: the `motion` key (WebSocket, ONVIF, the page).
    motion.attach(pipeline, reactor,
                  lambda moving, _: state.update({"motion": moving}, origin="camera"))

    motor = build_motor_service(reactor, state, cfg)
    _add(top, motor)
    recorder, playback = build_recorder(reactor, state, pipeline.hubs, cfg, pool)
    _add(top, recorder)
    rtsp = RTSPServer(cfg.rtsp, pipeline.hubs, auth, reactor, playback)
    webrtc = build_webrtc_service(pipeline.hubs, reactor, cfg.webrtc)
    websocket = ControlFactory(cfg, state, auth, reactor)

    events = make_broker(cfg, reactor, has_motor=motor is not None)
    push = PushService(reactor, rtsp.core.fanouts, cfg.push.targets)  # RTP packetized once
    hls = HlsService(pipeline.hubs, reactor, cfg.hls) if cfg.hls.enabled else None

    # What the web tree and ONVIF read: built once every part exists, never changed.
    ctx = Context(config=live, reactor=reactor, state=state, auth=auth, pipeline=pipeline,
                  motor=motor, recorder=recorder, rtsp=rtsp, events=events,
                  websocket=websocket, webrtc=webrtc, started=time.time())

    tls = None
    if cfg.server.https or cfg.server.rtsps:
        tls = make_tls_context_factory(ctx)
    rtsp_service = build_rtsp_service(rtsp, reactor, cfg.server.rtsp, cfg.server.rtsps, tls)
    rtsp_service.setServiceParent(top)
    # Feeds the ONVIF events from the start, so motion is tracked before anyone asks.
    EventsService(ctx).setServiceParent(top)
    _add(top, webrtc)
    push.setServiceParent(top)
    # Clients are closed at shutdown.
    _Running(websocket.startFactory, websocket.close_all).setServiceParent(top)

    onvif = make_onvif_resource(ctx)
    # WS-Security nonces pass from one run to the next (a replay across a restart fails).
    _Running(onvif.dispatcher.load_nonces, onvif.dispatcher.save_nonces).setServiceParent(top)
    # Always built, so a reload can switch /metrics on or off ([metrics] enabled): read
    # at scrape time from every part; only the reactor-lag timer runs meanwhile.
    lag = ReactorLag(reactor)
    _Running(lag.start, lag.stop).setServiceParent(top)
    reloader = Reloader(live, partial(configmod.load, options["config"], options["overrides"]))
    metrics = DaemonCollector(pipeline, rtsp=rtsp, webrtc=webrtc, websocket=websocket,
                              recorder=recorder, motor=motor, auth=auth, lag=lag,
                              reloads=reloader, push=push, hls=hls)
    site = make_site(ctx, onvif, metrics, push=push, hls=hls)
    metrics_resource = site.resource.getStaticEntity(b"metrics")
    metrics_resource.reconfigure(cfg.metrics)
    listeners = [Listener(reactor, cfg.server.http, site, "http")]
    if cfg.server.https:
        listeners.append(Listener(reactor, cfg.server.https, site, "https", tls=tls))
    for listener in listeners:
        listener.setServiceParent(top)

    discovery = _Discovery(top, partial(build_discovery_service, reactor, state,
                                        http_port=listeners[0].number))
    discovery.reconfigure(cfg)

    # What a reload changes, part by part (each reads only its own sections).
    api = site.resource.getStaticEntity(b"api").api
    reloader.listeners = {("server", "http"): listeners[0],
                          ("server", "https"): listeners[1] if cfg.server.https else None,
                          ("server", "rtsp"): rtsp.listener,
                          ("server", "rtsps"): next(
                              (s for s in rtsp_service if getattr(s, "option", "") == "rtsps"),
                              None)}
    reloader.checks.append(_check_recording_dir)
    if logging is not None:
        reloader.add("log", lambda old, new: logging.reconfigure(new.log))
    reloader.add("auth", lambda old, new: auth.reconfigure(new))
    reloader.add("http", lambda old, new: api.reconfigure(new))
    reloader.add("http", lambda old, new: site.requestFactory.reconfigure(new))
    reloader.add("websocket", lambda old, new: websocket.reconfigure(new))
    reloader.add("rtsp", lambda old, new: rtsp.reconfigure(new.rtsp))
    reloader.add("push", lambda old, new: push.reconfigure(new.push.targets))
    if hls is not None:
        reloader.add("hls", lambda old, new: hls.reconfigure(new.hls))
    reloader.add("metrics", lambda old, new: metrics_resource.reconfigure(new.metrics))
    reloader.add("discovery", lambda old, new: discovery.reconfigure(new, old))
    if webrtc is not None:
        reloader.add("webrtc", lambda old, new: webrtc.reconfigure(new.webrtc))
    if recorder is not None:
        reloader.add("recording", lambda old, new: recorder.reconfigure(new.recording,
                                                                        new.recording_dir))
    _Reloading(reactor, reloader).setServiceParent(top)
    _Lifecycle(ctx, listeners).setServiceParent(top)
    return top


def _log_setup(twistd, section):
    """The daemon's log observer (rotordream.logs) writing where twistd would, or None
    when the command line chose another logger (``--logger``, ``--syslog``)."""
    from rotordream.logs import LogSetup
    from twisted.python.logfile import LogFile
    twistd = twistd or {}
    if twistd.get("logger") or twistd.get("syslog"):
        return None
    logfile = twistd.get("logfile")
    if logfile == "-" or (twistd.get("nodaemon") and not logfile):
        stream = sys.stdout   # the real one: twistd redirects sys.stdout into the log later
    else:
        stream = LogFile.fromFullPath(logfile or "twistd.log")
    return LogSetup(section, stream)


class _Daemon(service.MultiService):
    """The daemon's top service; gives twistd its log observer (twistd asks the
    application for an ILogObserver before it makes its own)."""

    def __init__(self, log_observer=None):
        super().__init__()
        self.log_observer = log_observer

    def setServiceParent(self, parent):
        """Join ``parent`` (twistd's Application) and hand it the log observer."""
        if self.log_observer is not None and hasattr(parent, "setComponent"):
            from twisted.logger import ILogObserver
            parent.setComponent(ILogObserver, self.log_observer)
        return super().setServiceParent(parent)


def _check_recording_dir(config):
    from rotordream.reload import check_directory
    check_directory("recording", "directory", config.recording_dir)


class _Discovery:
    """WS-Discovery as ``[discovery]`` says, switched on and off by reloads."""

    def __init__(self, parent, build):
        self.parent = parent
        self.build = build      # build(config) -> DiscoveryService or None (off)
        self.service = None

    def reconfigure(self, config, old=None):
        """Start, stop (a Bye goes out) or re-aim the service for ``config``."""
        if not config.discovery.enabled:
            if self.service is not None:
                self.service.disownServiceParent()
                self.service = None
            return
        if self.service is None:
            self.service = self.build(config)
            self.service.setServiceParent(self.parent)
        else:
            self.service.reconfigure(config.discovery)
            if old is not None and old.server.http != config.server.http:
                self.service.readdressed()


class _Reloading(service.Service):
    """Reloads the configuration on SIGHUP (``systemctl reload``), on the reactor thread."""

    def __init__(self, reactor, reloader):
        self.reactor = reactor
        self.reloader = reloader
        self._previous = None

    def startService(self):
        service.Service.startService(self)
        # The handler only schedules: the reload runs between reactor events, never
        # inside whatever the signal interrupted.
        self._previous = signal.signal(
            signal.SIGHUP, lambda *_: self.reactor.callFromThread(self.reloader.reload))

    def stopService(self):
        service.Service.stopService(self)
        if self._previous is not None:
            signal.signal(signal.SIGHUP, self._previous)


class _Running(service.Service):
    """Calls ``start()`` when the daemon starts and ``stop()`` when it stops."""

    def __init__(self, start, stop):
        self._start, self._stop = start, stop

    def startService(self):
        service.Service.startService(self)
        self._start()

    def stopService(self):
        service.Service.stopService(self)
        self._stop()


def _stop_state(state, pool):
    """Flush the last change, then end the state file's writer thread."""
    state.flush()
    pool.stop()


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

    def stopService(self):
        service.Service.stopService(self)
        log.info("RotorDream stopping", event="daemon_stop")

    def _clean_exit(self):
        # ReactorBase keeps the signal that stopped it here (Twisted >= 20.3).
        self.ctx.reactor._exitSignal = None

    def _banner(self):
        log.info("RotorDream {version} started", event="daemon_start", version=_version(),
                 http=self.listeners[0].number(), rtsp=self.ctx.rtsp_port(), pid=os.getpid())
        lines = ["RotorDream %s is running" % _version()]
        for listener in self.listeners:
            port = listener.port.getHost().port if listener.port else "?"
            scheme = "https" if listener.option == "https" else "http"
            live = "live view (WebRTC) at /, " if self.ctx.webrtc is not None else ""
            lines.append("  %s://localhost:%s/  (%sREST /api, WebSocket /api/v1, ONVIF /onvif)"
                         % (scheme, port, live))
        for name, url in self.ctx.stream_urls("localhost").items():
            lines.append("  %s  (%s)" % (url, name))
        lines.append("  log in as admin: %s" % self.ctx.auth.login_hint())
        for line in lines:
            print(line, flush=True)


def _version():
    from rotordream import __version__
    return __version__
