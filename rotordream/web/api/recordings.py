"""REST for recording: /api/recording/{start,stop,pause,resume,status} and /api/recordings[/<id>].

Downloads are served by twisted.web.static.File, which answers HTTP Range
with 206, so players can seek and downloads resume. The Range header is checked
first (:mod:`rotordream.web.byteranges`): at most ``[http] max_ranges`` ranges,
none overlapping, else 416; static.File then sees only the resolved ranges.
"""

import calendar
import os
import time

from twisted.web import static

from rotordream.auth import roles
from rotordream.recording.store import UnknownRecording, valid_id
from rotordream.web import byteranges
from rotordream.web.api.base import ApiError, ApiResource, error_body, read_json, \
    write_json
from rotordream.web.api.schema import AUTHENTICATED, VIEWER, Route

MAX_PAGE = 1000



class Control(ApiResource):
    """POST /api/recording/<verb>: start, stop, pause, resume."""

    routes = (
        Route("/api/recording/start", "post", "Start recording stream1 (optional name, duration "
              "limit in seconds)", AUTHENTICATED),
        Route("/api/recording/stop", "post", "Stop recording", AUTHENTICATED),
        Route("/api/recording/pause", "post", "Pause recording", AUTHENTICATED),
        Route("/api/recording/resume", "post", "Resume a paused recording", AUTHENTICATED),
    )

    isLeaf = True
    methods = {"POST": ("post", roles.RECORDING_CONTROL)}

    def __init__(self, api, verb):
        super().__init__(api)
        self.verb = verb

    def post(self, request, principal):
        recorder = self.ctx.recorder
        if self.verb == "stop":
            # Answer once the file is finished: the status then counts its bytes and the
            # recording is listed as complete.
            recorder.stop(origin="rest")
            return recorder.closed().addCallback(lambda _: recorder.status())
        if self.verb != "start":
            return getattr(recorder, self.verb)(origin="rest")
        name, duration = None, None
        length = request.getHeader(b"content-length")
        if length and length != b"0":
            body = read_json(request)
            if not isinstance(body, dict):
                raise ApiError(400, "the body must be a JSON object")
            unknown = set(body) - {"name", "duration"}
            if unknown:
                raise ApiError(400, "unknown field %s" % sorted(unknown)[0],
                               key=sorted(unknown)[0])
            name = body.get("name")
            if name is not None and (not isinstance(name, str) or len(name) > 64):
                raise ApiError(400, "name must be a string of at most 64 characters", key="name")
            duration = body.get("duration")
            if duration is not None and (isinstance(duration, bool) or
                                         not isinstance(duration, (int, float)) or
                                         duration <= 0):
                raise ApiError(400, "duration must be a positive number of seconds",
                               key="duration")
        return recorder.start(name=name, duration=duration, origin="rest")


class Status(ApiResource):
    """GET /api/recording/status."""

    routes = (
        Route("/api/recording/status", "get", "Recording state, id, duration, bytes, free space",
              VIEWER),
    )

    isLeaf = True
    methods = {"GET": ("get", roles.RECORDINGS_READ)}

    def get(self, request, principal):
        return self.ctx.recorder.status()


class RecordingRoot(ApiResource):
    """/api/recording: the control verbs and status."""

    def __init__(self, api):
        super().__init__(api)
        for verb in ("start", "stop", "pause", "resume"):
            self.putChild(verb.encode(), Control(api, verb))
        self.putChild(b"status", Status(api))


def _time_arg(request, name):
    raw = request.args.get(name.encode(), [None])[0]
    if raw is None:
        return None
    text = raw.decode("latin-1")
    try:
        return float(text)
    except ValueError:
        pass
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%S",
                "%Y-%m-%d"):
        try:
            return calendar.timegm(time.strptime(text, fmt))
        except ValueError:
            continue
    raise ApiError(400, "%s must be seconds since the epoch or an ISO 8601 UTC time" % name,
                   key=name)


def _int_arg(request, name, default, lo, hi):
    raw = request.args.get(name.encode(), [None])[0]
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "%s must be an integer" % name, key=name)
    if not lo <= value <= hi:
        raise ApiError(400, "%s must be between %d and %d" % (name, lo, hi), key=name)
    return value


