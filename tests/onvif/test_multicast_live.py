"""ONVIF multicast for real, inside a network namespace of the test's own with a veth pair:
onvif-zeep asks GetStreamUri for RTP-Multicast and ffprobe plays the URI with multicast
transport; StartMulticastStreaming makes the group carry RTP with no RTSP session, and
StopMulticastStreaming ends it (tests/rtsp/netns_multicast.py, checks "onvif")."""

import pytest

from tests.conftest import require_module, require_tool
from tests.rtsp.test_multicast_live import netns_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    require_module("onvif")
    require_tool("ffprobe", "ffmpeg")
    return netns_run(tmp_path_factory, "onvif")


def test_get_stream_uri_multicast_then_ffprobe_plays_it(run):
    assert run["uri"] == "rtsp://10.77.0.1:18554/stream1"
    assert run["profile_multicast"] == ["239.255.42.1", 40000, 1, False]
    probe = run["ffprobe"]
    assert probe["status"] == 0, probe["stderr"] + run["daemon_log"]
    assert probe["streams"] == [{"codec_name": "h264", "width": 320, "height": 240}]


def test_start_and_stop_multicast_streaming_on_the_wire(run):
    assert run["idle_heard"] == 0
    # 3 s of 15 fps: at least a packet per frame, with no RTSP session at all.
    assert run["started_heard"] >= 45 and run["started_sessions"] == 0, run
    assert run["stopped_heard"] == 0
    assert run["exit_status"] == 0
