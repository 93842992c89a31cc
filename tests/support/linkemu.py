"""A userspace link emulator: rate, queue, one-way delay and random loss between two namespaces.

The kernel here has no ``netem`` (nor ``gact``, ``fq`` or ``matchall``), so a
link with a fixed delay and random loss is made in userspace: a TUN device in
each of two network namespaces and a forwarder that reads every IP packet from
one device and writes it into the other after the link's rules::

    camera namespace  10.201.0.1 tun ==[forwarder]== tun 10.201.0.2  viewer namespace

Each direction is a :class:`Direction`: a token bucket of ``rate`` bit/s
(``burst`` bytes deep) in front of a FIFO bounded to ``queue`` bytes (a packet
that does not fit is dropped, as a router's tail drop), then ``delay`` seconds
of propagation, and random loss of ``loss`` (a seeded generator, so a run can
be repeated). The rules are pure given the clock (``clock.callLater``), tested
on ``task.Clock``; :class:`Forwarder` puts them on two TUN file descriptors
with a Twisted reactor: no sleeps, the only waiting is the emulated time
itself. Settings change at run time (:meth:`Direction.configure`); packets
already queued keep the times they were given.

Run as a script (``python linkemu.py CAMERA_NS_PID``) in the viewer's namespace:
it makes both devices (the camera's by entering that namespace with ``setns``,
which Python 3.11's ``os`` lacks), gives them addresses, prints ``ready``, then
takes one JSON object per line on stdin (``{"rate": 400000, "delay": 0.05,
"loss": 0.01, "queue": 12500}``, optionally ``"direction": "down"|"up"``) and
answers each with the counters of both directions.
"""

import ctypes
import fcntl
import json
import os
import random
import struct
import subprocess
import sys

CAMERA_ADDRESS, VIEWER_ADDRESS = "10.201.0.1", "10.201.0.2"
CAMERA_DEVICE, VIEWER_DEVICE = "cam0", "view0"

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
CLONE_NEWNET = 0x40000000


class Direction:
    """One direction of the link; ``deliver(packet)`` is called when a packet arrives.

    ``rate`` None: no rate limit (and no queueing). Counters: ``sent`` (offered),
    ``delivered``, ``lost`` (random loss), ``dropped`` (queue full), ``max_queue``.
    """

    def __init__(self, clock, deliver, rate=None, delay=0.0, loss=0.0, queue=64_000,
                 burst=3_000, seed=1):
        self.clock = clock
        self.deliver = deliver
        self.random = random.Random(seed)
        self.rate = self.delay = self.loss = self.queue = self.burst = None
        self.configure(rate=rate, delay=delay, loss=loss, queue=queue, burst=burst)
        self._finish = None      # when the bucket's virtual finish time is (see send)
        self._leaving = []       # (leave time, size) of queued packets, oldest first
        self.sent = self.delivered = self.lost = self.dropped = 0
        self.max_queue = 0

    def configure(self, rate=..., delay=..., loss=..., queue=..., burst=...):
        """Change any of the settings (the others stay)."""
        for name, value in (("rate", rate), ("delay", delay), ("loss", loss),
                            ("queue", queue), ("burst", burst)):
            if value is not ...:
                setattr(self, name, value)

    def queued(self, now):
        """Bytes waiting for the bucket at ``now``."""
        while self._leaving and self._leaving[0][0] <= now:
            self._leaving.pop(0)
        return sum(size for _, size in self._leaving)

    def send(self, packet):
        """Offer one packet to the link at the clock's time."""
        now = self.clock.seconds()
        self.sent += 1
        size = len(packet)
        leave = now
        if self.rate:
            backlog = self.queued(now)
            if backlog + size > self.queue:
                self.dropped += 1
                return
            # A token bucket as virtual time: the bucket is full when _finish <= now;
            # each packet moves _finish on by its transmission time and may leave once
            # the bucket holds its bytes again (burst bytes ahead of _finish).
            start = now if self._finish is None else max(self._finish, now)
            self._finish = start + size * 8.0 / self.rate
            leave = max(now, self._finish - self.burst * 8.0 / self.rate)
            if leave > now:
                self._leaving.append((leave, size))
                self.max_queue = max(self.max_queue, backlog + size)
        # Lost on the wire: it used its share of the rate, it never arrives.
        if self.loss and self.random.random() < self.loss:
            self.lost += 1
            return
        self.clock.callLater(leave - now + self.delay, self._arrive, packet)

    def _arrive(self, packet):
        self.delivered += 1
        self.deliver(packet)

    def counters(self):
        """The settings and counters, for a report."""
        return {"rate": self.rate, "delay": self.delay, "loss": self.loss, "queue": self.queue,
                "sent": self.sent, "delivered": self.delivered, "lost": self.lost,
                "dropped": self.dropped, "max_queue": self.max_queue}