class Recordings(ApiResource):
    """GET /api/recordings: the index, newest first, with paging and time filters."""

    routes = (
        Route("/api/recordings", "get", "Recordings, newest first (offset, limit, since, until)",
              VIEWER),
    )

    methods = {"GET": ("get", roles.RECORDINGS_READ)}

    def get(self, request, principal):
        store = self.ctx.recorder.store
        offset = _int_arg(request, "offset", 0, 0, 10 ** 9)
        limit = _int_arg(request, "limit", 100, 1, MAX_PAGE)
        since, until = _time_arg(request, "since"), _time_arg(request, "until")
        self._refresh_live(store)
        total, page = store.listing(since, until, offset, limit)
        return {"total": total, "offset": offset, "limit": limit, "recordings": page}

    def _refresh_live(self, store):
        recorder = self.ctx.recorder
        seg = recorder.segment
        if seg is not None and seg.id in store.entries:
            store.update(seg.id, save=False, size=recorder.segment_size())

    def getChild(self, name, request):
        return OneRecording(self.api, name.decode("utf-8", "replace"))


class OneRecording(ApiResource):
    """GET (download, Range) or DELETE /api/recordings/<id>."""

    routes = (
        Route("/api/recordings/{id}", "get", "Download a recording (MP4, HTTP Range supported)",
              VIEWER, media="video/mp4"),
        Route("/api/recordings/{id}", "delete", "Delete a recording (operator)", AUTHENTICATED),
    )

    isLeaf = True
    methods = {"GET": ("get", roles.RECORDINGS_READ),
               "DELETE": ("delete", roles.RECORDINGS_DELETE)}

    def __init__(self, api, rid):
        super().__init__(api)
        self.rid = rid

    def _entry(self, request):
        # Ids are [A-Za-z0-9_-]: "..", "/", "%2F" and absolute paths never name a file.
        if request.postpath or not valid_id(self.rid):
            raise ApiError(404, "no such recording")
        try:
            return self.ctx.recorder.store.get(self.rid)
        except UnknownRecording:
            raise ApiError(404, "no such recording")

    def get(self, request, principal):
        entry = self._entry(request)
        path = self.ctx.recorder.store.path(entry["id"])
        if not os.path.exists(path):
            raise ApiError(404, "no such recording")
        return _Download(path, entry, self.ctx.config.http.max_ranges)

    def delete(self, request, principal):
        entry = self._entry(request)
        try:
            self.ctx.recorder.store.delete(entry["id"])
        except ValueError as e:
            raise ApiError(409, str(e))
        return {"deleted": entry["id"]}

    def _respond(self, request, result):
        if isinstance(result, _Download):
            return result.render(request)
        return super()._respond(request, result)


class _Download:
    """A recording file answered by static.File (Range, 206, 416, HEAD)."""

    def __init__(self, path, entry, max_ranges):
        self.path = path
        self.entry = entry
        self.max_ranges = max_ranges

    def render(self, request):
        f = static.File(self.path, defaultType="video/mp4")
        f.type, f.encoding = "video/mp4", None
        refused = self._check_range(request, f.getFileSize())
        if refused:
            return _unsatisfiable(request, f.getFileSize(), refused)
        request.setHeader(b"content-disposition",
                          ('attachment; filename="%s.mp4"' % self.entry["id"]).encode())
        request.setHeader(b"cache-control", b"no-store" if self.entry.get("recording")
                          else b"private, max-age=3600")
        return f.render(request)

    def _check_range(self, request, size):
        """Replace Range by the ranges to send (or drop it); the reason if it is refused."""
        header = request.getHeader(b"range")
        if header is None:
            return None
        try:
            ranges = byteranges.parse_range(header, size, self.max_ranges)
        except byteranges.RangeNotSatisfiable as e:
            return e.reason
        if ranges is None:
            request.requestHeaders.removeHeader(b"range")
        else:
            request.requestHeaders.setRawHeaders(b"range", [byteranges.header_value(ranges)])
        return None


def _unsatisfiable(request, size, reason):
    """416 with the error envelope and the file's size in Content-Range."""
    return write_json(request, 416, error_body(416, "range refused: %s" % reason,
                                               "RANGE_NOT_SATISFIABLE", size=size),
                      {b"content-range": b"bytes */%d" % size, b"accept-ranges": b"bytes"})


# The classes made per request, for the OpenAPI document.
Recordings.child_classes = (OneRecording,)
