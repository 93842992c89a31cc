"""A live HLS media playlist in memory: segments made of parts, rendered as Low-Latency
HLS (RFC 8216bis: EXT-X-PART, EXT-X-PRELOAD-HINT, EXT-X-SERVER-CONTROL with blocking
reload) or as a classic playlist of whole segments for older players.

Names: ``init-<v>.mp4``, ``seg-<msn>.m4s`` (a whole segment: its parts' bytes in
order) and ``part-<msn>-<i>.m4s``. A segment starts at an independent part (a
keyframe); the next independent part completes it. Pure: no I/O, no clock.
"""

import datetime
import math
import re
from collections import deque

PART_WINDOW = 3    # segments from the end whose parts are listed (LL-HLS: 3 target durations)
_NAME = re.compile(r"(?:(init)-([0-9]{1,9})\.mp4|(seg)-([0-9]{1,12})\.m4s|"
                   r"(part)-([0-9]{1,12})-([0-9]{1,4})\.m4s)\Z")


class Segment:
    """One media segment: its parts, and the whole bytes once complete."""

    def __init__(self, msn, init, capture_time, discontinuity):
        self.msn = msn
        self.init = init
        self.capture_time = capture_time
        self.discontinuity = discontinuity
        self.parts = []
        self.complete = False
        self._data = None

    @property
    def duration(self):
        """Seconds of media in the parts so far."""
        return sum(p.duration for p in self.parts)

    @property
    def data(self):
        """The segment's bytes (its parts joined, once)."""
        if self._data is None:
            self._data = b"".join(p.data for p in self.parts)
        return self._data


def parse_name(name):
    """``("init", v)``, ``("seg", msn)``, ``("part", msn, i)`` of a file name; None if none."""
    m = _NAME.match(name)
    if not m:
        return None
    if m.group(1):
        return ("init", int(m.group(2)))
    if m.group(3):
        return ("seg", int(m.group(4)))
    return ("part", int(m.group(6)), int(m.group(7)))


