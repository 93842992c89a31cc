"""Range requests on a real recording: abusive ones (hundreds of overlapping parts) are
refused with 416 and never amplified; honest multi-range requests still get 206."""

import http.client
import json
import re

import pytest
import requests

from tests.recording.test_recording_live import admin, download, record


@pytest.fixture(scope="module")
def recording(daemon, tmp_path_factory):
    """A recording of about 1 MB on the shared daemon, and its bytes."""
    entry = record(daemon, 8, "ranges")
    path = download(daemon, entry, str(tmp_path_factory.mktemp("dl") / "ranges.mp4"))
    with open(path, "rb") as f:
        return entry, f.read()


def get_some(daemon, entry, range_header, limit=4 * 1024 * 1024):
    """Status, headers and at most ``limit`` bytes of the body (an amplified answer
    would be hundreds of MB)."""
    r = requests.get(daemon.http + "/api/recordings/" + entry["id"], auth=admin(daemon),
                     headers={"Range": range_header}, stream=True, timeout=15)
    body = b""
    for piece in r.iter_content(65536):
        body += piece
        if len(body) > limit:
            break
    r.close()
    return r.status_code, r.headers, body


def test_300_overlapping_parts_are_refused_not_amplified(daemon, recording):
    entry, whole = recording
    last = int(len(whole) * 0.97)
    status, headers, body = get_some(daemon, entry, "bytes=" + ",".join(
        ["0-%d" % last] * 300))
    assert len(body) <= len(whole)
    assert status == 416, (status, len(body))
    assert headers["Content-Range"] == "bytes */%d" % len(whole)
    assert json.loads(body)["code"] == "RANGE_NOT_SATISFIABLE"


@pytest.mark.parametrize("parts", [600, 1200])  # (headers stop at 16 KB)
def test_hundreds_of_parts_answer_cleanly_and_the_connection_goes_on(daemon, recording, parts):
    entry, whole = recording
    conn = http.client.HTTPConnection("127.0.0.1", daemon.http_port, timeout=15)
    auth = requests.auth._basic_auth_str(*admin(daemon))
    path = "/api/recordings/" + entry["id"]
    conn.request("GET", path, headers={"Authorization": auth, "Range": "bytes=" + ",".join(
        "%d-%d" % (i, i) for i in range(parts))})
    resp = conn.getresponse()
    body = resp.read()
    assert resp.status == 416 and len(body) < 2000
    # The same connection serves the next request.
    conn.request("GET", path, headers={"Authorization": auth, "Range": "bytes=0-9"})
    resp = conn.getresponse()
    assert resp.status == 206 and resp.read() == whole[:10]
    conn.close()
    assert "Traceback" not in daemon.log()


def test_a_few_disjoint_ranges_get_the_exact_parts(daemon, recording):
    entry, whole = recording
    asked = [(5000, 5999), (0, 99), (len(whole) - 50, len(whole) - 1)]
    header = "bytes=5000-5999, 0-99, -50"
    status, headers, body = get_some(daemon, entry, header)
    assert status == 206
    assert headers["Content-Type"].startswith("multipart/byteranges")
    got = re.findall(rb"Content-range: bytes (\d+)-(\d+)/(\d+)\r\n\r\n", body, re.I)
    assert [(int(a), int(b)) for a, b, _ in got] == asked
    for first, last in asked:
        assert whole[first:last + 1] in body
    assert len(body) < sum(b - a + 1 for a, b in asked) + 1000


def test_more_than_max_ranges_or_overlaps_are_416(daemon, recording):
    entry, whole = recording
    nine = ",".join("%d-%d" % (i * 100, i * 100 + 9) for i in range(9))
    assert get_some(daemon, entry, "bytes=" + nine)[0] == 416
    assert get_some(daemon, entry, "bytes=0-99,50-149")[0] == 416
    eight = ",".join("%d-%d" % (i * 100, i * 100 + 9) for i in range(8))
    assert get_some(daemon, entry, "bytes=" + eight)[0] == 206


def test_an_invalid_range_is_ignored(daemon, recording):
    entry, whole = recording
    status, _, body = get_some(daemon, entry, "bytes=9-1")
    assert status == 200 and body == whole
    status, _, body = get_some(daemon, entry, "lines=0-1")
    assert status == 200 and body == whole


def test_head_of_a_recording(daemon, recording):
    entry, whole = recording
    r = requests.head(daemon.http + "/api/recordings/" + entry["id"], auth=admin(daemon),
                      timeout=15)
    assert r.status_code == 200 and r.content == b""
    assert int(r.headers["Content-Length"]) == len(whole)
    assert r.headers["Accept-Ranges"] == "bytes"
