#!/usr/bin/env python3
"""Watch loop: print every change of the camera's state as it happens.

    ROTORDREAM_URL=http://camera.local python examples/watch.py brightness record

Prints ``KEY = VALUE`` per changed key (all readable keys without arguments). It keeps
going across network drops and camera restarts: the client reconnects with backoff and
reports what changed meanwhile. ``--count N`` stops after N changes.
"""

import argparse
import json
import os
import sys

from rotordream_client import ApiError, Camera


def main():
    """Print changes until interrupted (or --count changes); exit 1 on an API error."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("keys", nargs="*", help="keys to watch (default: all)")
    parser.add_argument("--initial", action="store_true", help="print current values first")
    parser.add_argument("--count", type=int, default=0, help="stop after this many changes")
    args = parser.parse_args()
    url = os.environ.get("ROTORDREAM_URL", "http://localhost:8080")
    seen = 0
    with Camera(url, os.environ.get("ROTORDREAM_USER"),
                os.environ.get("ROTORDREAM_PASSWORD")) as cam:
        try:
            for change in cam.watch(args.keys or None, initial=args.initial):
                for key, value in sorted(change.items()):
                    print("%s = %s" % (key, json.dumps(value)), flush=True)
                seen += 1
                if args.count and seen >= args.count:
                    break
        except KeyboardInterrupt:
            pass
        except ApiError as e:
            print("error: %s" % e, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
