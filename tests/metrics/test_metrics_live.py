"""GET /metrics on a running daemon: the Prometheus text format, counters that move, and
who may read it ([metrics] public, enabled)."""


import av
import requests
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from tests.support.live import eventually, wait_frames
from tests.support.rawrtsp import RawRtsp, basic

TCP = "RTP/AVP/TCP;unicast;interleaved=%d-%d"
SMALL = {"resolution": "640x360", "fps": 15}


def scrape(daemon, **kwargs):
    r = requests.get(daemon.http + "/metrics", timeout=10, **kwargs)
    assert r.status_code == 200, r.text
    return r


def samples(response):
    """{(name, frozenset(labels)): value} of a scrape."""
    out = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def sample(response, name, **labels):
    return samples(response)[(name, frozenset(labels.items()))]


def test_metrics_are_prometheus_text_readable_anonymously(daemon):
    wait_frames(daemon, 5)
    first = scrape(daemon)
    assert first.headers["content-type"] == CONTENT_TYPE_LATEST
    assert first.headers["content-type"].startswith("text/plain; version=")
    captured = sample(first, "rotordream_frames_captured_total")
    second = eventually(lambda: scrape(daemon),
                  lambda r: sample(r, "rotordream_frames_captured_total") > captured)
    assert sample(second, "process_cpu_seconds_total") >= \
        sample(first, "process_cpu_seconds_total")
    assert sample(second, "rotordream_frames_encoded_total", stream="stream1") > 0
    assert sample(second, "rotordream_encode_seconds_count", stream="stream1") > 0
    assert sample(second, "rotordream_capture_to_hub_seconds_count") > 0
    assert sample(second, "rotordream_reactor_lag_seconds_count") >= 0
    assert sample(second, "rotordream_motor_state", state="idle") in (0, 1)
    # The first scrape was answered and counted by the time the second ran.
    assert sample(second, "rotordream_http_requests_total", method="GET", code="200") >= 1


def test_an_rtsp_viewer_is_counted_while_it_plays(daemon):
    before = sample(scrape(daemon), "rotordream_clients", protocol="rtsp")
    viewer = RawRtsp(daemon.rtsp_port)
    try:
        status, sid, _, _ = viewer.setup("stream2/trackID=0", TCP % (0, 1))
        assert status == 200
        assert viewer.ask("PLAY", "stream2", Session=sid)[0] == 200
        during = scrape(daemon)
        assert sample(during, "rotordream_clients", protocol="rtsp") == before + 1
    finally:
        viewer.close()


def test_private_metrics_need_a_login(fresh_daemon, tmp_path):
    conf = tmp_path / "private.toml"
    conf.write_text("[metrics]\npublic = false\n")
    d = fresh_daemon(extra=["--config", str(conf)], settings=SMALL)
    r = requests.get(d.http + "/metrics", timeout=10)
    assert r.status_code == 401
    assert r.json()["code"] == "UNAUTHORIZED"
    r = scrape(d, auth=("admin", d.admin_password))
    assert sample(r, "rotordream_clients", protocol="websocket") == 0


def test_metrics_can_be_switched_off(fresh_daemon, tmp_path):
    conf = tmp_path / "off.toml"
    conf.write_text("[metrics]\nenabled = false\n")
    d = fresh_daemon(extra=["--config", str(conf)], settings=SMALL)
    assert requests.get(d.http + "/metrics", timeout=10).status_code == 404
    assert requests.get(d.http + "/api/health", timeout=10).status_code == 200


def test_a_viewer_through_the_http_tunnel_counts_as_rtsp_http(daemon):
    url = "rtsp://127.0.0.1:%d/stream2" % daemon.http_port
    before = sample(scrape(daemon), "rotordream_clients", protocol="rtsp_http")
    with av.open(url, options={"rtsp_transport": "http"}, timeout=15) as c:
        next(c.decode(video=0))
        during = scrape(daemon)
        assert sample(during, "rotordream_clients", protocol="rtsp_http") == before + 1
        assert sample(during, "rotordream_rtp_packets_sent_total", transport="tcp") > 0
    eventually(lambda: scrape(daemon),
         lambda r: sample(r, "rotordream_clients", protocol="rtsp_http") == before)


def test_wrong_credentials_count_under_the_protocol_they_came_over(daemon):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect
    wrong = ("admin", "not-the-password")
    before = scrape(daemon)
    assert requests.get(daemon.http + "/api/users", auth=wrong, timeout=10).status_code == 401
    try:
        connect(daemon.ws, additional_headers={"Authorization": basic(*wrong)},
                open_timeout=10).close()
        raise AssertionError("the upgrade with a wrong password was accepted")
    except InvalidStatus as e:
        assert e.response.status_code == 401
    soap = ('<?xml version="1.0"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">'
            '<s:Body><GetDeviceInformation xmlns="http://www.onvif.org/ver10/device/wsdl"/>'
            '</s:Body></s:Envelope>')
    r = requests.post(daemon.http + "/onvif/device_service", data=soap, auth=wrong, timeout=10,
                      headers={"Content-Type": "application/soap+xml"})
    assert r.status_code == 401
    rtsp = RawRtsp(daemon.rtsp_port)
    try:
        assert rtsp.ask("DESCRIBE", "stream1", Authorization=basic(*wrong))[0] == 401
    finally:
        rtsp.close()
    after = scrape(daemon)
    for protocol in ("http", "websocket", "onvif", "rtsp"):
        grown = sample(after, "rotordream_auth_failures_total", protocol=protocol) - \
            sample(before, "rotordream_auth_failures_total", protocol=protocol)
        assert grown >= 1, protocol
