"""Per-packet cost of UDP sends: one sendto per packet, GSO runs, and sendmmsg (ctypes).

A receiver process drains a loopback socket (8 MB receive buffer) and counts
what arrives; the sender sends RTP-sized datagrams (1412 bytes: 1400 of
payload, as ``[rtsp] mtu``) for ``--seconds`` per mode and reports packets/s
and the sender's own CPU time per packet (``time.process_time``, which
includes the kernel's work in the system call: on loopback that is the
delivery to the receiving socket too). Modes:

- ``sendto``: one ``sendto`` per packet (what UdpTarget did before GSO);
- ``gso8``, ``gso32``: one ``sendmsg`` with ``UDP_SEGMENT`` per run of 8/32;
- ``unit``: rotordream.rtp.udp.send of a 1080p P frame at 4 Mbit/s (12 packets
  of 1412 bytes and one of 600: one GSO run), the runs joined once as for many viewers;
- ``mmsg1``: ctypes ``sendmmsg`` of 50 one-packet messages per call (the
  many-viewer, one-packet case; one destination stands for 50).

    .venv/bin/python bench/udp_send.py --seconds 2 --rounds 3
"""

import argparse
import ctypes
import ctypes.util
import multiprocessing
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rotordream.rtp import udp  # noqa: E402

SIZE = 1412


def receiver(port_queue, stop, counts):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    port_queue.put(sock.getsockname()[1])
    buf = bytearray(65536)
    n = 0
    while not stop.is_set():
        try:
            sock.recv_into(buf)
            n += 1
        except socket.timeout:
            counts.put(n)
            n = 0
    counts.put(n)


class Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class Msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.POINTER(Iovec)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class Mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", Msghdr), ("len", ctypes.c_uint)]


def mmsg_sender(sock, addr, payload, count):
    """A function that sends ``count`` copies of ``payload`` to ``addr`` in one sendmmsg."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    sa = struct.pack("=HH4s8x", socket.AF_INET, socket.htons(addr[1]),
                     socket.inet_aton(addr[0]))
    name = ctypes.create_string_buffer(sa, len(sa))
    data = ctypes.create_string_buffer(payload, len(payload))
    iovs = (Iovec * count)()
    msgs = (Mmsghdr * count)()
    for i in range(count):
        iovs[i].base = ctypes.cast(data, ctypes.c_void_p)
        iovs[i].len = len(payload)
        msgs[i].hdr.name = ctypes.cast(name, ctypes.c_void_p)
        msgs[i].hdr.namelen = len(sa)
        msgs[i].hdr.iov = ctypes.pointer(iovs[i])
        msgs[i].hdr.iovlen = 1
    fd = sock.fileno()
    sendmmsg = libc.sendmmsg

    def send():
        return sendmmsg(fd, msgs, count, 0)
    return send


def run_mode(mode, addr, seconds):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    packet = b"\x80" * SIZE
    if mode == "sendto":
        per_call = 1

        def step():
            sock.sendto(packet, addr)
    elif mode.startswith("gso"):
        per_call = int(mode[3:])
        buf = packet * per_call
        cmsg = [(udp.SOL_UDP, udp.UDP_SEGMENT, struct.pack("=H", SIZE))]

        def step():
            sock.sendmsg([buf], cmsg, 0, addr)
    elif mode == "unit":
        packets = udp.Packets([packet] * 12 + [b"\x80" * 600])
        per_call = len(packets)

        def step():
            udp.send(sock, packets, addr)
    elif mode == "mmsg1":
        per_call = 50
        step = mmsg_sender(sock, addr, packet, per_call)
    else:
        raise SystemExit("unknown mode %s" % mode)
    sent = 0
    t0, c0 = time.monotonic(), time.process_time()
    end = t0 + seconds
    while time.monotonic() < end:
        for _ in range(20):
            step()
        sent += 20 * per_call
    wall, cpu = time.monotonic() - t0, time.process_time() - c0
    sock.close()
    return sent, wall, cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--modes", nargs="+", default=["sendto", "gso8", "gso32", "unit", "mmsg1"])
    args = ap.parse_args()
    ports, counts = multiprocessing.Queue(), multiprocessing.Queue()
    stop = multiprocessing.Event()
    proc = multiprocessing.Process(target=receiver, args=(ports, stop, counts), daemon=True)
    proc.start()
    addr = ("127.0.0.1", ports.get(timeout=10))
    print("mode     packets/s   us CPU/packet   received")
    try:
        for r in range(args.rounds):
            for mode in args.modes:
                while not counts.empty():
                    counts.get()
                sent, wall, cpu = run_mode(mode, addr, args.seconds)
                got = 0
                deadline = time.monotonic() + 2
                while time.monotonic() < deadline:  # the receiver reports once it is idle
                    try:
                        got += counts.get(timeout=0.5)
                    except Exception:
                        break
                print("%-7s %10.0f %14.2f %9.0f%%   (round %d)"
                      % (mode, sent / wall, cpu / sent * 1e6, 100.0 * got / sent, r + 1),
                      flush=True)
    finally:
        stop.set()
        proc.join(5)


if __name__ == "__main__":
    main()
