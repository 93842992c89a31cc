"""System nouns: /api/info, /api/health, /api/status, /api/camera/status, /api/streams, /api/snapshot."""

import os
import shutil
import time
from collections import Counter

from rotordream import API_VERSION, PRODUCT, __version__
from rotordream.auth import roles
from rotordream.web.api.base import ApiError, ApiResource, Raw
from rotordream.web.api.schema import PUBLIC, VIEWER, Route

CAPABILITIES = ["rest", "websocket", "rtsp", "snapshot", "recording", "onvif", "ptz", "motors"]
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def host_of(request):
    """The host name the client used to reach us (for URLs we hand back)."""
    host = request.getRequestHostname().decode("latin-1", "replace")
    return host if host and host not in ("0.0.0.0", "::") else request.getHost().host


class Info(ApiResource):
    """GET /api/info: product, version and how to reach the streams (public)."""

    routes = (
        Route("/api/info", "get", "Product, version, capabilities and stream URLs", PUBLIC),
    )

    methods = {"GET": ("get", None)}

    def get(self, request, principal):
        urls = self.ctx.stream_urls(host_of(request))
        webrtc = self.ctx.webrtc is not None
        streams = {name: {"url": url} for name, url in urls.items()}
        if webrtc:
            for name, stream in streams.items():
                stream["webrtc"] = "/api/webrtc/offer?stream=" + name
        return {"product": PRODUCT, "version": __version__, "api_version": API_VERSION,
                "capabilities": CAPABILITIES + (["webrtc"] if webrtc else []),
                "streams": streams}


class Health(ApiResource):
    """GET /api/health: is the daemon serving and is the camera delivering frames (public)."""

    routes = (
        Route("/api/health", "get", "Liveness for monitoring", PUBLIC),
    )

    methods = {"GET": ("get", None)}

    def get(self, request, principal):
        stats = self.ctx.pipeline.stats() if self.ctx.pipeline else {}
        return {"healthy": True, "camera": bool(stats.get("signal")),
                "uptime": round(time.time() - self.ctx.started, 3)}


class ProcessMeter:
    """CPU % of this process between two readings, from /proc."""

    def __init__(self):
        self._last = None

    def cpu_percent(self):
        """Process CPU % (of one core) since the previous call."""
        now = time.monotonic()
        t = os.times()
        busy = t.user + t.system
        last, self._last = self._last, (now, busy)
        if last is None or now - last[0] <= 0:
            return None
        return round((busy - last[1]) / (now - last[0]) * 100, 1)


