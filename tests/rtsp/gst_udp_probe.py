"""A GStreamer rtspsrc UDP client that reports what it lost (run with /usr/bin/python3: ``gi``).

    /usr/bin/python3 gst_udp_probe.py URL SECONDS [UDP_BUFFER_SIZE]

rtspsrc (default properties but ``udp-buffer-size`` when given) ! rtph264depay !
h264parse ! avdec_h264 ! fakesink. It goes to PAUSED
(DESCRIBE and SETUP), prints ``READY`` and waits for a line on stdin before
PLAY, so the caller chooses the moment of joining. SECONDS after PLAY it prints
one JSON line: the RTP sequence numbers, timestamps, payload sizes and first
payload bytes reaching the depayloader (after the jitter buffer), the jitter
buffer's own stats (``num-lost``...), the decoded frames' timestamps and the
receive buffers the kernel gave the udpsrc elements.
"""

import json
import socket
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtp", "1.0")
gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib, Gst, GstRtp  # noqa: E402,F401 (Gio: GSocket's methods)


def main():
    url, seconds = sys.argv[1], float(sys.argv[2])
    size = " udp-buffer-size=%d" % int(sys.argv[3]) if len(sys.argv) > 3 else ""
    Gst.init(None)
    pipe = Gst.parse_launch(
        "rtspsrc name=src protocols=udp location=%s%s ! rtph264depay name=depay ! h264parse "
        "! avdec_h264 ! fakesink name=sink" % (url, size))
    rtp, frames, jitterbuffers, errors = [], [], [], []

    def on_rtp(pad, info):
        buf = info.get_buffer()
        ok, packet = GstRtp.RTPBuffer.map(buf, Gst.MapFlags.READ)
        if ok:
            head = buf.extract_dup(packet.get_header_len(), min(4, packet.get_payload_len()))
            rtp.append((packet.get_seq(), packet.get_timestamp(), packet.get_payload_len(),
                        head.hex()))
            packet.unmap()
        return Gst.PadProbeReturn.OK

    def on_frame(pad, info):
        frames.append(info.get_buffer().pts)
        return Gst.PadProbeReturn.OK

    def on_manager(src, manager):
        manager.connect("new-jitterbuffer", lambda m, jb, session, ssrc: jitterbuffers.append(jb))

    pipe.get_by_name("depay").get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, on_rtp)
    pipe.get_by_name("sink").get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, on_frame)
    pipe.get_by_name("src").connect("new-manager", on_manager)

    loop = GLib.MainLoop()
    bus = pipe.get_bus()
    bus.add_signal_watch()

    def on_message(bus, msg):
        if msg.type == Gst.MessageType.ERROR:
            errors.append(str(msg.parse_error()[0].message))
            loop.quit()
    bus.connect("message", on_message)

    pipe.set_state(Gst.State.PAUSED)
    pipe.get_state(10 * Gst.SECOND)
    print("READY", flush=True)
    sys.stdin.readline()
    pipe.set_state(Gst.State.PLAYING)
    GLib.timeout_add(int(seconds * 1000), loop.quit)
    loop.run()

    rcvbuf = {}
    it = pipe.iterate_recurse()
    while True:
        res, element = it.next()
        if res != Gst.IteratorResult.OK:
            break
        factory = element.get_factory()
        if factory is not None and factory.get_name() == "udpsrc":
            sock = element.get_property("used-socket")
            if sock is not None:
                with socket.fromfd(sock.get_fd(), socket.AF_INET, socket.SOCK_DGRAM) as dup:
                    rcvbuf[dup.getsockname()[1]] = dup.getsockopt(socket.SOL_SOCKET,
                                                                  socket.SO_RCVBUF)
    stats = {}
    for jb in jitterbuffers:
        s = jb.get_property("stats")
        for key in ("num-pushed", "num-lost", "num-late", "num-duplicates"):
            stats[key] = stats.get(key, 0) + s.get_value(key)
    pipe.set_state(Gst.State.NULL)
    pipe.get_state(10 * Gst.SECOND)
    print(json.dumps({"rtp": rtp, "frames": frames, "jitterbuffer": stats, "rcvbuf": rcvbuf,
                      "errors": errors}), flush=True)


if __name__ == "__main__":
    main()