class Playlist:
    """The window of segments of one stream; add parts, ask what exists, render."""

    def __init__(self, part_target, window):
        # Parts are cut at the frame that reaches the nominal duration, so the capture
        # clock's jitter makes some a few ms longer (0.2002 s, listed as 0.201); a part
        # may not be longer than PART-TARGET, nor shorter than 85 % of it (RFC 8216bis
        # 4.4.4.9): 10 % of room keeps both true.
        self.part_target = round(part_target * 1.1, 3)
        self.window = window               # complete segments kept
        self.segments = deque()
        self.inits = {}                    # version -> bytes (the ones segments still use)
        self.next_msn = 0
        self.target_duration = 1
        self.ended = False

    # -- building ---------------------------------------------------------------

    def add_init(self, init):
        """A new initialization segment (a packager Init)."""
        self.inits[init.version] = init.data

    def add_part(self, part):
        """Add a packager Part; an independent one begins a new segment."""
        current = self.segments[-1] if self.segments else None
        if current is None or current.complete or (part.independent and current.parts):
            if current is None and not part.independent:
                return
            if current is not None and not current.complete:
                self._complete(current)
            seg = Segment(self.next_msn, part.init, part.capture_time,
                          discontinuity=current is not None and current.init != part.init)
            self.next_msn += 1
            self.segments.append(seg)
            current = seg
        current.parts.append(part)
        if part.ends_segment:
            self._complete(current)
        self._trim()

    def _complete(self, seg):
        seg.complete = True
        # The target only grows: a playlist's EXT-X-TARGETDURATION must not change.
        self.target_duration = max(self.target_duration, int(math.floor(seg.duration + 0.5)),
                                   1)

    def _trim(self):
        while sum(1 for s in self.segments if s.complete) > self.window:
            self.segments.popleft()
        used = {s.init for s in self.segments}
        for version in [v for v in self.inits if v not in used and v != max(self.inits)]:
            del self.inits[version]

    # -- queries ----------------------------------------------------------------

    @property
    def last(self):
        """The newest segment (maybe incomplete), or None."""
        return self.segments[-1] if self.segments else None

    def segment(self, msn):
        """Segment ``msn`` if it is in the window."""
        first = self.segments[0].msn if self.segments else 0
        i = msn - first
        return self.segments[i] if 0 <= i < len(self.segments) else None

    def has(self, msn, part=None):
        """True once a playlist would list segment ``msn`` complete (``part`` None) or its
        part ``part`` (or anything later)."""
        last = self.last
        if last is None:
            return False
        if part is None:
            return msn < last.msn or (msn == last.msn and last.complete)
        return msn < last.msn or (msn == last.msn and part < len(last.parts))

    def too_far(self, msn, part=None):
        """A blocking request so far ahead it should be refused (RFC 8216bis 6.2.5.2)."""
        last = self.last
        return msn > (last.msn if last else -1) + 2

    def may_come(self, msn, index):
        """True if part ``index`` of ``msn`` does not exist yet but is the next to come."""
        last = self.last
        if last is None:
            return msn == self.next_msn and index == 0
        if msn == last.msn and not last.complete:
            return index == len(last.parts)
        return msn == last.msn + 1 and index == 0

    def file(self, name):
        """Bytes of ``name`` (init, segment or part), or None if it is not (or no longer)
        here; ``ready`` False means it may still come."""
        parsed = parse_name(name)
        if parsed is None:
            return None
        if parsed[0] == "init":
            return self.inits.get(parsed[1])
        seg = self.segment(parsed[1])
        if seg is None:
            return None
        if parsed[0] == "seg":
            return seg.data if seg.complete else None
        index = parsed[2]
        return seg.parts[index].data if index < len(seg.parts) else None

    # -- rendering ----------------------------------------------------------------

    def render(self, low_latency=True):
        """The playlist text: LL-HLS, or classic (complete segments only)."""
        segs = list(self.segments)
        lines = ["#EXTM3U", "#EXT-X-VERSION:%d" % (9 if low_latency else 7),
                 "#EXT-X-TARGETDURATION:%d" % self.target_duration]
        if low_latency:
            lines += ["#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=%.3f"
                      % (3 * self.part_target),
                      "#EXT-X-PART-INF:PART-TARGET=%.3f" % self.part_target]
        else:
            segs = [s for s in segs if s.complete]
        lines.append("#EXT-X-MEDIA-SEQUENCE:%d" % (segs[0].msn if segs else self.next_msn))
        with_parts = {s.msn for s in segs[-PART_WINDOW:]} if low_latency else set()
        init = None
        for seg in segs:
            if seg.init != init:
                if init is not None:
                    lines.append("#EXT-X-DISCONTINUITY")
                lines.append('#EXT-X-MAP:URI="init-%d.mp4"' % seg.init)
                init = seg.init
            lines.append("#EXT-X-PROGRAM-DATE-TIME:%s" % _iso(seg.capture_time))
            ends = _millis(seg.parts)
            if seg.msn in with_parts:
                for i, part in enumerate(seg.parts):
                    lines.append('#EXT-X-PART:DURATION=%s,URI="part-%d-%d.m4s"%s'
                                 % (_seconds(ends[i + 1] - ends[i]), seg.msn, i,
                                    ",INDEPENDENT=YES" if part.independent else ""))
            if seg.complete:
                lines += ["#EXTINF:%s," % _seconds(ends[-1]), "seg-%d.m4s" % seg.msn]
        if low_latency and segs:
            last = segs[-1]
            msn, index = (last.msn + 1, 0) if last.complete else (last.msn, len(last.parts))
            lines.append('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-%d-%d.m4s"' % (msn, index))
        return "\n".join(lines) + "\n"


def _millis(parts):
    """Where each part ends, in whole milliseconds from its segment's start, rounded down.

    Players place a part at the sum of the durations before it. Durations rounded one by
    one can add up to more than the media holds (0.200+0.200+0.203+0.221+0.177 = 1.001 s
    listed for 0.99997 s of frames): hls.js 1.7 then finds its buffer short of the last
    part's listed end, loads the segment again from its independent part, over and over
    until the next segment is listed, and stalls meanwhile (it then played a segment
    behind). Sums rounded down never pass the media's end, and the parts add up to the
    segment's EXTINF exactly.
    """
    ends, total = [0], 0.0
    for part in parts:
        total += part.duration
        ends.append(int(math.floor(total * 1000 + 1e-6)))
    return ends


def _seconds(millis):
    return "%d.%03d" % divmod(millis, 1000)


def _iso(seconds):
    when = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
