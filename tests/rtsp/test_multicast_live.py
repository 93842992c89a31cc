"""RTSP multicast for real, inside a network namespace of the test's own with a veth pair.

tests/rtsp/netns_multicast.py runs under ``unshare -n`` (it refuses any namespace but a
fresh one, so nothing can reach a real network): the daemon sends stream1 to
239.255.42.1:40000 from 10.77.0.1; ffprobe and then FFmpeg and GStreamer together play
it with multicast transport while a socket joined to the group counts what arrives.
"""

import os

import pytest

from tests.conftest import require_tool, run_in_netns

HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "netns_multicast.py")


def netns_run(tmp_path_factory, checks):
    """The helper's result for ``checks`` ("rtsp" or "onvif")."""
    os.environ["ROTORDREAM_MULTICAST_CHECKS"] = checks
    try:
        return run_in_netns(HELPER, tmp_path_factory.mktemp("multicast"), 240,
                            lambda result: "error" not in result)
    finally:
        del os.environ["ROTORDREAM_MULTICAST_CHECKS"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    for tool, package in (("ffprobe", "ffmpeg"), ("ffmpeg", "ffmpeg"),
                          ("gst-launch-1.0", "gstreamer1.0-tools")):
        require_tool(tool, package)
    return netns_run(tmp_path_factory, "rtsp")


def test_ffprobe_plays_multicast(run):
    probe = run["ffprobe"]
    assert probe["status"] == 0, probe["stderr"] + run["daemon_log"]
    assert probe["streams"] == [{"codec_name": "h264", "width": 320, "height": 240}]


def test_ffmpeg_and_gstreamer_at_once_get_every_packet_sent_once(run):
    assert run["sessions_playing"] == 2 and run["window"]["sessions_during"] == 2
    assert run["ffmpeg"]["status"] == 0 and run["ffmpeg"]["frames"] == 150, run["ffmpeg"]
    assert run["gstreamer"]["status"] == 0 and run["gstreamer"]["frames"] == 150, \
        run["gstreamer"]
    w = run["window"]
    # Two viewers, yet the server counted each packet once, the group heard exactly those
    # (no copies), nothing went unicast, and the link carried one copy's bytes (GSO batches
    # make its packet count meaningless: bytes it is; a second copy would double them).
    assert w["server_sent"] > 0 and w["heard"] == w["server_sent"] == w["distinct_seqs"], w
    assert w["server_sent_unicast"] == 0, w
    assert 0.95 < w["tx_v0"]["tx_bytes"] / w["heard_bytes"] < 1.2, w
    assert w["tx_v0"]["tx_dropped"] == 0


def test_fifty_viewers_still_one_send_per_packet(run):
    many = run["many"]
    assert many.get("viewers") == 50, many
    assert many["server_sent"] > 0 and many["heard"] == many["server_sent"], many
    assert many["server_sent_unicast"] == 0
    assert many["tx_bytes"] < 1.2 * many["heard_bytes"], many


def test_rtsp_keep_alives_keep_multicast_sessions(run):
    # 10 s of playing with a 4 s session timeout: no RTCP reaches the server, yet no
    # session expired (both clients' GET_PARAMETER/OPTIONS are their signs of life).
    assert run["ffmpeg"]["frames"] == run["gstreamer"]["frames"] == 150
    assert run["expired"] == 0


def test_the_group_goes_quiet_with_a_bye_after_the_last_viewer(run):
    assert run["rtcp_sr"] >= 2            # an SR at the start and every 5 s
    assert run["after"] == {"heard": 0, "sessions": 0, "bye": True}
    assert run["exit_status"] == 0
