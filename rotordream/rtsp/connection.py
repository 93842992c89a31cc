"""One RTSP control connection: requests answered one at a time, in order, with backpressure.

Answering may wait (a password check in the auth thread pool, the first
keyframe), so requests queue per connection and the next starts when the
previous one is answered, in a later reactor turn, so a client pipelining
hundreds of requests takes turns with everyone else. Parsing runs ahead while fewer than
``MAX_WAITING`` requests wait, so interleaved RTCP is noted as it arrives;
with the queue full, parsing stops and the connection's producer (its
socket, or the POST half of an HTTP tunnel) is paused until the queue
drains. Answers wait while the client leaves more than ``MAX_UNREAD`` bytes
unread (beyond what its interleaved RTP may hold). A pipelining client
therefore costs at most ``MAX_WAITING`` parsed requests, one read and a
bounded amount of answers, and never holds up the reactor.
"""

from collections import deque

from twisted.internet import defer, protocol
from twisted.logger import Logger

from rotordream.netutil import unsent_bytes, write_now
from rotordream.rtsp.message import SERVER_NAME, ParseError, Request, RequestParser, Response

log = Logger()

MAX_WAITING = 8          # parsed requests waiting behind the one being answered
MAX_BUFFERED = 1 << 20   # unparsed bytes; only a producer that ignores pausing gets here
MAX_UNREAD = 65536       # bytes of answers the client has not read before no more are made
UNREAD_POLL = 0.1        # seconds between looks at a client that does not read


class RTSPConnection(protocol.Protocol):
    """One RTSP control connection (requests and interleaved frames) of an RTSPServer."""

    client_host = "127.0.0.1"
    protocol = "rtsp"    # the label metrics count its sessions under ("rtsp_http": tunnelled)

    def __init__(self, server):
        self.server = server
        self.parser = RequestParser()
        self.sessions = {}
        self.pinned = None   # "tcp" or "udp" after a ?tcp / ?udp URL
        self.token = None    # a ?token= given on this connection (SETUP URLs drop the query)
        self.waiting = deque()
        self.busy = False    # a request is being answered
        self.paused = False
        self.producer = None  # what to pause instead of the transport (a tunnel's POST half)
        self._closing = False
        self._pumping = False  # handing a request to the server right now
        self._next = None      # the call that takes the next waiting request
        self._after = []       # what waits for the answer being made to be written

    def after_answer(self, fn):
        """Call ``fn()`` once the answer now being made has been written (or dropped)."""
        self._after.append(fn)

    def connectionMade(self):
        peer = self.transport.getPeer()
        self.client_host = getattr(peer, "host", "127.0.0.1")

    @property
    def server_host(self):
        """The local address the client reached (for SDP's c= line)."""
        return self.transport.getHost().host

    def dataReceived(self, data):
        if self._closing:
            return
        self.parser.receive_data(data)
        if self.parser.buffered > MAX_BUFFERED:
            log.info("RTSP client {peer} sent {n} bytes it would not wait for; closing",
                     peer=self.client_host, n=self.parser.buffered)
            self._closing = True
            self.waiting.clear()
            self.transport.loseConnection()
            return
        self._pump()

    def set_producer(self, producer):
        """Pause ``producer`` rather than the transport from now on (None: the transport)."""
        self.producer = producer
        if producer is not None and self.paused:
            producer.pauseProducing()

    # -- the queue ------------------------------------------------------

    def _parse(self):
        while not self._closing and len(self.waiting) < MAX_WAITING:
            try:
                event = self.parser.next_event()
            except ParseError as e:
                log.info("bad RTSP request from {peer}: {e}", peer=self.client_host,
                         e=e.message)
                self.waiting.append(e)   # answered after what came before it, then close
                self._closing = True
                return
            if event is None:
                return
            if isinstance(event, Request):
                self.waiting.append(event)
            else:
                self.server.interleaved_received(self, event)

    def _pump(self):
        self._parse()
        if self.waiting and self._next is None and not self.busy and self.connected and \
                self._unread_answers():
            # The client is not reading its answers: take nothing more until it does.
            self._next = self.server.clock.callLater(UNREAD_POLL, self._take_next)
        if not (self.busy or self._pumping or self._next is not None or not self.waiting
                or not self.connected):
            item = self.waiting.popleft()
            if isinstance(item, ParseError):
                self._refuse(item)
                return
            self.busy = self._pumping = True
            d = defer.maybeDeferred(self.server.handle, self, item)
            d.addCallback(self._send)
            d.addErrback(lambda f: log.failure("RTSP answer failed", f))
            d.addBoth(self._answered)
            self._pumping = False
            self._parse()
        self._flow()

    def _unread_answers(self):
        limit = MAX_UNREAD
        if any(s.transport_name == "tcp" for s in self.sessions.values()):
            limit += self.server.client_queue   # interleaved RTP may legitimately wait too
        return unsent_bytes(self.transport) > limit

    def _answered(self, _):
        self._run_after()  # an answer that failed to be made: what waited for it runs now
        self.busy = False
        if not self._pumping:
            self._pump()
        elif self.waiting and self.connected:
            # Answered at once: take the next request in a later reactor turn, so a
            # pipelining client shares the reactor with everyone else.
            self._next = self.server.clock.callLater(0, self._take_next)

    def _take_next(self):
        self._next = None
        self._pump()

    def _flow(self):
        full = len(self.waiting) >= MAX_WAITING and not self._closing
        if full == self.paused or not self.connected:
            return
        self.paused = full
        producer = self.producer or self.transport
        if full:
            producer.pauseProducing()
        else:
            producer.resumeProducing()

    def _refuse(self, error):
        headers = [("CSeq", error.cseq)] if error.cseq else []
        self._send(Response(error.status, headers + [("Server", SERVER_NAME)],
                            (error.message + "\r\n").encode()))
        self.transport.loseConnection()

    def _send(self, response):
        if response is not None and self.transport is not None and self.connected:
            # Straight to the socket: a crowd joining at once would otherwise wait a
            # reactor turn (behind everyone's catch-up writes) for every answer.
            write_now(self.transport, bytes(response))
        self._run_after()

    def _run_after(self):
        after, self._after = self._after, []
        for fn in after:
            fn()

    def connectionLost(self, reason):
        self.connected = 0
        self.waiting.clear()
        if self._next is not None and self._next.active():
            self._next.cancel()
        self._next = None
        for session in list(self.sessions.values()):
            self.server.teardown(session)


class RTSPFactory(protocol.Factory):
    """Makes connections for the server."""

    def __init__(self, server):
        self.server = server

    def buildProtocol(self, addr):
        p = RTSPConnection(self.server)
        p.factory = self
        return p
