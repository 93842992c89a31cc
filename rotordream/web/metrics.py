"""GET /metrics: the daemon's counters in the Prometheus text format.

One :class:`DaemonCollector` reads every part's existing counters when
Prometheus scrapes (the parts keep plain ints and bucket counts; nothing is
incremented per packet for metrics). It lives in a private
``CollectorRegistry`` with the process metrics, and :class:`MetricsResource`
answers it through the REST request flow (rate limit, authentication,
``status.read``). Labels are low-cardinality only: stream, protocol,
transport, method, code, reason, state; never an address or a session id.
"""

import math

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily, SummaryMetricFamily)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from rotordream.auth import roles
from rotordream.media.capture import Buckets
from rotordream.web.api.base import ApiError, ApiResource, Raw

log = Logger()

# Protocols counted in rotordream_clients even when nobody uses them (a series that
# appears only with its first client is hard to alert on).
CLIENT_PROTOCOLS = ("rtsp", "rtsp_http", "webrtc", "websocket")
MOTOR_STATES = ("idle", "moving", "fault")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
# How late a reactor timer may fire, seconds.
LAG_BOUNDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class HttpCounts:
    """Requests answered on the web port by (method, code), and the HTTP rate limiters.

    The Site calls :meth:`request` for every finished request; ``build_api`` adds its
    limiter to :attr:`limiters` (their ``refused`` counts are the HTTP rate limits).
    """

    def __init__(self):
        self.requests = {}
        self.limiters = []

    def request(self, method, code):
        """Count one answered request (unknown methods count as ``OTHER``)."""
        method = method if method in _METHODS else "OTHER"
        key = (method, str(code))
        self.requests[key] = self.requests.get(key, 0) + 1


class ReactorLag:
    """How late the reactor fires a timer: a LoopingCall every ``interval`` seconds whose
    lateness (fired time minus due time) goes into :attr:`buckets`."""

    def __init__(self, clock, interval=0.5):
        self.clock = clock
        self.interval = interval
        self.buckets = Buckets(LAG_BOUNDS)
        self._loop = LoopingCall(self._tick)
        self._loop.clock = clock
        self._start = self._due = None

    def start(self):
        """Start measuring."""
        self._start = self.clock.seconds()
        self._due = self._start + self.interval
        self._loop.start(self.interval, now=False)

    def stop(self):
        """Stop measuring."""
        if self._loop.running:
            self._loop.stop()

    def _tick(self):
        now = self.clock.seconds()
        self.buckets.observe(max(0.0, now - self._due))
        # The next point on the LoopingCall's grid (it skips the ones already missed).
        self._due = self._start + self.interval * (math.floor((now - self._start)
                                                              / self.interval) + 1)


def _histogram(name, doc, labels=(), series=()):
    """A HistogramMetricFamily from ``(label_values, Buckets)`` pairs."""
    family = HistogramMetricFamily(name, doc, labels=list(labels))
    for values, b in series:
        counts = list(b.counts)  # a copy: the capture thread keeps counting
        cumulative, running = [], 0
        for bound, n in zip(b.bounds, counts):
            running += n
            cumulative.append((repr(float(bound)), running))
        cumulative.append(("+Inf", running + counts[-1]))
        family.add_metric(list(values), cumulative, sum_value=b.sum)
    return family


def _summary(name, doc, values):
    """A summary (count and sum) over the current viewers' values."""
    return SummaryMetricFamily(name, doc, count_value=len(values), sum_value=float(sum(values)))


def _counter(name, doc, labels, mapping):
    family = CounterMetricFamily(name, doc, labels=[labels])
    for key, value in sorted(mapping.items()):
        family.add_metric([key], value)
    return family


