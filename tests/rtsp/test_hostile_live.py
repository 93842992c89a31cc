"""Hostile RTSP clients against a real daemon: slot hogs, session hijack, bad SETUPs, pipelining.

Clients on 127.0.0.2-127.0.0.6 act as other machines of the LAN; real players
(ffprobe, GStreamer) are the logged-in viewers that must still get a session.
"""

import socket
import statistics
import subprocess
import threading
import time

import requests

from tests.conftest import require_tool
from tests.support.rawrtsp import RawRtsp, basic

TCP = "RTP/AVP/TCP;unicast;interleaved=%d-%d"
UDP = "RTP/AVP;unicast;client_port=%d-%d"


def config(tmp_path, text):
    path = tmp_path / "rtsp.toml"
    path.write_text(text)
    return ["--config", str(path)]


def ffprobe(url, transport):
    return subprocess.run([require_tool("ffprobe"), "-v", "error", "-rtsp_transport", transport,
                           "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0",
                           url], capture_output=True, text=True, timeout=60)


def small(fresh_daemon, extra):
    return fresh_daemon(extra=extra, settings={"resolution": "640x360",
                                               "stream2-resolution": "320x180"})


def test_setups_without_play_free_their_slots_after_setup_timeout(fresh_daemon, tmp_path):
    d = small(fresh_daemon, config(tmp_path, "[rtsp]\nsetup_timeout = 2\nmax_sessions = 4\n"
                                             "reserved_sessions = 0\n"
                                             "max_sessions_per_address = 4\n"))
    # Two anonymous connections SET UP all four sessions and never PLAY, while talking
    # on their connections as much as they like (each naming its sessions too).
    hogs = []
    for _ in range(2):
        c = RawRtsp(d.rtsp_port)
        sids = [c.setup("stream1/trackID=0", TCP % (0, 1))[1],
                c.setup("stream2/trackID=0", TCP % (2, 3))[1]]
        assert all(sids)
        hogs.append((c, sids))
    viewer = RawRtsp(d.rtsp_port)
    assert viewer.setup("stream2/trackID=0", TCP % (0, 1))[0] == 503
    # They talk without pause, each naming its sessions, until the daemon drops them.
    started = time.monotonic()
    rounds = []
    while not rounds or rounds[-1] != [454] * 4:
        assert time.monotonic() - started < 15, rounds[-3:]
        statuses = []
        for c, sids in hogs:
            statuses += [c.ask("GET_PARAMETER", "stream1", Session=sid)[0] for sid in sids]
            c.ask("OPTIONS", "*")
        rounds.append(statuses)
    # After setup_timeout their sessions are gone, whatever they said meanwhile ...
    assert rounds[0] == [200] * 4 and time.monotonic() - started > 1.0
    # ... and real viewers get the slots.
    assert viewer.setup("stream2/trackID=0", TCP % (0, 1))[0] == 200
    out = ffprobe(d.rtsp("stream2"), "tcp")
    assert out.stdout.strip() == "h264,320,180", out.stderr
    assert "Traceback" not in d.log()


def test_a_logged_in_viewer_watches_while_anonymous_clients_hold_all_they_may(fresh_daemon):
    # The shipped limits: 10 sessions, 2 reserved for logged-in users, 4 per anonymous address.
    d = small(fresh_daemon, [])
    held = {}
    hogs = []
    port = 41000
    for n in range(2, 6):
        host = "127.0.0.%d" % n
        c = RawRtsp(d.rtsp_port, source=host)
        hogs.append(c)
        held[host] = 0
        for _ in range(5):
            port += 2
            status, sid, h, reason = c.setup("stream2/trackID=0", UDP % (port, port + 1))
            if status != 200:
                assert status == 401 and h["WWW-Authenticate"].startswith("Digest"), reason
                break
            assert c.ask("PLAY", "stream2", Session=sid)[0] == 200
            held[host] += 1
    assert held == {"127.0.0.2": 4, "127.0.0.3": 4, "127.0.0.4": 0, "127.0.0.5": 0}
    # Anonymous players are refused now; the same players with credentials get in, once
    # challenged (FFmpeg and GStreamer send none before a 401).
    assert "401" in ffprobe(d.rtsp("stream2"), "tcp").stderr
    url = d.rtsp("stream2").replace("rtsp://", "rtsp://admin:%s@" % d.admin_password)
    for transport in ("tcp", "udp"):
        out = ffprobe(url, transport)
        assert out.returncode == 0 and out.stdout.strip() == "h264,320,180", out.stderr
    gst = subprocess.run([require_tool("gst-launch-1.0"), "rtspsrc",
                          "location=" + d.rtsp("stream2"), "user-id=admin",
                          "user-pw=" + d.admin_password, "protocols=tcp", "!", "rtph264depay",
                          "!", "h264parse", "!", "avdec_h264", "!", "fakesink",
                          "num-buffers=10"], capture_output=True, text=True, timeout=60)
    assert "Got EOS from element" in gst.stdout, gst.stdout + gst.stderr
    for c in hogs:
        c.close()


