#!/usr/bin/python3
"""gst-rtsp-server with a shared media factory, the reference for bench/rtsp_fanout.py.

Run with Debian's python3 (it has gi):

    /usr/bin/python3 bench/gst_server.py PORT [--clip CLIP.h264] [--bitrate 4000] ...

Serves /stream1 at 1920x1080@30 from one shared pipeline: the clip (an H.264 Annex B
elementary stream, read in a loop and decoded) or, without ``--clip``, videotestsrc;
then x264enc ultrafast/zerolatency CBR at ``--bitrate`` kbit/s, one thread (one slice per
picture, as RotorDream's encoder), a keyframe every ``--gop`` pictures, and rtph264pay with
SPS/PPS before every keyframe. Prints "ready" once listening.
"""

import argparse

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def launch_line(args):
    """The shared media's pipeline description."""
    if args.clip:
        # multifilesrc loop=true reads the elementary stream again at its end: the decoder sees
        # one continuous stream (each pass starts with SPS/PPS and an IDR), and the sinks pace it.
        source = ("multifilesrc location=%s loop=true caps=\"video/x-h264,stream-format="
                  "byte-stream,framerate=%d/1\" ! h264parse ! avdec_h264 ! videorate ! "
                  "videoscale ! videoconvert" % (args.clip, args.fps))
    else:
        source = "videotestsrc is-live=true pattern=smpte"
    return ("( %s ! video/x-raw,format=I420,width=%d,height=%d,framerate=%d/1 ! "
            "x264enc tune=zerolatency speed-preset=ultrafast pass=cbr bitrate=%d threads=%d "
            "key-int-max=%d ! rtph264pay name=pay0 pt=96 config-interval=-1 mtu=%d )"
            % (source, args.width, args.height, args.fps, args.bitrate, args.threads, args.gop,
               args.mtu))


def main():
    """Serve /stream1 until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port")
    parser.add_argument("--clip", help="H.264 Annex B elementary stream to loop")
    parser.add_argument("--bitrate", type=int, default=4000, help="kbit/s")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--gop", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="x264 threads (0: auto)")
    # RotorDream's [rtsp] mtu counts RTP payload bytes, rtph264pay's mtu the whole packet.
    parser.add_argument("--mtu", type=int, default=1412, help="RTP packet bytes")
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(args.port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch_line(args))
    factory.set_shared(True)
    server.get_mount_points().add_factory("/stream1", factory)
    server.attach(None)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
