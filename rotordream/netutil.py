"""Send-side back-pressure helpers shared by the WebSocket and RTSP servers."""

import socket


def unsent_bytes(transport):
    """Bytes a Twisted TCP transport holds that the peer has not taken yet."""
    t = getattr(transport, "transport", None) or transport  # TLS wraps the TCP transport
    size = len(getattr(t, "dataBuffer", b"")) - getattr(t, "offset", 0)
    return size + getattr(t, "_tempDataLen", 0)


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