class DaemonCollector:
    """Reads every part at scrape time (a ``prometheus_client`` custom collector).

    Any part but the pipeline may be None (off). ``auth`` is the AuthService (its
    ``failures`` and ``locked_out`` counts), ``websocket`` the control factory
    (``count()``, ``dropped``, ``rate_limited``), ``http`` an :class:`HttpCounts` and
    ``lag`` a :class:`ReactorLag`, ``reloads`` the configuration reloader (its
    ``applied`` and ``failures`` counts), ``push`` the RTSP push service (its
    ``counters()``: state, bytes, reconnects by target id), ``hls`` the HLS service
    (its ``counters()`` by stream).
    """

    def __init__(self, pipeline, rtsp=None, webrtc=None, websocket=None, recorder=None,
                 motor=None, auth=None, http=None, lag=None, reloads=None, push=None,
                 hls=None):
        self.pipeline = pipeline
        self.rtsp = rtsp
        self.webrtc = webrtc
        self.websocket = websocket
        self.recorder = recorder
        self.motor = motor
        self.auth = auth
        self.http = http if http is not None else HttpCounts()
        self.lag = lag
        self.reloads = reloads
        self.push = push
        self.hls = hls

    def collect(self):
        """Every metric family, read now."""
        yield from self._video()
        yield from self._viewers()
        yield from self._access()
        yield from self._recording()
        yield from self._motor()
        if self.push is not None:
            yield from self._push()
        if self.hls is not None:
            yield from self._hls()
        if self.reloads is not None:
            yield CounterMetricFamily("rotordream_config_reloads_total",
                                      "Configuration reloads applied (SIGHUP)",
                                      value=self.reloads.applied)
            yield CounterMetricFamily("rotordream_config_reload_failures_total",
                                      "Configuration reloads refused (invalid file or "
                                      "endpoint); the configuration in force stayed",
                                      value=self.reloads.failures)
        if self.lag is not None:
            yield _histogram("rotordream_reactor_lag_seconds",
                             "How late reactor timers fire", series=[((), self.lag.buckets)])

    def _video(self):
        stats = self.pipeline.stats()
        yield CounterMetricFamily("rotordream_frames_captured_total",
                                  "Frames read from the video source", value=stats["captured"])
        yield CounterMetricFamily("rotordream_frames_dropped_total",
                                  "Captured frames not encoded (the encoder fell behind)",
                                  value=stats["dropped"])
        yield CounterMetricFamily("rotordream_source_failures_total",
                                  "Times the video source failed and was reopened",
                                  value=stats.get("source_failures", 0))
        streams = stats["streams"]
        encoded = CounterMetricFamily("rotordream_frames_encoded_total",
                                      "Access units encoded", labels=["stream"])
        keyframes = CounterMetricFamily("rotordream_keyframes_encoded_total",
                                        "Keyframes encoded", labels=["stream"])
        octets = CounterMetricFamily("rotordream_encoded_bytes_total",
                                     "Bytes of encoded video", labels=["stream"])
        for name in sorted(streams):
            s = streams[name]
            encoded.add_metric([name], s.get("encoded", s.get("units", 0)))
            keyframes.add_metric([name], s.get("keyframes", 0))
            octets.add_metric([name], s.get("bytes", 0))
        yield encoded
        yield keyframes
        yield octets
        hist = self.pipeline.histograms()
        yield _histogram("rotordream_encode_seconds", "Time to encode one frame",
                         ["stream"], [((n,), b) for n, b in
                                      sorted(hist["encode_seconds"].items())])
        yield _histogram("rotordream_capture_to_hub_seconds",
                         "From capture to the encoded unit reaching its stream (stream1)",
                         series=[((), hist["capture_to_hub_seconds"])])

    def _push(self):
        # Labelled by target id, never by URL (it may hold a password).
        targets = self.push.counters()
        up = GaugeMetricFamily("rotordream_push_up", "1 while a push target records upstream",
                               labels=["target"])
        for ident, (state, _, _) in sorted(targets.items()):
            up.add_metric([ident], 1 if state == "recording" else 0)
        yield up
        yield _counter("rotordream_push_bytes_total", "Bytes sent to each push target",
                       "target", {k: v[1] for k, v in targets.items()})
        yield _counter("rotordream_push_reconnects_total",
                       "Failed or lost connections to each push target (each is retried)",
                       "target", {k: v[2] for k, v in targets.items()})

    def _hls(self):
        streams = self.hls.counters()
        yield _counter("rotordream_hls_requests_total", "HLS requests (playlists, segments, "
                       "parts)", "stream", {k: v["requests"] for k, v in streams.items()})
        yield _counter("rotordream_hls_parts_total", "HLS partial segments packaged",
                       "stream", {k: v["parts"] for k, v in streams.items()})
        active = GaugeMetricFamily("rotordream_hls_active", "1 while a stream is packaged for "
                                   "HLS (someone asked within the idle timeout)",
                                   labels=["stream"])
        waiting = GaugeMetricFamily("rotordream_hls_waiting", "Blocking HLS requests waiting",
                                    labels=["stream"])
        for name, v in sorted(streams.items()):
            active.add_metric([name], 1 if v["active"] else 0)
            waiting.add_metric([name], v["waiting"])
        yield active
        yield waiting

    def _viewers(self):
        clients = dict.fromkeys(CLIENT_PROTOCOLS, 0)
        drops = {}
        packets = {"udp": 0, "tcp": 0}
        loss, jitter = [], []
        if self.rtsp is not None:
            c = self.rtsp.counters()
            clients.update(c["clients"])
            drops.update(c["slow_drops"])
            packets.update(c["packets"])
            loss, jitter = c["loss"], c["jitter"]
        estimates, switches = [], {}
        if self.webrtc is not None:
            clients["webrtc"] = sum(self.webrtc.counts().values())
            estimates = self.webrtc.estimates()
            switches = self.webrtc.switch_counters()
        if self.websocket is not None:
            clients["websocket"] = self.websocket.count()
            drops["websocket"] = self.websocket.dropped
        gauge = GaugeMetricFamily("rotordream_clients", "Connected viewers and control clients",
                                  labels=["protocol"])
        for name, n in sorted(clients.items()):
            gauge.add_metric([name], n)
        yield gauge
        yield _counter("rotordream_rtp_packets_sent_total", "RTP packets sent to RTSP viewers",
                       "transport", packets)
        yield _summary("rotordream_rtcp_receiver_loss_ratio",
                       "Fraction lost in each RTSP viewer's latest RTCP receiver report", loss)
        yield _summary("rotordream_rtcp_receiver_jitter_seconds",
                       "Interarrival jitter in each RTSP viewer's latest RTCP receiver report",
                       jitter)
        yield _counter("rotordream_slow_client_drops_total",
                       "Units or clients dropped because a client did not keep up",
                       "protocol", drops)
        yield _summary("rotordream_webrtc_estimated_bitrate_bits",
                       "Each WebRTC viewer's latest bandwidth estimate (REMB), bit/s",
                       estimates)
        moved = CounterMetricFamily("rotordream_webrtc_stream_switches_total",
                                    "WebRTC viewers moved between streams (reason: manual, "
                                    "estimate, probe, picture_loss)", labels=["from", "to", "reason"])
        for (old, new, reason), n in sorted(switches.items()):
            moved.add_metric([old, new, reason], n)
        yield moved

    def _access(self):
        family = CounterMetricFamily("rotordream_http_requests_total",
                                     "HTTP requests answered on the web port",
                                     labels=["method", "code"])
        for (method, code), n in sorted(self.http.requests.items()):
            family.add_metric([method, code], n)
        yield family
        failures = dict(self.auth.failures) if self.auth is not None else {}
        yield _counter("rotordream_auth_failures_total",
                       "Wrong credentials, by the protocol they came over (http, rtsp, "
                       "websocket, onvif)",
                       "protocol", failures)
        limited = {"http": sum(limiter.refused for limiter in self.http.limiters),
                   "login": self.auth.locked_out if self.auth is not None else 0}
        if self.websocket is not None:
            limited["websocket"] = self.websocket.rate_limited
        yield _counter("rotordream_rate_limited_total",
                       "Requests, messages or logins refused by a rate limit or lockout",
                       "protocol", limited)

    def _recording(self):
        if self.recorder is None:
            return
        status = self.recorder.status()
        yield GaugeMetricFamily("rotordream_recording_active", "1 while recording",
                                value=1 if status["recording"] else 0)
        yield CounterMetricFamily("rotordream_recording_bytes_total",
                                  "Bytes of recordings written",
                                  value=self.recorder.written + self.recorder.segment_size())
        if status.get("free") is not None:
            yield GaugeMetricFamily("rotordream_storage_free_bytes",
                                    "Free bytes where recordings are kept", value=status["free"])
        yield _counter("rotordream_recordings_deleted_total",
                       "Recordings deleted: by a user, or the oldest to make room (space)",
                       "reason", dict(self.recorder.store.deleted))

    def _motor(self):
        if self.motor is None:
            return
        state = self.motor.status().get("state")
        gauge = GaugeMetricFamily("rotordream_motor_state", "1 for the motors' current state",
                                  labels=["state"])
        for name in MOTOR_STATES:
            gauge.add_metric([name], 1 if state == name else 0)
        yield gauge
        yield CounterMetricFamily("rotordream_motor_faults_total",
                                  "Times the motor controller went into fault",
                                  value=self.motor.faults)


def make_registry(collector):
    """A private registry with ``collector`` and the standard process metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class MetricsResource(ApiResource):
    """GET /metrics: the registry in the Prometheus text format (``status.read``;
    with ``public`` false a logged-in user is required)."""

    isLeaf = True
    methods = {"GET": ("get", roles.STATUS_READ)}

    def __init__(self, api, registry, public=True):
        super().__init__(api)
        self.registry = registry
        self.public = public
        self.enabled = True

    def reconfigure(self, section):
        """Apply a reloaded ``[metrics]`` section: ``enabled`` false answers 404."""
        self.enabled = section.enabled
        self.public = section.public

    def get(self, request, principal):
        """The exposition text."""
        if not self.enabled:
            raise ApiError(404, "metrics are switched off ([metrics] enabled)")
        if not self.public and not principal.authenticated:
            raise ApiError(401, "authentication required")
        return Raw(generate_latest(self.registry), CONTENT_TYPE_LATEST.encode("ascii"))
