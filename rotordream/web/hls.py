"""HTTP for HLS: /hls/<stream>/index.m3u8 (Low-Latency), classic.m3u8 (whole segments, for
older players), init-<v>.mp4, seg-<msn>.m4s and part-<msn>-<i>.m4s.

Viewers (``stream.watch``: cookie, Bearer, ``?token=``, or anonymous when allowed).
Made for caches and CDNs in front: segments, parts and init segments never change
under their name (``immutable``, a day); a playlist lives a second; a blocking
reload (``_HLS_msn``/``_HLS_part``) is its own URL, so a cache keyed by the query
collapses every viewer's wait into one request here. Answers to a logged-in
viewer are ``private`` (a shared cache must not hand them to others). Any origin
may read them (players served from elsewhere use ``?token=``). HLS has its own
per-address rate limit (``[hls] rate_limit`` per second): players ask often.
"""

from twisted.internet import defer

from rotordream.auth import roles
from rotordream.auth.ratelimit import RateLimiter
from rotordream.hls.playlist import parse_name
from rotordream.hls.service import TooMany
from rotordream.web.api.base import ApiContext, ApiError, ApiResource, NotFound, Raw
from rotordream.web.api.schema import VIEWER, Route

PLAYLIST_TYPE = b"application/vnd.apple.mpegurl"
MEDIA_TYPE = b"video/mp4"
FIRST_PART_WAIT = 10.0   # seconds a first request waits for packaging to produce something


def _int(request, name):
    raw = request.args.get(name.encode(), [None])[0]
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 12:
        raise ApiError(400, "%s must be a non-negative integer" % name, key=name)
    return int(raw)


class HlsRoot(ApiResource):
    """/hls: its children are the streams."""

    methods = {}

    def __init__(self, api, hls):
        super().__init__(api)
        self.hls = hls

    def getChild(self, name, request):
        stream = self.hls.streams.get(name.decode("utf-8", "replace"))
        if stream is None:
            return NotFound(self.api)
        return HlsFiles(self.api, stream)

    def render(self, request):
        return NotFound(self.api).render(request)


