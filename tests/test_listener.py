"""The daemon's listening ports queue a crowd of connections (the kernel's own figure)."""

import subprocess

from rotordream.listener import BACKLOG, with_backlog
from tests.conftest import require_tool


def test_endpoint_descriptions_get_a_backlog_unless_they_say_one():
    assert with_backlog("tcp:8554:interface=0.0.0.0") == \
        "tcp:8554:interface=0.0.0.0:backlog=%d" % BACKLOG
    assert with_backlog("ssl:322") == "ssl:322:backlog=%d" % BACKLOG
    assert with_backlog("tcp:8554:backlog=16") == "tcp:8554:backlog=16"
    assert with_backlog("unix:/run/rotordream.sock") == "unix:/run/rotordream.sock"


def test_rtsp_and_http_listen_with_room_for_hundreds_joining_at_once(daemon):
    require_tool("ss")
    for port in (daemon.rtsp_port, daemon.http_port):
        out = subprocess.run(["ss", "-ltnH", "sport = :%d" % port], capture_output=True,
                             text=True, check=True).stdout.split()
        # LISTEN, Recv-Q (queued now), Send-Q: for a listening socket, its backlog.
        assert out[0] == "LISTEN" and int(out[2]) == BACKLOG, out
