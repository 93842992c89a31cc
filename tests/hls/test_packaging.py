"""HLS packaging without a reactor: real H.264 units into CMAF parts and a playlist."""

import fractions
import io

import av
import pytest

from rotordream.h264 import parameter_sets, split_annexb
from rotordream.hls.packager import Init, Packager, Part
from rotordream.hls.playlist import Playlist, parse_name
from rotordream.media.hub import AccessUnit

FPS, GOP, W, H = 30, 30, 160, 96
T0 = 1_800_000_000.0


@pytest.fixture(scope="module")
def encoded():
    """Five seconds of real H.264 (Annex B), a keyframe every second."""
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = W, H, "yuv420p"
    enc.time_base = fractions.Fraction(1, FPS)
    enc.framerate = FPS
    enc.options = {"preset": "ultrafast", "tune": "zerolatency", "bf": "0",
                   "x264-params": "keyint=%d:min-keyint=%d:scenecut=0:repeat-headers=1"
                                  % (GOP, GOP)}
    src = av.open("testsrc2=size=%dx%d:rate=%d" % (W, H, FPS), format="lavfi")
    units = []
    for i, frame in enumerate(src.decode(video=0)):
        frame.pict_type = av.video.frame.PictureType.NONE
        frame = frame.reformat(format="yuv420p")
        frame.pts = i
        units += [(bytes(p), p.is_keyframe) for p in enc.encode(frame)]
        if len(units) >= 5 * FPS:
            break
    src.close()
    return units[:5 * FPS]


def unit(encoded, i, generation=0):
    data, key = encoded[i]
    nals = tuple(split_annexb(data))
    sps, pps = parameter_sets(nals)
    return AccessUnit("stream1", i, nals, key, i * 3000, T0 + i / FPS, W, H, FPS, sps, pps,
                      generation)


def package(encoded, count, start=0):
    packager, playlist, made = Packager(0.2), Playlist(0.2, 10), []
    for i in range(start, start + count):
        for item in packager.add(unit(encoded, i)):
            made.append(item)
            if isinstance(item, Init):
                playlist.add_init(item)
            else:
                playlist.add_part(item)
    return playlist, made


def test_parts_of_200_ms_and_segments_at_keyframes(encoded):
    playlist, made = package(encoded, 4 * FPS + 1)
    assert isinstance(made[0], Init) and made[0].data[4:8] == b"ftyp"
    parts = [m for m in made if isinstance(m, Part)]
    assert all(p.data[4:8] == b"moof" for p in parts)
    assert [round(p.duration, 3) for p in parts] == [0.2] * 20
    assert [p.independent for p in parts] == ([True] + [False] * 4) * 4
    assert [s.complete for s in playlist.segments] == [True] * 4
    assert [round(s.duration, 3) for s in playlist.segments] == [1.0] * 4
    assert playlist.target_duration == 1


def test_segments_and_parts_decode_from_the_init(encoded, tmp_path):
    playlist, _ = package(encoded, 3 * FPS + 1)
    init = playlist.file("init-1.mp4")
    whole = init + playlist.file("seg-0.m4s") + playlist.file("seg-1.m4s")
    by_parts = init + b"".join(playlist.file("part-2-%d.m4s" % i) for i in range(5))
    for data, frames in ((whole, 60), (by_parts, 30)):
        with av.open(io.BytesIO(data)) as c:
            decoded = list(c.decode(video=0))
        assert len(decoded) == frames and decoded[0].width == W


def test_a_stream_joined_mid_gop_starts_at_the_next_keyframe(encoded):
    playlist, made = package(encoded, 2 * FPS + 1, start=10)
    assert [s.msn for s in playlist.segments] == [0, 1]
    assert playlist.segments[0].capture_time == T0 + 1.0
    assert playlist.segments[0].complete and playlist.segments[0].parts[0].independent


def test_low_latency_playlist(encoded):
    playlist, _ = package(encoded, 2 * FPS + 8)
    text = playlist.render()
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U" and "#EXT-X-TARGETDURATION:1" in lines
    assert "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.660" in lines
    assert "#EXT-X-PART-INF:PART-TARGET=0.220" in lines
    assert '#EXT-X-MAP:URI="init-1.mp4"' in lines
    assert '#EXT-X-PART:DURATION=0.200,URI="part-2-0.m4s",INDEPENDENT=YES' in lines
    assert lines[-1] == '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-2-1.m4s"'
    assert "#EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:00:00.000Z" in lines
    classic = playlist.render(low_latency=False)
    assert "#EXT-X-PART" not in classic and "PRELOAD" not in classic
    assert classic.count("#EXTINF:1.000,") == 2 and "seg-1.m4s" in classic


