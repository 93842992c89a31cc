"""Access units into CMAF (fragmented MP4) pieces for HLS, in memory, never re-encoded.

The recorder's remuxer (:class:`rotordream.recording.mp4.SegmentWriter`) writes
into a :class:`_Sink` instead of a file, with fragments cut at each keyframe
and every ``part_seconds``: each ``moof``+``mdat`` pair it emits is one HLS
partial segment. A fragment leaves the muxer when the unit that starts the
next one arrives, so the units muxed before that one are exactly its content
(their pts give its duration; a keyframe first makes it independent).
No Twisted here: :meth:`Packager.add` returns what it made.
"""

import struct
from dataclasses import dataclass

from rotordream.recording.mp4 import SegmentWriter

CLOCK = 90000


@dataclass
class Part:
    """One partial segment: ``moof``+``mdat`` bytes of units from ``start_pts``."""

    data: bytes
    duration: float           # seconds
    independent: bool         # starts with a keyframe
    capture_time: float       # wall time of its first frame
    init: int                 # the init segment version it needs
    ends_segment: bool = False  # the unit after it is a keyframe: its segment is complete


@dataclass
class Init:
    """A new initialization segment (``ftyp``+``moov``): at start and after the encoder
    was re-opened (new size or rate)."""

    data: bytes
    version: int


class _Sink:
    """A write-only file object collecting what the muxer writes."""

    def __init__(self):
        self.buffer = bytearray()

    def write(self, data):
        self.buffer += data
        return len(data)

    def writable(self):
        return True

    def seekable(self):
        return False

    def readable(self):
        return False

    def flush(self):
        pass

    def close(self):
        pass

    @property
    def closed(self):
        return False


def split_boxes(buffer):
    """Complete top-level boxes at the start of ``buffer``: ([(type, bytes)], bytes used)."""
    boxes, pos = [], 0
    while pos + 8 <= len(buffer):
        size, kind = struct.unpack(">I4s", buffer[pos:pos + 8])
        if size < 8 or pos + size > len(buffer):
            break
        boxes.append((kind.decode("latin-1"), bytes(buffer[pos:pos + size])))
        pos += size
    return boxes, pos


class Packager:
    """One stream's units in, :class:`Init` and :class:`Part` objects out."""

    def __init__(self, part_seconds):
        self.part_seconds = part_seconds
        self.version = 0
        self._writer = None
        self._sink = None
        self._generation = None
        self._pending = []       # units muxed, not yet in an emitted fragment
        self._boxes = []         # complete boxes not yet grouped
        self._init = None

    def add(self, au):
        """Mux one access unit; return the Init/Part objects that became complete."""
        out = []
        if self._writer is None or au.generation != self._generation:
            if self._writer is None and not au.keyframe:
                return out     # a stream starts at a keyframe
            out += self.close()
            if not au.keyframe:
                return out
            self._open(au)
        ticks = max(1, int(round(CLOCK / (au.fps or 30))))
        self._writer.write(au.annexb, au.pts - self._offset, au.keyframe, ticks)
        out += self._collect(au.pts, au.keyframe)
        self._pending.append(au)
        return out

    def _open(self, au):
        self._sink = _Sink()
        # Cut a little before the part target so jitter in the capture clock does not push a
        # whole frame more into a part (ffmpeg cuts once a fragment reaches this duration).
        frame = 1.0 / (au.fps or 30)
        cut = max(frame, self.part_seconds - frame / 2)
        self._writer = SegmentWriter(None, au.width, au.height, au.fps, file=self._sink,
                                     options={"frag_duration": str(int(cut * 1e6))})
        self._generation = au.generation
        self._offset = au.pts
        self._pending = []
        self._boxes = []
        self._init = None
        self.version += 1

    def _collect(self, next_pts, next_keyframe=True):
        boxes, used = split_boxes(self._sink.buffer)
        del self._sink.buffer[:used]
        self._boxes += boxes
        out = []
        if self._init is None:
            kinds = [k for k, _ in self._boxes]
            if "moov" not in kinds:
                return out
            n = kinds.index("moov") + 1      # ftyp + moov
            self._init = b"".join(b for _, b in self._boxes[:n])
            del self._boxes[:n]
            out.append(Init(self._init, self.version))
        while self._boxes:
            if self._boxes[0][0] != "moof":
                del self._boxes[0]           # e.g. mfra at the end
                continue
            if len(self._boxes) < 2:
                break
            (_, moof), (_, mdat) = self._boxes[0], self._boxes[1]
            del self._boxes[:2]
            units, self._pending = self._pending, []
            if units:
                out.append(Part(moof + mdat, (next_pts - units[0].pts) / CLOCK,
                                units[0].keyframe, units[0].capture_time, self.version,
                                next_keyframe))
        return out

    def close(self):
        """End the current muxer (its last fragment is returned as a Part)."""
        if self._writer is None:
            return []
        pending = self._pending
        last = pending[-1] if pending else None
        try:
            self._writer.close()
        except Exception:
            pass
        out = []
        if last is not None:
            ticks = max(1, int(round(CLOCK / (last.fps or 30))))
            out = self._collect(last.pts + ticks)
        self._writer = None
        return out
