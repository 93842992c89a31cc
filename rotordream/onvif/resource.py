"""The twisted.web adapter: /onvif/<service>_service resources around one Dispatcher."""

import ipaddress

from twisted.logger import Logger
from twisted.web import resource, server

from rotordream.auth import origin
from rotordream.onvif import (device, deviceio, events, imaging, media, media2, ptz, recording,
                             replay, search, soap)
from rotordream.onvif.dispatch import Dispatcher

log = Logger()

# Service name -> the operations table served at /onvif/<name>_service.
TABLES = {"device": device.OPS, "media": media.OPS, "media2": media2.OPS, "ptz": ptz.OPS,
          "imaging": imaging.OPS, "events": events.OPS, "deviceio": deviceio.OPS,
          "recording": recording.OPS, "search": search.OPS, "replay": replay.OPS}
SERVICES = tuple(TABLES)


def request_host(request):
    """(host, port) the client addressed: the Host header, else the local address.

    An unspecified address (0.0.0.0, ::) is never returned: URIs built from it
    would be useless to the client.
    """
    local = request.getHost()
    port = getattr(local, "port", 80)
    raw = request.getHeader(b"host")
    host = None
    if raw:
        raw = raw.decode("latin-1").strip()
        if raw.startswith("["):
            end = raw.find("]")
            host, rest = raw[1:end], raw[end + 1:]
        else:
            host, _, rest = raw.partition(":")
            rest = ":" + rest if rest else ""
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
        elif not rest:
            port = 443 if request.isSecure() else 80
    if not host or _unspecified(host):
        host = getattr(local, "host", "127.0.0.1")
        port = getattr(local, "port", port)
        if _unspecified(host):
            host = "127.0.0.1"
    return host, port


def _unspecified(host):
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


class ServiceResource(resource.Resource):
    """One ONVIF service endpoint: POST a SOAP envelope, get one back."""

    isLeaf = True

    def __init__(self, dispatcher, service):
        super().__init__()
        self.dispatcher = dispatcher
        self.service = service

    def render_POST(self, request):
        """Run the operation; the answer (or fault) is written when ready."""
        if self._foreign(request):
            # A page elsewhere could post SOAP as text/plain with the browser's saved
            # Digest credentials; NVRs send no Origin.
            return _fault_body(request, soap.sender(
                "ter:NotAuthorized", "requests from this page's origin are not allowed; "
                "list it in [http] allowed_origins to trust it", http_status=403))
        body = request.content.read(soap.MAX_BODY + 1)
        host, port = request_host(request)
        peer = request.getClientAddress()
        authorization = request.getHeader(b"authorization")
        http = {"method": "POST", "uri": request.uri.decode("latin-1"),
                "authorization": authorization.decode("latin-1") if authorization else None,
                "scheme": "https" if request.isSecure() else "http",
                "host": host, "port": port, "client": getattr(peer, "host", None),
                "path": [p.decode("utf-8", "replace") for p in request.postpath if p],
                # A page's script: its 401 carries no challenge (no browser password dialog).
                "quiet": request.getHeader(b"x-requested-with") is not None}
        d = self.dispatcher.handle(self.service, body, http)
        # A client that hangs up cancels its operation (e.g. an events long poll).
        request.notifyFinish().addErrback(lambda _: d.cancel())
        d.addCallback(self._write, request)
        d.addErrback(self._crash, request)
        return server.NOT_DONE_YET

    def _foreign(self, request):
        return origin.classify_request(request, self.dispatcher.ctx.config.http) == \
            origin.FOREIGN

    def render(self, request):
        """POST carries SOAP; any other method gets a fault (not Twisted's HTML page)."""
        if request.method == b"POST":
            return self.render_POST(request)
        request.setHeader(b"allow", b"POST")
        return _fault_body(request, soap.sender(
            "ter:WellFormed", "ONVIF services take SOAP requests by POST", http_status=405))

    def _write(self, result, request):
        status, headers, body = result
        if getattr(request, "_disconnected", False) or request.finished:
            return None
        request.setResponseCode(status)
        for name, value in headers.items():
            values = value if isinstance(value, list) else [value]
            for v in values:
                request.responseHeaders.addRawHeader(name, v)
        request.setHeader(b"cache-control", b"no-store")
        request.write(body)
        request.finish()
        return None

    def _crash(self, failure, request):
        log.failure("ONVIF request failed", failure)
        fault = soap.receiver("ter:Action", "internal error")
        self._write((500, {b"content-type": soap.content_type(soap.SOAP12)},
                     soap.fault_envelope(fault)), request)


class OnvifRoot(resource.Resource):
    """/onvif: one child per service; ``register(service, table)`` adds operations."""

    def __init__(self, dispatcher):
        super().__init__()
        self.dispatcher = dispatcher
        for name in SERVICES:
            self.putChild(("%s_service" % name).encode(), ServiceResource(dispatcher, name))

    def register(self, service, table):
        """Serve ``table`` for ``service`` (e.g. the events broker's operations)."""
        self.dispatcher.register(service, table)

    def getChild(self, path, request):
        """Unknown services are SOAP faults too."""
        return _NoService()

    def render(self, request):
        """/onvif itself: a fault pointing at the device service."""
        return _NoService().render(request)


class _NoService(resource.Resource):
    """A path under /onvif that is no service: a SOAP fault, not an HTML 404."""

    isLeaf = True

    def render(self, request):
        """404 with an ActionNotSupported fault."""
        return _fault_body(request, soap.receiver(
            ("ter:ActionNotSupported", "ter:NoSuchService"),
            "no such ONVIF service; the device service is /onvif/device_service",
            http_status=404))


def _fault_body(request, fault):
    request.setResponseCode(fault.http_status)
    request.setHeader(b"content-type", soap.content_type(soap.SOAP12))
    request.setHeader(b"cache-control", b"no-store")
    return soap.fault_envelope(fault)


def make_onvif_resource(ctx):
    """The /onvif resource serving every ONVIF service's operations."""
    root = OnvifRoot(Dispatcher(ctx))
    for name, table in TABLES.items():
        root.register(name, table)
    return root