class HlsFiles(ApiResource):
    """GET /hls/<stream>/<file>."""

    # The blocking-reload query is named in the summary, not declared as parameters: its
    # rules (_HLS_part only with _HLS_msn, _HLS_msn at most two past the playlist, both 400
    # otherwise as RFC 8216bis 6.2.5.2 says) depend on each other and on the live playlist,
    # which a parameter schema cannot say; a fuzzer would take its 400s for refused valid input.
    routes = (
        Route("/hls/stream1/index.m3u8", "get", "Low-Latency HLS playlist of stream1 (blocking "
              "reload: ?_HLS_msn=N or ?_HLS_msn=N&_HLS_part=M waits until that segment or part "
              "is listed)", VIEWER, media="application/vnd.apple.mpegurl"),
        Route("/hls/stream2/index.m3u8", "get", "Low-Latency HLS playlist of stream2", VIEWER,
              media="application/vnd.apple.mpegurl"),
        Route("/hls/stream1/classic.m3u8", "get", "HLS playlist of stream1 with whole segments "
              "only, for players without Low-Latency HLS", VIEWER,
              media="application/vnd.apple.mpegurl"),
        Route("/hls/stream2/classic.m3u8", "get", "HLS playlist of stream2, whole segments only",
              VIEWER, media="application/vnd.apple.mpegurl"),
    )

    isLeaf = True
    methods = {"GET": ("get", roles.STREAM_WATCH)}

    def __init__(self, api, stream):
        super().__init__(api)
        self.stream = stream

    def _precheck(self, request):
        # The limit is read per request, so a reload of [hls] rate_limit applies at once.
        self.api.limiter.configure(self.ctx.config.hls.rate_limit, 1)
        return super()._precheck(request)

    def get(self, request, principal):
        if len(request.postpath) != 1:
            raise ApiError(404, "no such HLS file")
        name = request.postpath[0].decode("utf-8", "replace")
        stream = self.stream
        stream.touch()
        if name in ("index.m3u8", "classic.m3u8"):
            d = self._playlist(request, name == "index.m3u8")
        else:
            d = self._file(name)
        return d.addCallback(self._answer, request, principal)

    def _wait(self, predicate, timeout):
        try:
            return self.stream.wait(predicate, timeout)
        except TooMany:
            raise ApiError(503, "too many HLS requests waiting", "CAMERA_NOT_CONNECTED",
                           retry_after=1, headers={b"retry-after": b"1"}) from None

    def _playlist(self, request, low_latency):
        stream = self.stream
        msn, part = _int(request, "_HLS_msn"), _int(request, "_HLS_part")
        if part is not None and msn is None:
            raise ApiError(400, "_HLS_part needs _HLS_msn", key="_HLS_part")
        blocking = low_latency and msn is not None
        pl = stream.playlist
        if blocking:
            if pl.too_far(msn, part):
                raise ApiError(400, "_HLS_msn %d is too far ahead of the playlist" % msn,
                               key="_HLS_msn")
            # RFC 8216bis 6.2.5.2: hold until it is there; give up after 3 target durations.
            d = self._wait(lambda: stream.playlist is not None and
                           stream.playlist.has(msn, part), 3 * pl.target_duration + 1)
        else:
            # A first playlist has a whole segment: players without LL-HLS (FFmpeg's) see
            # only EXTINF segments, and give up on a playlist without one.
            d = self._wait(lambda: stream.playlist is not None and
                           any(s.complete for s in stream.playlist.segments), FIRST_PART_WAIT)

        def render(_):
            if stream.playlist is None or stream.playlist.last is None:
                raise ApiError(503, "no video yet", "CAMERA_NOT_CONNECTED", retry_after=1,
                               headers={b"retry-after": b"1"})
            body = stream.playlist.render(low_latency).encode("ascii")
            # The answer to a blocking reload is final for its URL; a plain one changes
            # with every part.
            age = 3 * stream.playlist.target_duration if blocking else 1
            return Raw(body, PLAYLIST_TYPE, {b"cache-control": "max-age=%d" % age})
        return d.addCallback(render)

    def _file(self, name):
        stream = self.stream
        parsed = parse_name(name)
        if parsed is None or stream.playlist is None:
            raise ApiError(404, "no such HLS file")

        def data():
            pl = stream.playlist
            return pl.file(name) if pl is not None else None

        d = defer.succeed(True)
        if data() is None and parsed[0] == "part" and stream.playlist.may_come(*parsed[1:]):
            # A preload-hinted part: answered as soon as it exists (RFC 8216bis 6.2.6).
            pl = stream.playlist
            d = self._wait(lambda: data() is not None or stream.playlist is not pl or
                           not pl.may_come(*parsed[1:]), 3 * pl.target_duration + 1)

        def answer(_):
            body = data()
            if body is None:
                raise ApiError(404, "no such HLS file (not yet, or no longer)")
            return Raw(body, MEDIA_TYPE, {b"cache-control": "max-age=86400, immutable"})
        return d.addCallback(answer)

    def _answer(self, raw, request, principal):
        # Who may see it: anyone's cache when no credentials were needed, else the viewer's.
        scope = b"private, " if principal.authenticated else b"public, "
        raw.headers[b"cache-control"] = scope + raw.headers[b"cache-control"].encode()
        if not request.responseHeaders.hasHeader(b"access-control-allow-origin"):
            raw.headers[b"access-control-allow-origin"] = b"*"
        return raw


def make_hls_resource(ctx, hls):
    """The /hls resource over the HLS service ``hls``, with its own rate limiter."""
    limiter = RateLimiter(ctx.config.hls.rate_limit, 1, ctx.reactor)
    return HlsRoot(ApiContext(ctx, limiter), hls)


HlsRoot.child_classes = (HlsFiles,)
