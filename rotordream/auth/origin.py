"""Is a browser request from a foreign origin? (CSRF defence for REST and WebSocket upgrades.)

Pure functions over header values: a request is same-origin when its ``Origin`` (or,
lacking one, its ``Referer``) names the scheme, host and port the request was sent to;
configured origins (``[http] allowed_origins`` and ``cors_origins``) are trusted too.
Requests without either header (curl, SDKs, NVRs) are not browser requests and pass.
"""

from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _origin_of(url):
    """(scheme, host, port) of an absolute URL; None when it is not one."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def _host_of(host_header, secure):
    """(host, port) the request was addressed to, from its Host header."""
    scheme = "https" if secure else "http"
    got = _origin_of("%s://%s" % (scheme, host_header.strip()))
    return None if got is None else got[1:]


def request_origin(origin, referer):
    """The origin a browser says the request comes from: Origin, else Referer's; or None."""
    if origin:
        return origin.strip()
    if referer:
        got = _origin_of(referer)
        if got is not None:
            return "%s://%s:%d" % got
        return referer.strip()
    return None


def _trusted(claimed, allowed):
    """Is ``claimed`` one of the configured origins (compared as scheme, host, port)?"""
    if "*" in allowed:
        return True
    got = _origin_of(claimed)
    for entry in allowed:
        if entry.strip().rstrip("/") == claimed.rstrip("/"):
            return True
        if got is not None and _origin_of(entry.rstrip("/")) == got:
            return True
    return False


def is_foreign(origin, referer, host, secure, allowed=()):
    """True when a browser sent this request from a page of another origin.

    ``origin``/``referer``/``host`` are header values (str or None); ``secure`` tells
    whether the request came over TLS; ``allowed`` lists trusted origins ("*" trusts all).
    """
    return classify(origin, referer, host, secure, allowed) == FOREIGN


NONE, TRUSTED, FOREIGN = "none", "trusted", "foreign"


def classify(origin, referer, host, secure, allowed=()):
    """Where a request comes from: NONE (no Origin or Referer: not a browser, e.g. curl),
    TRUSTED (a page of this origin, or of a configured one) or FOREIGN."""
    claimed = request_origin(origin, referer)
    if claimed is None:
        return NONE
    if _trusted(claimed, allowed):
        return TRUSTED
    if claimed == "null":
        return FOREIGN  # sandboxed frames, file: pages, cross-origin redirects
    got = _origin_of(claimed)
    target = _host_of(host, secure) if host else None
    if got is None or target is None:
        return FOREIGN
    scheme, o_host, o_port = got
    if scheme not in (("https", "wss") if secure else ("http", "ws")):
        return FOREIGN
    return TRUSTED if (o_host, o_port) == target else FOREIGN


def classify_request(request, http_config):
    """:func:`classify` for a twisted.web request, trusting ``[http] allowed_origins``
    and ``cors_origins``."""
    def text(name):
        value = request.getHeader(name)
        return None if value is None else value.decode("latin-1")
    return classify(text(b"origin"), text(b"referer"), text(b"host"), request.isSecure(),
                    tuple(http_config.allowed_origins) + tuple(http_config.cors_origins))
