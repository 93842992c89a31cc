"""MP4 files without the reactor: write fragmented MP4 from access units, read them back.

Everything here blocks on file I/O and runs in a worker thread. The writer
remuxes (never encodes): PyAV's mp4 muxer with ``frag_keyframe+empty_moov``
writes a self-contained fragment per GOP, so a crash or ``kill -9`` leaves a
file that plays up to its last complete fragment.
"""

import fractions
import os
import struct

import av

from rotordream.fsutil import fsync_directory

TIME_BASE = fractions.Fraction(1, 90000)
MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"


class SegmentWriter:
    """One MP4 file being written: ``write(annexb, pts, keyframe, duration)`` then ``close()``.

    ``pts`` and ``duration`` are 90 kHz ticks from the start of the file.
    Storage errors (ENOSPC, EIO) surface as OSError from ``write``/``close``.
    """

    def __init__(self, path, width, height, fps, file=None, options=None):
        """``file`` (instead of ``path``): a writable object that gets the bytes, not made
        durable (in-memory packaging); ``options`` are extra muxer options."""
        # Unbuffered: what the muxer hands over at a fragment's end reaches the
        # kernel at once, so a killed process loses nothing already fragmented.
        self.file = open(path, "xb", buffering=0) if file is None else file
        self.durable = file is None
        try:
            self.out = av.open(self.file, "w", format="mp4",
                               options=dict({"movflags": MOVFLAGS, "flush_packets": "1"},
                                            **(options or {})))
            self.stream = self.out.add_mux_stream("h264", rate=max(1, round(fps)),
                                                  width=width, height=height)
            self.stream.time_base = TIME_BASE
        except BaseException:
            self.file.close()
            raise
        self.closed = False
        self.synced_fragments = 0

    def write(self, annexb, pts, keyframe, duration):
        """Mux one access unit (Annex B bytes)."""
        packet = av.Packet(annexb)
        packet.stream = self.stream
        packet.time_base = TIME_BASE
        packet.pts = packet.dts = pts
        packet.duration = duration
        packet.is_keyframe = keyframe
        self.out.mux(packet)
        if keyframe and self.durable:
            self._sync()

    def _sync(self):
        # A keyframe has just closed the previous fragment: make it durable, so a
        # power cut (not only a killed process) loses at most the fragment being
        # written. The first time, the directory too, so the file itself survives.
        os.fsync(self.file.fileno())
        if self.synced_fragments == 0:
            fsync_directory(os.path.dirname(os.path.abspath(self.file.name)))
        self.synced_fragments += 1

    def close(self):
        """Write the last fragment and close the file (safe to call twice)."""
        if self.closed:
            return
        self.closed = True
        try:
            self.out.close()
            if self.durable:
                os.fsync(self.file.fileno())
        finally:
            self.file.close()


def trim_torn_tail(path):
    """Cut a fragmented MP4 after its last complete ``moof``+``mdat`` pair; return bytes cut.

    A crash or a full disk can leave half a fragment at the end: players
    stop there with a decoding error. Top-level boxes are walked by their
    sizes; nothing inside them is rewritten.
    """
    size = os.path.getsize(path)
    good = pos = 0
    pending_moof = False
    with open(path, "rb") as f:
        while pos + 8 <= size:
            f.seek(pos)
            head = f.read(16)
            length, kind = struct.unpack_from("!I4s", head)
            if length == 1 and len(head) >= 16:
                length = struct.unpack_from("!Q", head, 8)[0]
            elif length == 0:
                length = size - pos
            if length < 8 or pos + length > size:
                break
            pos += length
            if kind == b"moof":
                pending_moof = True
                continue
            if kind == b"mdat" or not pending_moof:
                good = pos
            pending_moof = False
    if good < size:
        os.truncate(path, good)
    return size - good


