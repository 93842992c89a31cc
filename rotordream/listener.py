"""A listening port that fails the daemon's start with one clear line when it cannot bind,
and that a reload moves to another endpoint without dropping its connections."""

import errno

from twisted.application.internet import StreamServerEndpointService
from twisted.internet import defer, endpoints, error
from twisted.logger import Logger
from twisted.python import failure

log = Logger(namespace="rotordream.service.listener")  # area "service"


class ListenError(Exception):
    """A new endpoint could not be bound; the message says why in one line."""


class Listener(StreamServerEndpointService):
    """A listening port that fails the start with a clear message when it cannot bind."""

    def __init__(self, reactor, description, factory, option, tls=None):
        self._reactor = reactor
        self._tls = tls
        super().__init__(self._endpoint(description), factory)
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
        log.info("listening on {endpoint}", event="listening", option=self.option,
                 endpoint=self.description, port=port.getHost().port)
        return port

    def _endpoint(self, description):
        if self._tls is not None:
            return _tls_endpoint(self._reactor, description, self._tls)
        return endpoints.serverFromString(self._reactor, with_backlog(description))

    def open(self, description):
        """Bind ``description`` beside the current port and return the new port (not yet
        in use by this listener: :meth:`move_to` or ``stopListening`` it).

        Raises :class:`ListenError` when it cannot be bound.
        """
        outcome = []
        self._endpoint(description).listen(self.factory).addBoth(outcome.append)
        if not outcome:  # every endpoint we build (tcp, ssl, unix) listens at once
            raise ListenError("cannot listen on %s (--%s): the endpoint did not bind at once"
                              % (description, self.option))
        if isinstance(outcome[0], failure.Failure):
            raise ListenError(listen_error_message(self.option, description, outcome[0].value))
        return outcome[0]

    def move_to(self, description, port):
        """Serve on ``port`` (from :meth:`open`) from now on and stop listening on the old
        one; connections it already accepted keep running until they end.

        Returns the Deferred of the old port's ``stopListening``.
        """
        old = self.port
        self.description = description
        self.endpoint = self._endpoint(description)
        self.port = port
        self._waitingForPort = defer.succeed(port)
        return defer.maybeDeferred(old.stopListening) if old is not None else defer.succeed(None)

    def number(self):
        """The port listened on; before it is bound, the one in the description."""
        if self.port is not None:
            return self.port.getHost().port
        return described_port(self.description)


# Connections the kernel queues before we accept them. Twisted's default of 50 drops
# the SYNs of a crowd (an NVR restarting, a fan-out server reconnecting hundreds of
# readers) and each dropped client waits for its 1 s SYN retry; the kernel caps this
# at net.core.somaxconn (4096).
BACKLOG = 1024


def with_backlog(description):
    """``description`` (a tcp:/ssl: server endpoint) with ``backlog=`` unless it has one."""
    kind = description.split(":", 1)[0]
    if kind in ("tcp", "ssl", "tcp6") and ":backlog=" not in description:
        return "%s:backlog=%d" % (description, BACKLOG)
    return description


def _tls_endpoint(reactor, description, context_factory):
    """An SSL endpoint from ``ssl:PORT[:interface=...][:backlog=N]`` with our context
    factory."""
    parts = with_backlog(description).split(":")
    kwargs = dict(p.split("=", 1) for p in parts[2:] if "=" in p)
    return endpoints.SSL4ServerEndpoint(reactor, int(parts[1]), context_factory,
                                        backlog=int(kwargs["backlog"]),
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
