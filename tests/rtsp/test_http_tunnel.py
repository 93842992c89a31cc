"""RTSP tunnelled in HTTP on the web port: FFmpeg, PyAV, GStreamer (rtsph://) and ONVIF's HTTP URI."""

import base64
import socket
import subprocess

import av
import pytest
from twisted.web.http_headers import Headers

from rotordream.rtsp.http_tunnel import Base64Stream, tunnel_kind
from tests.conftest import require_module, require_tool


def test_base64_arriving_a_byte_at_a_time_decodes_whole():
    text = b"DESCRIBE rtsp://h/stream1 RTSP/1.0\r\nCSeq: 2\r\n\r\n"
    encoded = base64.b64encode(text)
    encoded = encoded[:10] + b"\r\n" + encoded[10:]   # clients may wrap lines
    stream = Base64Stream()
    assert b"".join(stream.feed(encoded[i:i + 1]) for i in range(len(encoded))) == text
    with pytest.raises(ValueError):
        Base64Stream().feed(b"!!!!")


def test_tunnel_requests_are_recognised_by_method_accept_and_cookie():
    get = Headers({b"x-sessioncookie": [b"abc"], b"accept": [b"application/x-rtsp-tunnelled"]})
    post = Headers({b"x-sessioncookie": [b"abc"],
                    b"content-type": [b"application/x-rtsp-tunnelled"]})
    assert tunnel_kind(b"GET", get) == "get"
    assert tunnel_kind(b"POST", post) == "post"
    assert tunnel_kind(b"GET", Headers({b"accept": [b"application/x-rtsp-tunnelled"]})) is None
    assert tunnel_kind(b"POST", get) is None
    assert tunnel_kind(b"PUT", post) is None


def http_url(daemon, path):
    return "rtsp://127.0.0.1:%d/%s" % (daemon.http_port, path)


def test_ffprobe_and_pyav_play_through_the_http_port(daemon):
    out = subprocess.run([require_tool("ffprobe"), "-v", "error", "-rtsp_transport", "http",
                          "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0",
                          http_url(daemon, "stream1")], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "h264,1280,720", out.stderr
    with av.open(http_url(daemon, "stream2"), options={"rtsp_transport": "http"}) as c:
        frames = []
        for frame in c.decode(video=0):
            frames.append(frame)
            if len(frames) == 30:
                break
    assert (frames[-1].width, frames[-1].height) == (640, 360)


def test_gstreamer_rtsph(daemon):
    gst = subprocess.run([require_tool("gst-launch-1.0"), "rtspsrc",
                          "location=rtsph://127.0.0.1:%d/stream2" % daemon.http_port, "!",
                          "rtph264depay", "!", "h264parse", "!", "avdec_h264", "!", "fakesink",
                          "num-buffers=20"], capture_output=True, text=True, timeout=60)
    assert gst.returncode == 0 and "Got EOS" in gst.stdout, gst.stdout + gst.stderr


def raw(daemon, request):
    with socket.create_connection(("127.0.0.1", daemon.http_port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return data
            data += chunk


def test_bad_tunnels_are_refused_and_the_web_port_keeps_serving(daemon):
    import requests
    # (A POST half without its GET half waits for it: see test_tunnel_limits_live.py.)
    # A GET half, then a POST whose body is not base64: that POST is closed.
    get = socket.create_connection(("127.0.0.1", daemon.http_port), timeout=10)
    get.sendall(b"GET /stream1 HTTP/1.0\r\nx-sessioncookie: c1\r\n"
                b"Accept: application/x-rtsp-tunnelled\r\n\r\n")
    assert get.recv(4096).startswith(b"HTTP/1.0 200 OK")
    reply = raw(daemon, b"POST /stream1 HTTP/1.0\r\nx-sessioncookie: c1\r\n"
                        b"Content-Type: application/x-rtsp-tunnelled\r\nContent-Length: 32767\r\n"
                        b"\r\n%%%% not base64")
    assert reply == b""
    # A good POST on the same GET gets its RTSP answer on the GET half.
    post = socket.create_connection(("127.0.0.1", daemon.http_port), timeout=10)
    post.sendall(b"POST /stream1 HTTP/1.0\r\nx-sessioncookie: c1\r\n"
                 b"Content-Type: application/x-rtsp-tunnelled\r\nContent-Length: 32767\r\n\r\n" +
                 base64.b64encode(b"OPTIONS rtsp://127.0.0.1/stream1 RTSP/1.0\r\nCSeq: 7\r\n\r\n"))
    answer = get.recv(4096)
    assert answer.startswith(b"RTSP/1.0 200 OK") and b"CSeq: 7" in answer
    post.close()
    get.close()
    assert requests.get(daemon.http + "/api/info", timeout=10).status_code == 200


def test_onvif_http_stream_uri_plays(daemon):
    onvif = require_module("onvif")
    cam = onvif.ONVIFCamera("127.0.0.1", daemon.http_port, "admin", daemon.admin_password)
    media = cam.create_media_service()
    token = media.GetProfiles()[0].token
    uri = media.GetStreamUri({"StreamSetup": {"Stream": "RTP-Unicast",
                                              "Transport": {"Protocol": "HTTP"}},
                              "ProfileToken": token}).Uri
    assert uri == http_url(daemon, token)
    out = subprocess.run([require_tool("ffprobe"), "-v", "error", "-rtsp_transport", "http",
                          "-show_entries", "stream=codec_name", "-of", "csv=p=0", uri],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "h264", out.stderr