def parse_avcc(extradata):
    """(sps, pps) from an avcC box payload (ISO 14496-15), or (b"", b"")."""
    try:
        if not extradata or extradata[0] != 1:
            return b"", b""
        n_sps = extradata[5] & 0x1F
        pos = 6
        sps = pps = b""
        for i in range(n_sps):
            (size,) = struct.unpack_from("!H", extradata, pos)
            if i == 0:
                sps = bytes(extradata[pos + 2:pos + 2 + size])
            pos += 2 + size
        n_pps = extradata[pos]
        pos += 1
        if n_pps:
            (size,) = struct.unpack_from("!H", extradata, pos)
            pps = bytes(extradata[pos + 2:pos + 2 + size])
        return sps, pps
    except (IndexError, struct.error):
        return b"", b""


def split_length_prefixed(data, size=4):
    """NAL units of an MP4 sample (big-endian length prefixes) as a tuple."""
    nals = []
    pos = 0
    end = len(data)
    while pos + size <= end:
        n = int.from_bytes(data[pos:pos + size], "big")
        pos += size
        if n == 0 or pos + n > end:
            break
        nals.append(bytes(data[pos:pos + n]))
        pos += n
    return tuple(nals)


def probe(path):
    """What a finished or half-written MP4 holds: a dict, or None if it has no video.

    Reads every packet header (never decodes), so it also measures files a
    crash cut short, whose headers say nothing of their length.
    """
    try:
        container = av.open(path)
    except (av.FFmpegError, OSError, ValueError):
        return None
    try:
        if not container.streams.video:
            return None
        stream = container.streams.video[0]
        first = last = None
        frames = 0
        last_duration = 0
        try:
            for packet in container.demux(stream):
                if packet.pts is None or not packet.size:
                    continue
                t = packet.pts * packet.time_base
                first = t if first is None else min(first, t)
                last = t if last is None else max(last, t)
                last_duration = (packet.duration or 0) * packet.time_base
                frames += 1
        except (av.FFmpegError, OSError):
            pass  # a torn last fragment: what came before it counts
        if not frames:
            return None
        cc = stream.codec_context
        return {"duration": round(float(last - first + last_duration), 3), "frames": frames,
                "width": cc.width, "height": cc.height,
                "fps": round(float(stream.average_rate or stream.guessed_rate or 0), 3)}
    finally:
        container.close()


class Reader:
    """Access units of an MP4 file, from a keyframe at or before a time, for playback."""

    def __init__(self, path):
        self.container = av.open(path)
        if not self.container.streams.video:
            self.container.close()
            raise ValueError("no video in %s" % path)
        self.stream = self.container.streams.video[0]
        cc = self.stream.codec_context
        self.sps, self.pps = parse_avcc(cc.extradata)
        self.width, self.height = cc.width, cc.height
        self.fps = float(self.stream.average_rate or self.stream.guessed_rate or 30)
        self._packets = None

    def seek(self, seconds):
        """Position at the keyframe at or before ``seconds``."""
        if seconds > 0:
            self.container.seek(int(seconds / self.stream.time_base), stream=self.stream,
                                backward=True, any_frame=False)
        else:
            self.container.seek(0, stream=self.stream, backward=True, any_frame=False)
        self._packets = self.container.demux(self.stream)

    def read(self, seconds):
        """Up to ``seconds`` of access units: list of (pts 90 kHz, keyframe, nals); [] at the end."""
        if self._packets is None:
            self.seek(0)
        out = []
        start = None
        try:
            for packet in self._packets:
                if packet.pts is None or not packet.size:
                    continue
                pts = int(packet.pts * packet.time_base * 90000)
                out.append((pts, packet.is_keyframe, split_length_prefixed(bytes(packet))))
                if start is None:
                    start = pts
                if pts - start >= seconds * 90000:
                    break
        except (av.FFmpegError, OSError):
            pass  # the torn end of a file still being written or cut by a crash
        return out

    def close(self):
        """Release the file."""
        self.container.close()
