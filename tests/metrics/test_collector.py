"""The /metrics collector reads every part's counters by their exact Prometheus names."""

import json
import os
import re
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock
from prometheus_client.exposition import generate_latest

from rotordream.auth.service import AuthService
from rotordream.config import from_dict
from rotordream.media.hub import AccessUnit
from rotordream.recording.recorder import Recorder
from rotordream.recording.store import RecordingStore
from rotordream.rtp.sender import TcpTarget, UdpTarget
from rotordream.rtsp.server import RTSPServer
from rotordream.state import CameraState
from rotordream.testing import FakeAuth, FakeMotor, FakePipeline, SyncThreadPool
from rotordream.web.metrics import DaemonCollector, HttpCounts, ReactorLag, make_registry
from rotordream.web.websocket import ControlFactory
from rotordream.webrtc.sessions import WebRTCService


def unit(stream, seq, keyframe, size):
    return AccessUnit(stream, seq, (b"\x65" + b"x" * (size - 1),), keyframe, seq * 3000, 0.0,
                      640, 480, 30.0, b"sps", b"pps")


def udp_target(packets, loss=None, jitter=None):
    t = UdpTarget(None, None, "127.0.0.1", 5000, 5001)
    t.packets, t.loss, t.jitter = packets, loss, jitter
    return t


def tcp_target(packets, dropped):
    t = TcpTarget(None, lambda: 0, 0, 1, 1 << 20)
    t.packets, t.dropped_units = packets, dropped
    return t


def rtsp_session(sid, target, protocol="rtsp"):
    return SimpleNamespace(id=sid, target=target, connection=SimpleNamespace(protocol=protocol),
                           authenticated=True, address="127.0.0.1")


@pytest.fixture
def parts(tmp_path):
    cfg = from_dict({"server": {"state_dir": str(tmp_path)},
                     "auth": {"secret_file": str(tmp_path) + ".key"}})
    clock = Clock()
    pipeline = FakePipeline()
    rtsp = RTSPServer(cfg.rtsp, pipeline.hubs, None, clock)
    webrtc = WebRTCService(pipeline.hubs, clock, cfg.webrtc)
    websocket = ControlFactory(cfg, CameraState(), FakeAuth(), clock)
    store = RecordingStore(str(tmp_path / "rec"), 0, 0)
    recorder = Recorder(clock, CameraState(), pipeline.hubs["stream1"], store, SyncThreadPool(),
                        60)
    auth = AuthService(cfg, str(tmp_path), clock)
    lag = ReactorLag(clock, interval=0.5)
    collector = DaemonCollector(pipeline, rtsp=rtsp, webrtc=webrtc, websocket=websocket,
                                recorder=recorder, motor=FakeMotor(), auth=auth,
                                http=HttpCounts(), lag=lag)
    return SimpleNamespace(pipeline=pipeline, rtsp=rtsp, webrtc=webrtc, websocket=websocket,
                           recorder=recorder, store=store, auth=auth, clock=clock, lag=lag,
                           collector=collector, registry=make_registry(collector))


def value(parts, name, **labels):
    return parts.registry.get_sample_value(name, labels)


def test_video_counters_and_histograms(parts):
    p = parts.pipeline
    p.captured, p.dropped = 120, 3
    p.hubs["stream1"].publish(unit("stream1", 1, True, 1000))
    p.hubs["stream1"].publish(unit("stream1", 2, False, 200))
    p.hubs["stream2"].publish(unit("stream2", 1, True, 300))
    p.latency["encode_seconds"]["stream1"].observe(0.004)
    p.latency["encode_seconds"]["stream1"].observe(0.030)
    p.latency["capture_to_hub_seconds"].observe(2.0)
    assert value(parts, "rotordream_frames_captured_total") == 120
    assert value(parts, "rotordream_frames_dropped_total") == 3
    assert value(parts, "rotordream_frames_encoded_total", stream="stream1") == 2
    assert value(parts, "rotordream_frames_encoded_total", stream="stream2") == 1
    assert value(parts, "rotordream_encoded_bytes_total", stream="stream1") == 1200
    assert value(parts, "rotordream_encode_seconds_bucket", stream="stream1", le="0.005") == 1
    assert value(parts, "rotordream_encode_seconds_bucket", stream="stream1", le="0.033") == 2
    assert value(parts, "rotordream_encode_seconds_count", stream="stream1") == 2
    assert value(parts, "rotordream_encode_seconds_sum", stream="stream1") == pytest.approx(0.034)
    assert value(parts, "rotordream_encode_seconds_count", stream="stream2") == 0
    assert value(parts, "rotordream_capture_to_hub_seconds_bucket", le="1.0") == 0
    assert value(parts, "rotordream_capture_to_hub_seconds_bucket", le="+Inf") == 1


