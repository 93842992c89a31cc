"""write_now: straight to the socket when nothing is queued, in order, the rest queued."""

import socket

import pytest
from twisted.internet import tcp

from rotordream.netutil import unsent_bytes, write_now


class Transport(tcp.Connection):
    """A real twisted TCP connection on one end of a socketpair, its writes recorded."""

    def __init__(self, sock):
        super().__init__(sock, protocol=None)
        self.connected = True  # as tcp.Server sets it when accepted
        self.written = []

    def write(self, data):
        self.written.append(data)
        self._tempDataLen += len(data)


class Wrapper:
    """What a TLS wrapper looks like from outside: it forwards ``socket`` and ``TLS``."""

    def __init__(self, inner):
        self.inner = inner
        self.written = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def write(self, data):
        self.written.append(data)


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


def test_tls_closing_and_wrapped_transports_use_write():
    a, b = pair()
    for change in ({"TLS": True}, {"disconnecting": True}, {"connected": False}):
        t = Transport(a)
        for k, v in change.items():
            setattr(t, k, v)
        write_now(t, b"x")
        assert t.written == [b"x"], change
    wrapped = Wrapper(Transport(a))
    assert wrapped.socket is a and wrapped.TLS is False
    write_now(wrapped, b"secret")              # must never bypass the encryption
    assert wrapped.written == [b"secret"]
    b.setblocking(False)
    with pytest.raises(BlockingIOError):
        b.recv(100)


def test_a_list_goes_out_in_one_piece_and_in_order():
    a, b = pair()
    t = Transport(a)
    write_now(t, [b"one ", b"two ", b"three"])
    assert t.written == [] and b.recv(100) == b"one two three"


def test_what_the_kernel_does_not_take_of_a_list_is_queued_in_order():
    a, b = pair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    t = Transport(a)
    chunks = [bytes([i]) * 65536 for i in range(16)]     # 1 MiB in 16 pieces
    write_now(t, chunks)
    assert len(t.written) == 1
    queued = t.written[0]
    assert 0 < len(queued) < len(chunks) * 65536 and b"".join(chunks).endswith(queued)


def test_a_list_behind_queued_bytes_is_queued_whole():
    a, b = pair()
    t = Transport(a)
    t.write(b"first")
    write_now(t, [b"second", b"third"])
    assert t.written == [b"first", b"secondthird"]


def test_more_pieces_than_one_sendmsg_takes_still_all_arrive():
    a, b = pair()
    t = Transport(a)
    chunks = [b"%05d" % i for i in range(3000)]        # IOV_MAX is 1024
    write_now(t, chunks)
    got = b""
    while len(got) < 15000:
        got += b.recv(65536)
    assert t.written == [] and got == b"".join(chunks)
