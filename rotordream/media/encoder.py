"""H.264 encoding with libx264 through PyAV, tuned for live streaming.

ultrafast/zerolatency (no lookahead, no B-frames: Constrained Baseline by
default), fixed keyframe interval, SPS/PPS repeated before every IDR so any
consumer can start at any keyframe, average bitrate control.
"""

from dataclasses import dataclass
from fractions import Fraction

import av
from av.video.frame import PictureType

from rotordream.h264 import parameter_sets, split_annexb

TIME_BASE = Fraction(1, 90000)


@dataclass(frozen=True)
class EncoderSettings:
    """What an encoder is opened with; a change of any field re-opens it."""

    width: int
    height: int
    fps: int
    bitrate: int        # kbit/s
    gop: int            # frames between keyframes
    profile: str = "baseline"
    threads: int = 1


@dataclass
class EncodedUnit:
    """One encoded picture: NAL units, whether it is an IDR, and its 90 kHz pts."""

    nals: list
    keyframe: bool
    pts: int


# The ultrafast preset leaves out every tool beyond Constrained Baseline, and x264 then
# writes the lowest profile the stream fits whatever "profile" asks: these tools make a
# main or high profile stream what it says (CABAC; and the 8x8 transform for high).
PROFILE_TOOLS = {"main": ":cabac=1", "high": ":cabac=1:8x8dct=1"}


class H264Encoder:
    """One libx264 encoder; ``encode(frame, pts)`` returns the units it produced."""

    def __init__(self, settings):
        self.settings = s = settings
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height = s.width, s.height
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = TIME_BASE
        ctx.framerate = Fraction(s.fps, 1)
        ctx.bit_rate = s.bitrate * 1000
        ctx.gop_size = s.gop
        ctx.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "profile": s.profile,
            "threads": str(s.threads),
            # repeat-headers: SPS/PPS in-band before every IDR; scenecut off
            # keeps keyframes on a fixed grid that consumers can rely on.
            "x264-params": "repeat-headers=1:keyint=%d:min-keyint=%d:scenecut=0:"
                           "vbv-maxrate=%d:vbv-bufsize=%d%s"
                           % (s.gop, s.gop, s.bitrate * 2, s.bitrate * 2,
                              PROFILE_TOOLS.get(s.profile, "")),
        }
        ctx.open()
        self._ctx = ctx
        self.sps = b""
        self.pps = b""
        self._last_pts = -1

    def encode(self, frame, pts, keyframe=False):
        """Encode ``frame`` at ``pts`` (90 kHz); return a list of :class:`EncodedUnit`.

        ``keyframe``: make this picture an IDR (with SPS/PPS) whatever the GOP says;
        x264 then starts its keyframe interval afresh from it.
        """
        if pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        frame.pts = pts
        frame.time_base = TIME_BASE
        # Frames from decoders or reformat() may say I, which would force an IDR: the
        # type is set either way (an I frame asked of x264 with a closed GOP is an IDR).
        frame.pict_type = PictureType.I if keyframe else PictureType.NONE
        out = []
        for packet in self._ctx.encode(frame):
            nals = split_annexb(bytes(packet))
            self.sps, self.pps = parameter_sets(nals, self.sps, self.pps)
            out.append(EncodedUnit(nals, bool(packet.is_keyframe), packet.pts))
        return out

    def close(self):
        """Release the encoder."""
        self._ctx = None
