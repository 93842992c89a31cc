"""The twisted.web adapter: /onvif/<service>_service resources around one Dispatcher."""

import importlib
import ipaddress

from twisted.logger import Logger
from twisted.web import resource, server

from rotordream.onvif import soap
from rotordream.onvif.dispatch import Dispatcher

log = Logger()

SERVICES = ("device", "media", "ptz", "imaging", "events", "deviceio")

# Service name -> module whose OPS table it serves (absent modules are skipped).
_MODULES = {"device": "rotordream.onvif.device", "media": "rotordream.onvif.media",
            "ptz": "rotordream.onvif.ptz", "imaging": "rotordream.onvif.imaging",
            "events": "rotordream.onvif.events", "deviceio": "rotordream.onvif.deviceio"}


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
        body = request.content.read(soap.MAX_BODY + 1)
        host, port = request_host(request)
        peer = request.getClientAddress()
        authorization = request.getHeader(b"authorization")
        http = {"method": "POST", "uri": request.uri.decode("latin-1"),
                "authorization": authorization.decode("latin-1") if authorization else None,
                "scheme": "https" if request.isSecure() else "http",
                "host": host, "port": port, "client": getattr(peer, "host", None)}
        d = self.dispatcher.handle(self.service, body, http)
        d.addCallback(self._write, request)
        d.addErrback(self._crash, request)
        return server.NOT_DONE_YET

    def render_GET(self, request):
        """Only POST carries SOAP; say so as a fault, not HTML."""
        fault = soap.sender("ter:WellFormed", "ONVIF services take SOAP requests by POST",
                            http_status=405)
        request.setHeader(b"allow", b"POST")
        return self._write((fault.http_status, {b"content-type": soap.content_type(soap.SOAP12)},
                            soap.fault_envelope(fault)), request, finish=False)

    def _write(self, result, request, finish=True):
        status, headers, body = result
        if getattr(request, "_disconnected", False) or request.finished:
            return None
        request.setResponseCode(status)
        for name, value in headers.items():
            values = value if isinstance(value, list) else [value]
            for v in values:
                request.responseHeaders.addRawHeader(name, v)
        request.setHeader(b"cache-control", b"no-store")
        if not finish:
            return body
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

    def render(self, request):
        """/onvif itself: a fault pointing at the device service."""
        fault = soap.sender("ter:WellFormed", "use /onvif/device_service", http_status=404)
        request.setResponseCode(404)
        request.setHeader(b"content-type", soap.content_type(soap.SOAP12))
        return soap.fault_envelope(fault)


def make_onvif_resource(ctx):
    """The /onvif resource with every service table that is built."""
    root = OnvifRoot(Dispatcher(ctx))
    for name, module in _MODULES.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            continue
        root.register(name, mod.OPS)
    ctx.onvif = root
    return root
