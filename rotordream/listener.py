"""A listening port that fails the daemon's start with one clear line when it cannot bind."""

import errno

from twisted.application.internet import StreamServerEndpointService
from twisted.internet import endpoints, error


class Listener(StreamServerEndpointService):
    """A listening port that fails the start with a clear message when it cannot bind."""

    def __init__(self, reactor, description, factory, option, tls=None):
        if tls is not None:
            endpoint = _tls_endpoint(reactor, description, tls)
        else:
            endpoint = endpoints.serverFromString(reactor, description)
        super().__init__(endpoint, factory)
        self.description = description
        self.option = option
        self.port = None
        self._raiseSynchronously = True

    def privilegedStartService(self):
        """Bind now, so a taken or privileged port stops the start with one line."""
        try:
            super().privilegedStartService()
        except error.CannotListenError as e:
            raise SystemExit("rotordream: " + listen_error_message(self.option,
                                                                   self.description, e))
        self._waitingForPort.addCallback(self._bound)

    def _bound(self, port):
        self.port = port
        return port

    def number(self):
        """The port listened on; before it is bound, the one in the description."""
        if self.port is not None:
            return self.port.getHost().port
        return described_port(self.description)


def _tls_endpoint(reactor, description, context_factory):
    """An SSL endpoint from ``ssl:PORT[:interface=...]`` with our context factory."""
    parts = description.split(":")
    kwargs = dict(p.split("=", 1) for p in parts[2:] if "=" in p)
    return endpoints.SSL4ServerEndpoint(reactor, int(parts[1]), context_factory,
                                        interface=kwargs.get("interface", ""))


def listen_error_message(option, description, exc):
    """Say why ``description`` could not be bound and how to pick another port."""
    socket_error = getattr(exc, "socketError", None)
    code = getattr(socket_error, "errno", None)
    if code == errno.EADDRINUSE:
        why = "the port is already in use"
    elif code in (errno.EACCES, errno.EPERM):
        why = "ports below 1024 need root"
    else:
        why = str(socket_error or exc)
    example = "tcp:8554" if option in ("rtsp", "rtsps") else "tcp:8080"
    return ("cannot listen on %s (--%s): %s; pick another port with --%s %s or in the "
            "config file" % (description, option, why, option, example))


def described_port(description, default=80):
    """The port of a server endpoint string such as ``tcp:8080:interface=0.0.0.0``."""
    parts = description.split(":")
    for part in parts[1:]:
        value = part.split("=", 1)[1] if part.startswith("port=") else part
        if value.isdigit():
            return int(value)
        if "=" not in part:
            break
    return default