def test_viewers_by_protocol_and_transport(parts):
    core = parts.rtsp.core
    for protocol in ("rtsp", "rtsp_http", "webrtc", "websocket"):
        assert value(parts, "rotordream_clients", protocol=protocol) == 0
    core.sessions_by_id["a"] = rtsp_session("a", udp_target(100, loss=0.25, jitter=9000))
    core.sessions_by_id["b"] = rtsp_session("b", tcp_target(50, dropped=7), "rtsp_http")
    core.sessions_by_id["c"] = rtsp_session("c", None)   # SETUP not done yet
    parts.webrtc.sessions["w"] = SimpleNamespace(stream="stream2", estimate=800000)
    parts.webrtc.sessions["v"] = SimpleNamespace(stream="stream1", estimate=None)
    parts.websocket.clients["x"] = object()
    parts.websocket.dropped = 2
    assert value(parts, "rotordream_clients", protocol="rtsp") == 2
    assert value(parts, "rotordream_clients", protocol="rtsp_http") == 1
    assert value(parts, "rotordream_clients", protocol="webrtc") == 2
    assert value(parts, "rotordream_clients", protocol="websocket") == 1
    assert value(parts, "rotordream_rtp_packets_sent_total", transport="udp") == 100
    assert value(parts, "rotordream_rtp_packets_sent_total", transport="tcp") == 50
    assert value(parts, "rotordream_slow_client_drops_total", protocol="rtsp_http") == 7
    assert value(parts, "rotordream_slow_client_drops_total", protocol="websocket") == 2
    assert value(parts, "rotordream_rtcp_receiver_loss_ratio_count") == 1
    assert value(parts, "rotordream_rtcp_receiver_loss_ratio_sum") == 0.25
    assert value(parts, "rotordream_rtcp_receiver_jitter_seconds_sum") == pytest.approx(0.1)
    assert value(parts, "rotordream_webrtc_estimated_bitrate_bits_count") == 1
    assert value(parts, "rotordream_webrtc_estimated_bitrate_bits_sum") == 800000


def test_totals_outlive_ended_rtsp_sessions(parts):
    core = parts.rtsp.core
    session = rtsp_session("b", tcp_target(50, dropped=7), "rtsp_http")
    session.state = "PLAYING"
    session.connection.sessions = {"b": session}
    core.sessions_by_id["b"] = session
    core.end(session)
    assert value(parts, "rotordream_clients", protocol="rtsp_http") == 0
    assert value(parts, "rotordream_rtp_packets_sent_total", transport="tcp") == 50
    assert value(parts, "rotordream_slow_client_drops_total", protocol="rtsp_http") == 7
    assert value(parts, "rotordream_rtcp_receiver_loss_ratio_count") == 0


def test_access_counters(parts):
    parts.collector.http.request("GET", 200)
    parts.collector.http.request("GET", 200)
    parts.collector.http.request("BREW", 405)
    parts.auth.count_failure("admin", "10.0.0.1")
    parts.auth.count_failure("admin", "10.0.0.1", "rtsp", "Digest")
    parts.auth.count_failure("admin", "10.0.0.1", "websocket")
    parts.auth.count_failure("admin", "10.0.0.1", "onvif", "WS-Security")
    parts.websocket.rate_limited = 4
    assert value(parts, "rotordream_http_requests_total", method="GET", code="200") == 2
    assert value(parts, "rotordream_http_requests_total", method="OTHER", code="405") == 1
    for protocol in ("http", "rtsp", "websocket", "onvif"):
        assert value(parts, "rotordream_auth_failures_total", protocol=protocol) == 1
    assert value(parts, "rotordream_rate_limited_total", protocol="websocket") == 4
    assert value(parts, "rotordream_rate_limited_total", protocol="http") == 0
    assert value(parts, "rotordream_rate_limited_total", protocol="login") == 0