def udp_receiver():
    """A UDP socket on an even port of 127.0.0.1 and one on the next: (rtp, rtcp)."""
    for port in range(42000, 43000, 2):
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            rtp.bind(("127.0.0.1", port))
            rtcp.bind(("127.0.0.1", port + 1))
        except OSError:
            rtp.close()
            rtcp.close()
            continue
        rtp.settimeout(5)
        return rtp, rtcp
    raise RuntimeError("no free UDP port pair")


def drain(sock):
    """Forget the datagrams received so far."""
    sock.setblocking(False)
    try:
        while True:
            sock.recv(2048)
    except BlockingIOError:
        pass
    sock.settimeout(5)


def rtp_arrives(sock, packets=5):
    for _ in range(packets):
        if sock.recv(2048)[:1] != b"\x80":
            return False
    return True


def test_an_admins_udp_session_answers_no_one_else(daemon):
    admin = basic("admin", daemon.admin_password)
    rtp, rtcp = udp_receiver()
    owner = RawRtsp(daemon.rtsp_port)
    port = rtp.getsockname()[1]
    status, sid, _, _ = owner.setup("stream2/trackID=0", UDP % (port, port + 1),
                                    Authorization=admin)
    assert status == 200 and owner.ask("PLAY", "stream2", Session=sid)[0] == 200
    assert rtp_arrives(rtp)
    stranger = RawRtsp(daemon.rtsp_port, source="127.0.0.2")
    neighbour = RawRtsp(daemon.rtsp_port)   # 127.0.0.1 too, anonymous, another connection
    for c in (stranger, neighbour):
        for method in ("PAUSE", "TEARDOWN", "PLAY", "GET_PARAMETER"):
            assert c.ask(method, "stream2", Session=sid)[0] == 454, method
    # The admin's credentials from another address do not make it theirs either.
    assert stranger.ask("TEARDOWN", "stream2", Session=sid, Authorization=admin)[0] == 454
    drain(rtp)
    assert rtp_arrives(rtp)   # still playing
    # Its owner (same address, same user) may use another connection.
    assert neighbour.ask("PAUSE", "stream2", Session=sid, Authorization=admin)[0] == 200
    assert owner.ask("TEARDOWN", "stream2", Session=sid)[0] == 200
    for s in (owner, stranger, neighbour, rtp, rtcp):
        s.close()


def test_bad_setups_urls_and_cseqs_are_refused_when_they_arrive(daemon):
    c = RawRtsp(daemon.rtsp_port)
    for transport in (TCP % (300, 301), UDP % (70000, 70001), "RTP/AVP;unicast;client_port=0"):
        status, sid, _, reason = c.setup("stream2/trackID=0", transport)
        assert (status, sid) == (461, None) and reason.startswith("Unsupported Transport")
    assert c.ask("DESCRIBE", "rtsp://[::1/stream1")[0] == 400
    c.sock.sendall("OPTIONS * RTSP/1.0\r\nCSeq: \u0661\u0662\r\n\r\n".encode())
    assert c.answer()[0] == 400
    # The daemon still serves, and logged no traceback for any of it.
    assert ffprobe(daemon.rtsp("stream2"), "tcp").stdout.strip() == "h264,640,360"
    assert "Traceback" not in daemon.log()


def test_pipelined_basic_describes_leave_the_reactor_free(daemon):
    admin = basic("admin", daemon.admin_password)
    latencies = []
    done = threading.Event()
    polled = threading.Condition()

    def poll_health():
        # Back to back on one connection: each answer is the next request's cue.
        with requests.Session() as http:
            while not done.is_set():
                started = time.monotonic()
                http.get(daemon.http + "/api/health", timeout=30)
                with polled:
                    latencies.append(time.monotonic() - started)
                    polled.notify_all()

    def wait_polls(count):
        with polled:
            assert polled.wait_for(lambda: len(latencies) >= count, timeout=30)

    poller = threading.Thread(target=poll_health)
    poller.start()
    wait_polls(5)
    c = RawRtsp(daemon.rtsp_port, timeout=60)
    c.sock.sendall(b"".join(
        b"DESCRIBE %s RTSP/1.0\r\nCSeq: %d\r\nAuthorization: %s\r\n\r\n"
        % (c.url("stream2").encode(), n, admin.encode()) for n in range(1, 201)))
    answers = []
    for n in range(1, 201):
        status, h, _ = c.answer()
        answers.append((status, int(h["CSeq"])))
    wait_polls(len(latencies) + 5)  # health keeps answering after the burst too
    done.set()
    poller.join()
    assert answers == [(200, n) for n in range(1, 201)]
    assert len(latencies) > 10
    assert max(latencies) < 0.5 and statistics.median(latencies) < 0.1, sorted(latencies)[-5:]
