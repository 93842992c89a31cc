#!/usr/bin/python3
"""gst-rtsp-server with a shared media factory, the reference for bench/rtsp_fanout.py.

Run with Debian's python3 (it has gi): /usr/bin/python3 bench/gst_server.py PORT
Serves /stream1: videotestsrc 1920x1080@30, x264enc ultrafast/zerolatency 4 Mbit/s.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(sys.argv[1])
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch("( videotestsrc is-live=true pattern=smpte ! video/x-raw,width=1920,height=1080,"
                   "framerate=30/1 ! x264enc tune=zerolatency speed-preset=ultrafast "
                   "bitrate=4000 key-int-max=30 ! rtph264pay name=pay0 pt=96 config-interval=-1 )")
factory.set_shared(True)
server.get_mount_points().add_factory("/stream1", factory)
server.attach(None)
print("ready", flush=True)
GLib.MainLoop().run()