def rss_bytes():
    """Resident memory of this process."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def sees_sessions(principal):
    """May ``principal`` see session ids and client addresses? Operators and admins only."""
    return principal.authenticated and principal.can(roles.CAMERA_CONTROL)


class Status(ApiResource):
    """GET /api/status: uptime, CPU, memory, disk, encoder counters, recording, clients."""

    routes = (
        Route("/api/status", "get", "Uptime, CPU, memory, disk, encoder counters, clients, push "
              "targets (RTSP session ids, client addresses and push URLs shown to operators and "
              "admins only)", VIEWER),
    )

    methods = {"GET": ("get", roles.STATUS_READ)}

    def __init__(self, api, push=None):
        super().__init__(api)
        self.push = push   # the RTSP push service, or None
        self.meter = ProcessMeter()
        self.meter.cpu_percent()

    def get(self, request, principal):
        ctx = self.ctx
        disk = shutil.disk_usage(ctx.config.server.state_dir)
        recorder = ctx.recorder.status() if ctx.recorder is not None else None
        rtsp = ctx.rtsp.sessions() if ctx.rtsp is not None else []
        ws = ctx.websocket
        push = self.push.status() if self.push is not None else []
        if not sees_sessions(principal):
            # A session id is what PAUSE/TEARDOWN name, an address who watches: counts only.
            rtsp = [{"stream": s.get("stream"), "state": s.get("state"),
                     "transport": s.get("transport")} for s in rtsp]
            # Where the camera pushes to is the operators' business: state only.
            push = [{"stream": t["stream"], "state": t["state"]} for t in push]
        return {
            "uptime": round(time.time() - ctx.started, 3),
            "cpu_percent": self.meter.cpu_percent(),
            "load_average": list(os.getloadavg()),
            "memory": {"rss": rss_bytes()},
            "disk": {"total": disk.total, "used": disk.used, "free": disk.free},
            "camera": ctx.pipeline.stats() if ctx.pipeline else None,
            "recording": recorder,
            "push": push,
            "clients": {"rtsp": len(rtsp), "rtsp_sessions": rtsp,
                        "websocket": ws.count() if ws else 0,
                        "websocket_dropped": ws.dropped if ws else 0,
                        "webrtc": sum(ctx.webrtc.counts().values()) if ctx.webrtc else 0},
        }


class CameraStatus(ApiResource):
    """GET /api/camera/status: heads present, signal, current size and rate."""

    routes = (
        Route("/api/camera/status", "get", "Camera heads, signal, size and rate", VIEWER),
    )

    methods = {"GET": ("get", roles.STATUS_READ)}

    def get(self, request, principal):
        state = self.ctx.state
        stats = self.ctx.pipeline.stats()
        return {"connected": bool(stats["signal"]), "source": stats["source"],
                "cam1-exists": state.get("cam1-exists"), "cam2-exists": state.get("cam2-exists"),
                "main-camera": state.get("main-camera"), "resolution": state.get("resolution"),
                "fps": state.get("fps"), "frames_captured": stats["captured"],
                "frames_dropped": stats["dropped"]}


class Streams(ApiResource):
    """GET /api/streams: each stream's URL, codec, size, rate, bitrate and clients."""

    routes = (
        Route("/api/streams", "get", "Each stream: URL, codec, size, fps, bitrate, clients", VIEWER),
    )

    methods = {"GET": ("get", roles.STATUS_READ)}

    def get(self, request, principal):
        urls = self.ctx.stream_urls(host_of(request))
        state = self.ctx.state
        counts = Counter(s.get("stream") for s in
                         (self.ctx.rtsp.sessions() if self.ctx.rtsp is not None else ()))
        webrtc = Counter(self.ctx.webrtc.counts() if self.ctx.webrtc else {})
        out = []
        for name, hub in self.ctx.pipeline.hubs.items():
            prefix = "" if name == "stream1" else "stream2-"
            w, h = state.get(prefix + "resolution").split("x")
            out.append({"name": name, "url": urls[name], "codec": "H.264",
                        "width": int(w), "height": int(h), "fps": state.get(prefix + "fps"),
                        "bitrate": state.get(name + "-bitrate") * 1000,
                        "measured_bitrate": hub.bitrate, "clients": counts[name],
                        "webrtc_clients": webrtc[name]})
        return {"streams": out}


class Snapshot(ApiResource):
    """GET /api/snapshot[?quality=1-100][&snap=ID]: a JPEG of the latest frame."""

    routes = (
        Route("/api/snapshot", "get", "JPEG of the latest frame", VIEWER, media="image/jpeg",
              query={"quality": {"type": "integer", "minimum": 1, "maximum": 100}}),
    )

    methods = {"GET": ("get", roles.SNAPSHOT_READ)}

    def get(self, request, principal):
        snap = request.args.get(b"snap", [None])[0]
        if snap is not None:
            try:
                d = self.ctx.pipeline.snap(snap.decode("ascii", "replace"))
            except KeyError:
                raise ApiError(404, "no such snapshot (only the last ten are kept)")
            return d.addCallback(self._jpeg)
        quality = request.args.get(b"quality", [None])[0]
        if quality is not None:
            try:
                quality = int(quality)
                if not 1 <= quality <= 100:
                    raise ValueError
            except ValueError:
                raise ApiError(400, "quality must be an integer from 1 to 100",
                               "INVALID_VALUE", key="quality", allowed={"min": 1, "max": 100})
        return self.ctx.pipeline.snapshot(quality).addCallback(self._jpeg)

    @staticmethod
    def _jpeg(data):
        if not data:
            raise ApiError(503, "no picture from the camera yet", "CAMERA_NOT_CONNECTED")
        return Raw(data, b"image/jpeg", {b"cache-control": b"no-store"})
