#!/usr/bin/env python3
"""Automation: record the camera for a while, then report the finished recording.

    ROTORDREAM_URL=http://camera.local ROTORDREAM_USER=operator ROTORDREAM_PASSWORD=... \\
        python examples/automation.py --seconds 60 --name inspection

Logs in once (a bearer token), starts a recording that the camera itself ends after
``--seconds`` (so it stops even if this script dies), waits for the ``record`` state to
go false over the WebSocket, and prints the recording's id, size and length.
"""

import argparse
import os
import sys

from rotordream_client import ApiError, Camera


def main():
    """Record for --seconds and print the result; exit 1 on an API error."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to record")
    parser.add_argument("--name", default="automation", help="recording name")
    args = parser.parse_args()
    url = os.environ.get("ROTORDREAM_URL", "http://localhost:8080")
    cam = Camera(url, os.environ.get("ROTORDREAM_USER"), os.environ.get("ROTORDREAM_PASSWORD"))
    try:
        cam.login()
        watch = cam.watch(["record"], initial=True)
        try:
            next(watch)                    # subscribed: the end cannot be missed
            status = cam.recording.start(name=args.name, duration=args.seconds)
            print("recording %s for %gs" % (status["id"], args.seconds), flush=True)
            for change in watch:
                if change.get("record") is False:
                    break
        finally:
            watch.close()
        cam.recording.stop()               # answers once the file is complete
        done = [r for r in cam.recordings.list(limit=20) if r["id"] == status["id"]][0]
        print("recorded %s: %d bytes, %.1f s" % (done["id"], done["size"], done["duration"]))
        cam.logout()
    except ApiError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    finally:
        cam.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