def test_http_limiter_refusals_are_counted(parts):
    from rotordream.auth.ratelimit import RateLimiter
    limiter = RateLimiter(1, 60, parts.clock)
    parts.collector.http.limiters.append(limiter)
    assert limiter.hit("a") == 0
    assert limiter.hit("a") > 0
    assert value(parts, "rotordream_rate_limited_total", protocol="http") == 1


def test_recording_and_motor(parts):
    assert value(parts, "rotordream_recording_active") == 0
    assert value(parts, "rotordream_recording_bytes_total") == 0
    assert value(parts, "rotordream_storage_free_bytes") > 0
    parts.recorder.written = 5000
    parts.store.deleted["space"] += 2
    assert value(parts, "rotordream_recording_bytes_total") == 5000
    assert value(parts, "rotordream_recordings_deleted_total", reason="space") == 2
    assert value(parts, "rotordream_recordings_deleted_total", reason="user") == 0
    motor = parts.collector.motor
    motor.faults = 3
    state = motor.status()["state"]
    assert value(parts, "rotordream_motor_state", state=state) == 1
    assert sum(value(parts, "rotordream_motor_state", state=s)
               for s in ("idle", "moving", "fault")) == 1
    assert value(parts, "rotordream_motor_faults_total") == 3


def test_reactor_lag_measures_late_timers(parts):
    parts.lag.start()
    parts.clock.advance(0.5)           # on time
    parts.clock.advance(0.7)           # due at 1.0, fires at 1.2
    assert value(parts, "rotordream_reactor_lag_seconds_count") == 2
    assert value(parts, "rotordream_reactor_lag_seconds_bucket", le="0.001") == 1
    assert value(parts, "rotordream_reactor_lag_seconds_sum") == pytest.approx(0.2)
    parts.clock.advance(0.3)           # due at 1.5: on time again
    assert value(parts, "rotordream_reactor_lag_seconds_bucket", le="0.001") == 2
    parts.lag.stop()


def test_parts_that_are_off_leave_their_metrics_out():
    registry = make_registry(DaemonCollector(FakePipeline()))
    names = {f.name for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert "rotordream_frames_captured" in names
    assert "rotordream_recording_active" not in names
    assert "rotordream_motor_state" not in names
    assert registry.get_sample_value("rotordream_clients", {"protocol": "rtsp"}) == 0
    assert "process_cpu_seconds" in names   # the standard process metrics


def test_no_label_carries_an_address_or_session_id(parts):
    core = parts.rtsp.core
    core.sessions_by_id["s3cr3t"] = rtsp_session("s3cr3t", udp_target(1))
    text = generate_latest(parts.registry).decode()
    assert "s3cr3t" not in text and "127.0.0.1" not in text
    labels = {k for f in text_string_to_metric_families(text) for s in f.samples for k in s.labels}
    assert labels <= {"stream", "protocol", "transport", "method", "code", "reason", "state",
                      "le", "quantile", "implementation", "major", "minor", "patchlevel",
                      "version", "generation"}


def test_dashboard_and_collector_agree_on_names(parts):
    """Every rotordream_* series the Grafana dashboard plots is one the daemon exports."""
    path = os.path.join(os.path.dirname(__file__), "..", "..", "conf", "grafana",
                        "rotordream.json")
    with open(path) as f:
        dashboard = json.load(f)
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {re.sub(r"_(bucket|sum|count)$", "", m)
            for e in exprs for m in re.findall(r"\brotordream_\w+", e)}
    parts.collector.http.request("GET", 200)   # its first sample comes with a request
    exported = {s.name for f in parts.registry.collect() for s in f.samples}
    exported |= {re.sub(r"_(bucket|sum|count)$", "", n) for n in exported}
    assert used and used <= exported, used - exported
    assert {"rotordream_clients", "rotordream_frames_captured_total",
            "rotordream_reactor_lag_seconds"} <= used
