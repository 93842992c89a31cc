"""gst-rtsp-server in record mode with Digest auth, for push tests (run by /usr/bin/python3).

Usage: gst_record_server.py PORT USER PASSWORD [PEM]. Takes ANNOUNCE/RECORD at
rtsp://127.0.0.1:PORT/live (rtsps:// with the certificate and key in PEM), depayloads and parses the H.264 it receives and
prints one line per access unit, ``FRAME <n> <width>x<height>``, after ``READY``.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gio, GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def main():
    port, user, password = sys.argv[1], sys.argv[2], sys.argv[3]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    auth = GstRtspServer.RTSPAuth()
    auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", "pusher")
    auth.add_digest(user, password, token)
    if len(sys.argv) > 4:
        auth.set_tls_certificate(Gio.TlsCertificate.new_from_file(sys.argv[4]))
    server.set_auth(auth)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
    factory.set_launch("( rtph264depay name=depay0 ! h264parse ! "
                       "video/x-h264,stream-format=byte-stream,alignment=au ! "
                       "fakesink name=sink signal-handoffs=true sync=false async=false )")
    factory.add_role_from_structure(Gst.Structure.from_string(
        "pusher, media.factory.access=(boolean)true, media.factory.construct=(boolean)true")[0])
    count = [0]

    def handoff(sink, buf, pad):
        count[0] += 1
        caps = pad.get_current_caps()
        s = caps.get_structure(0) if caps else None
        size = "%sx%s" % (s.get_value("width"), s.get_value("height")) if s else "?"
        print("FRAME %d %s" % (count[0], size), flush=True)

    def configured(factory, media):
        media.get_element().get_by_name("sink").connect("handoff", handoff)

    factory.connect("media-configure", configured)
    server.get_mount_points().add_factory("/live", factory)
    if server.attach(None) == 0:
        print("FAILED to listen", flush=True)
        sys.exit(1)
    print("READY", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