class Link:
    """Both directions: ``down`` from the camera to the viewer, ``up`` back."""

    def __init__(self, clock, to_viewer, to_camera, seed=1):
        self.down = Direction(clock, to_viewer, seed=seed)
        self.up = Direction(clock, to_camera, seed=seed + 1)

    def configure(self, direction=None, **settings):
        """Change the settings of ``direction`` ('down', 'up') or, None, of both."""
        for name in ([direction] if direction else ["down", "up"]):
            getattr(self, name).configure(**settings)

    def counters(self):
        """Counters of both directions."""
        return {"down": self.down.counters(), "up": self.up.counters()}


# -- the devices ----------------------------------------------------------------

def open_tun(name):
    """A file descriptor of a new TUN device ``name`` (IP packets, no header) in the
    calling thread's network namespace."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def setns(fd):
    """Move the calling thread into the network namespace open as ``fd``."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "setns: %s" % os.strerror(err))


def _ip(*args):
    subprocess.run(["ip"] + list(args), check=True, capture_output=True)


def make_devices(camera_ns_pid):
    """(camera fd, viewer fd): a TUN device with its address in each namespace, up.

    The viewer's is made here; the camera's in the namespace of ``camera_ns_pid``,
    entered and left again with setns (the ``ip`` commands run in between inherit it).
    """
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    other = os.open("/proc/%d/ns/net" % camera_ns_pid, os.O_RDONLY)
    try:
        viewer = open_tun(VIEWER_DEVICE)
        _ip("addr", "add", VIEWER_ADDRESS, "peer", CAMERA_ADDRESS, "dev", VIEWER_DEVICE)
        _ip("link", "set", VIEWER_DEVICE, "up")
        setns(other)
        try:
            camera = open_tun(CAMERA_DEVICE)
            _ip("addr", "add", CAMERA_ADDRESS, "peer", VIEWER_ADDRESS, "dev", CAMERA_DEVICE)
            _ip("link", "set", CAMERA_DEVICE, "up")
            _ip("link", "set", "lo", "up")
        finally:
            setns(home)
    finally:
        os.close(home)
        os.close(other)
    return camera, viewer


class _Reader:
    """A TUN descriptor as a Twisted reader: every packet read goes to ``received``."""

    def __init__(self, fd, received):
        self.fd = fd
        self.received = received

    def fileno(self):
        return self.fd

    def doRead(self):
        while True:
            try:
                packet = os.read(self.fd, 65535)
            except BlockingIOError:
                return
            if not packet:
                return
            self.received(packet)

    def connectionLost(self, reason):
        pass

    def logPrefix(self):
        return "tun"


def _write(fd):
    def write(packet):
        try:
            os.write(fd, packet)
        except OSError:
            pass   # the device went away with its namespace: the run is ending
    return write


class Forwarder:
    """The link between two TUN descriptors on ``reactor``."""

    def __init__(self, reactor, camera_fd, viewer_fd, seed=1):
        self.link = Link(reactor, _write(viewer_fd), _write(camera_fd), seed)
        self.readers = [_Reader(camera_fd, self.link.down.send),
                        _Reader(viewer_fd, self.link.up.send)]
        for reader in self.readers:
            reactor.addReader(reader)


def main(camera_ns_pid):
    """The script: devices, forwarder, settings from stdin (see the module docstring)."""
    from twisted.internet import reactor, stdio
    from twisted.protocols.basic import LineReceiver

    camera, viewer = make_devices(camera_ns_pid)
    forwarder = Forwarder(reactor, camera, viewer)

    class Control(LineReceiver):
        delimiter = b"\n"

        def lineReceived(self, line):
            settings = json.loads(line)
            if settings:
                forwarder.link.configure(**settings)
            self.sendLine(json.dumps(forwarder.link.counters()).encode())

        def connectionLost(self, reason):
            if reactor.running:
                reactor.stop()

    def ready():
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        stdio.StandardIO(Control())
    reactor.callWhenRunning(ready)
    reactor.run()


if __name__ == "__main__":
    main(int(sys.argv[1]))
