"""Send-side back-pressure helpers shared by the WebSocket and RTSP servers."""

import socket

from twisted.internet import tcp


def unsent_bytes(transport):
    """Bytes a Twisted TCP transport holds that the peer has not taken yet."""
    t = getattr(transport, "transport", None) or transport  # TLS wraps the TCP transport
    size = len(getattr(t, "dataBuffer", b"")) - getattr(t, "offset", 0)
    return size + getattr(t, "_tempDataLen", 0)


def write_now(transport, data):
    """Write ``data`` (bytes, or a list of bytes to send as one) to a TCP transport,
    straight to the socket when nothing is queued.

    Twisted's write only queues and asks the reactor to watch the socket: two
    epoll changes and a reactor turn per write, which is most of what a
    broadcast to hundreds of clients costs. When the transport's queue is
    empty the bytes can go out at once, in order (a list in one ``sendmsg``);
    what the kernel does not take is queued as usual. TLS and other transports
    just get ``write``.
    """
    chunks = data if isinstance(data, list) else None
    # Only a plain TCP connection: a TLS wrapper forwards ``socket`` and ``TLS`` from the
    # connection beneath it, and bytes sent there would bypass the encryption.
    if isinstance(transport, tcp.Connection) and not transport.TLS and transport.connected \
            and not transport.disconnecting and not unsent_bytes(transport):
        sock = transport.socket
        try:
            sent = sock.send(data) if chunks is None else _send_all(sock, chunks)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            sent = 0  # a dead connection: Twisted's own write path notices and closes it
        if chunks is None:
            if sent == len(data):
                return
            data = data[sent:]
        else:
            chunks = _after(chunks, sent)
            if not chunks:
                return
    transport.write(data if chunks is None else b"".join(chunks))


_IOV_MAX = 1024  # buffers one sendmsg takes (Linux's UIO_MAXIOV)


def _send_all(sock, chunks):
    """Send ``chunks`` with as few ``sendmsg`` calls as the kernel allows; bytes sent."""
    sent = 0
    for i in range(0, len(chunks), _IOV_MAX):
        batch = chunks[i:i + _IOV_MAX]
        try:
            n = sock.sendmsg(batch)
        except (BlockingIOError, InterruptedError):
            return sent
        sent += n
        if n < sum(len(c) for c in batch):
            break
    return sent


def _after(chunks, sent):
    """What is left of ``chunks`` once their first ``sent`` bytes went out."""
    for i, chunk in enumerate(chunks):
        if sent < len(chunk):
            return ([chunk[sent:]] if sent else [chunk]) + chunks[i + 1:]
        sent -= len(chunk)
    return []


def bound_send_buffer(transport, size):
    """Cap the kernel send buffer of ``transport``'s socket at ``size`` bytes.

    Linux autotuning would otherwise let one stalled client pin megabytes in the
    kernel before our own queue limit ever sees a byte.
    """
    handle = getattr(transport, "getHandle", lambda: None)()
    if handle is None:
        return
    try:
        handle.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
    except (OSError, AttributeError):
        pass
