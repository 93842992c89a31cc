"""write_now: straight to the socket when nothing is queued, in order, the rest queued."""

import socket

from rotordream.netutil import unsent_bytes, write_now


class Transport:
    """The attributes of a twisted.internet.tcp connection that write_now reads."""

    TLS = False

    def __init__(self, sock):
        self.socket = sock
        self.connected = True
        self.disconnecting = False
        self.dataBuffer = b""
        self.offset = 0
        self._tempDataLen = 0
        self.written = []

    def write(self, data):
        self.written.append(data)
        self._tempDataLen += len(data)


def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.settimeout(2)
    return a, b


def test_an_idle_connection_gets_the_bytes_at_once():
    a, b = pair()
    t = Transport(a)
    write_now(t, b"hello")
    assert t.written == [] and b.recv(100) == b"hello"


def test_queued_bytes_keep_their_place_in_line():
    a, b = pair()
    t = Transport(a)
    t.write(b"first")
    write_now(t, b"second")
    assert t.written == [b"first", b"second"]
    assert unsent_bytes(t) == 11


def test_what_the_kernel_does_not_take_is_queued():
    a, b = pair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    t = Transport(a)
    data = bytes(range(256)) * 4096          # 1 MiB: far more than the socket buffer
    write_now(t, data)
    assert len(t.written) == 1
    queued = t.written[0]
    assert 0 < len(queued) < len(data) and data.endswith(queued)


def test_tls_closing_and_socketless_transports_use_write():
    a, b = pair()
    for change in ({"TLS": True}, {"disconnecting": True}, {"connected": False},
                   {"socket": None}):
        t = Transport(a)
        for k, v in change.items():
            setattr(t, k, v)
        write_now(t, b"x")
        assert t.written == [b"x"], change
