"""A real Prometheus server (Debian's ``prometheus``) scrapes the daemon over loopback with
the example scrape config from conf/prometheus/, and its query API sees frames counted and
an RTSP viewer come and go."""

import json
import os
import subprocess

import pytest
import requests

from tests.conftest import free_port, require_tool
from tests.support.live import eventually
from tests.support.rawrtsp import RawRtsp

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
EXAMPLE = os.path.join(ROOT, "conf", "prometheus", "rotordream.yml")
TCP = "RTP/AVP/TCP;unicast;interleaved=%d-%d"


def scrape_config(http_port):
    """The example config pointed at the daemon, scraping every second."""
    with open(EXAMPLE) as f:
        text = f.read()
    for old, new in (('"localhost:80"', '"127.0.0.1:%d"' % http_port),
                     ("scrape_interval: 15s", "scrape_interval: 1s")):
        assert old in text, "conf/prometheus/rotordream.yml no longer has %s" % old
        text = text.replace(old, new)
    return text


@pytest.fixture
def prometheus(fresh_daemon, tmp_path):
    """(daemon, query function) with a Prometheus server scraping the daemon."""
    binary = require_tool("prometheus", "apt-get install prometheus")
    d = fresh_daemon(settings={"resolution": "640x360", "fps": 15})
    config = tmp_path / "prometheus.yml"
    config.write_text(scrape_config(d.http_port))
    port = free_port()
    log = open(tmp_path / "prometheus.log", "w")
    proc = subprocess.Popen([binary, "--config.file=%s" % config,
                             "--storage.tsdb.path=%s" % (tmp_path / "tsdb"),
                             "--web.listen-address=127.0.0.1:%d" % port],
                            stdout=log, stderr=subprocess.STDOUT, cwd=str(tmp_path))
    base = "http://127.0.0.1:%d" % port

    def query(expr):
        r = requests.get(base + "/api/v1/query", params={"query": expr}, timeout=5)
        r.raise_for_status()
        body = r.json()
        assert body["status"] == "success", body
        return [float(item["value"][1]) for item in body["data"]["result"]]

    def ready():
        try:
            return requests.get(base + "/-/ready", timeout=2).status_code == 200
        except requests.ConnectionError:
            return proc.poll() is not None
    try:
        wait_until(ready, 30, lambda: (tmp_path / "prometheus.log").read_text())
        assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
        yield d, query
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def wait_until(condition, timeout, why=lambda: ""):
    """Poll Prometheus or the daemon until ``condition()`` holds, failing at the deadline."""
    return eventually(condition, timeout=timeout, what=lambda _: "timed out: %s" % why(),
                      interval=0.2)


def test_prometheus_scrapes_frames_and_sees_a_viewer_come_and_go(prometheus):
    d, query = prometheus
    job = '{job="rotordream", camera="camera1"}'
    wait_until(lambda: query("up" + job) == [1.0], 30, lambda: query("up"))
    wait_until(lambda: (query("rotordream_frames_captured_total" + job) or [0])[0] > 0, 30)
    wait_until(lambda: query('rotordream_clients{job="rotordream",protocol="rtsp"}') == [0.0],
               30)
    # Two scrapes later, captured frames went up: the counter counts while it runs.
    first = query("rotordream_frames_captured_total" + job)[0]
    wait_until(lambda: query("rotordream_frames_captured_total" + job)[0] > first, 30)

    viewer = RawRtsp(d.rtsp_port)
    try:
        status, sid, _, _ = viewer.setup("stream2/trackID=0", TCP % (0, 1))
        assert status == 200
        assert viewer.ask("PLAY", "stream2", Session=sid)[0] == 200
        wait_until(lambda: query('rotordream_clients{job="rotordream",protocol="rtsp"}')
                   == [1.0], 30)
        wait_until(lambda: query('rotordream_rtp_packets_sent_total{transport="tcp"}')[0] > 0,
                   30)
    finally:
        viewer.close()
    wait_until(lambda: query('rotordream_clients{job="rotordream",protocol="rtsp"}') == [0.0],
               30)


def test_prometheus_accepts_every_dashboard_query(prometheus):
    _, query = prometheus
    with open(os.path.join(ROOT, "conf", "grafana", "rotordream.json")) as f:
        dashboard = json.load(f)
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) > 20
    wait_until(lambda: query('up{job="rotordream"}') == [1.0], 30)
    for expr in exprs:
        query(expr.replace("$instance", ".*"))   # raises on a query Prometheus refuses