def test_blocking_questions(encoded):
    playlist, _ = package(encoded, FPS + 8)   # segment 0 complete, segment 1 has 1 part
    assert playlist.has(0) and not playlist.has(1)
    assert playlist.has(1, 0) and not playlist.has(1, 1)
    assert playlist.may_come(1, 1) and not playlist.may_come(1, 2)
    assert not playlist.too_far(3) and playlist.too_far(4)
    assert playlist.file("part-1-1.m4s") is None and playlist.file("seg-1.m4s") is None


def test_window_drops_old_segments(encoded):
    playlist = Playlist(0.2, 2)
    packager = Packager(0.2)
    for i in range(4 * FPS + 1):
        for item in packager.add(unit(encoded, i)):
            (playlist.add_init if isinstance(item, Init) else playlist.add_part)(item)
    assert [s.msn for s in playlist.segments] == [2, 3]
    assert playlist.file("seg-1.m4s") is None and playlist.file("seg-2.m4s")
    assert "#EXT-X-MEDIA-SEQUENCE:2" in playlist.render()


@pytest.mark.parametrize("name, parsed", [
    ("init-3.mp4", ("init", 3)), ("seg-12.m4s", ("seg", 12)), ("part-4-2.m4s", ("part", 4, 2)),
    ("../seg-1.m4s", None), ("seg-1.m4s.bak", None), ("part-1.m4s", None),
])
def test_names(name, parsed):
    assert parse_name(name) == parsed


def test_a_reopened_encoder_gets_a_new_init_and_a_discontinuity(encoded):
    packager, playlist = Packager(0.2), Playlist(0.2, 10)
    for i in range(2 * FPS + 8):
        # The encoder is re-opened at unit 45 (mid-GOP): the packager waits for the
        # next keyframe of the new generation before going on.
        for item in packager.add(unit(encoded, i, generation=0 if i < 45 else 1)):
            (playlist.add_init if isinstance(item, Init) else playlist.add_part)(item)
    assert [s.init for s in playlist.segments] == [1, 1, 2]
    assert [s.discontinuity for s in playlist.segments] == [False, False, True]
    text = playlist.render()
    assert text.count("#EXT-X-DISCONTINUITY") == 1
    assert text.index('#EXT-X-MAP:URI="init-2.mp4"') > text.index("#EXT-X-DISCONTINUITY")
    assert playlist.file("init-1.mp4") and playlist.file("init-2.mp4")


def _listed(text):
    """(part durations, EXTINF durations) as listed in a playlist, in order."""
    parts = [float(line.split("DURATION=")[1].split(",")[0]) for line in text.splitlines()
             if line.startswith("#EXT-X-PART:")]
    segs = [float(line[8:].rstrip(",")) for line in text.splitlines()
            if line.startswith("#EXTINF:")]
    return parts, segs


@pytest.mark.parametrize("durations", [
    [0.2004] * 5,                                  # each rounds down, the sum does not
    [0.19996, 0.2, 0.2027, 0.2208, 0.17653],       # each rounds up past the media
    [0.2] * 5,                                      # exact (as floats, 0.2 * 5 > 1.0)
])
def test_listed_parts_never_end_past_the_media(durations):
    """Players place each part at the sum of the durations before it; that sum must not
    pass the end of the media the player has buffered (hls.js re-loads the segment over
    and over if it does), and the parts add up to the segment's EXTINF."""
    playlist = Playlist(0.2, 10)
    for msn in range(2):
        for i, duration in enumerate(durations):
            playlist.add_part(Part(b"", duration, i == 0, T0 + msn + i * 0.2, 1,
                                   ends_segment=i == len(durations) - 1))
    listed, extinf = _listed(playlist.render())
    media = sum(durations)
    assert len(listed) == 10 and len(extinf) == 2
    for k in range(1, 6):
        assert sum(durations[:k]) - 0.001 < sum(listed[:k]) <= sum(durations[:k]) + 1e-9
    assert round(sum(listed[:5]), 6) == extinf[0] == extinf[1] <= media
