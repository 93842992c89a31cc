#!/usr/bin/env python3
"""NVR-style integration: a snapshot for the thumbnail and the RTSP URL to record from.

    ROTORDREAM_URL=http://camera.local ROTORDREAM_USER=viewer ROTORDREAM_PASSWORD=... \\
        python examples/nvr.py --snapshot thumb.jpg --stream stream1

Prints ``snapshot: FILE (N bytes)`` and ``stream: URL``; the URL carries a session token
(``?token=``), so a player or recorder needs no other credentials:
``ffmpeg -i "$URL" -c copy -f segment -segment_time 300 rec_%03d.mp4``.
"""

import argparse
import os
import sys

from rotordream_client import ApiError, Camera


def main():
    """Save a snapshot and print the stream URL; exit 1 on an API error."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--snapshot", default="snapshot.jpg", help="JPEG file to write")
    parser.add_argument("--stream", default="stream1", choices=["stream1", "stream2"])
    parser.add_argument("--transport", default="tcp", choices=["tcp", "udp"])
    args = parser.parse_args()
    url = os.environ.get("ROTORDREAM_URL", "http://localhost:8080")
    with Camera(url, os.environ.get("ROTORDREAM_USER"),
                os.environ.get("ROTORDREAM_PASSWORD")) as cam:
        try:
            if cam.username:
                cam.login()                # the token also authenticates RTSP
            jpeg = cam.snapshot()
            with open(args.snapshot, "wb") as f:
                f.write(jpeg)
            print("snapshot: %s (%d bytes)" % (args.snapshot, len(jpeg)))
            print("stream: %s" % cam.stream_url(args.stream, transport=args.transport))
        except ApiError as e:
            print("error: %s" % e, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
