"""The recorder and the recordings store without a daemon: real H.264 units, a clock, a sync pool."""

import errno
import fractions
import json
import os

import av
import pytest
from twisted.internet.task import Clock

from rotordream.h264 import parameter_sets, split_annexb
from rotordream.media.hub import AccessUnit, StreamHub
from rotordream.recording import RecorderError, mp4
from rotordream.recording.recorder import Recorder
from rotordream.recording.store import RecordingStore, UnknownRecording, valid_id
from rotordream.state import CameraState
from rotordream.testing import ImmediateReactor, SyncThreadPool

FPS = 30
GOP = 15
W, H = 160, 96


@pytest.fixture(scope="module")
def encoded():
    """Six seconds of real H.264 access units (Annex B), a keyframe every GOP frames."""
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = W, H, "yuv420p"
    enc.time_base = fractions.Fraction(1, FPS)
    enc.framerate = FPS
    enc.options = {"preset": "ultrafast", "tune": "zerolatency",
                   "x264-params": "keyint=%d:min-keyint=%d:scenecut=0:repeat-headers=1"
                                  % (GOP, GOP), "bf": "0"}
    src = av.open("testsrc2=size=%dx%d:rate=%d" % (W, H, FPS), format="lavfi")
    units = []
    for i, frame in enumerate(src.decode(video=0)):
        frame.pict_type = av.video.frame.PictureType.NONE
        frame = frame.reformat(format="yuv420p")
        frame.pts = i
        for p in enc.encode(frame):
            units.append((bytes(p), p.is_keyframe))
        if len(units) >= 6 * FPS:
            break
    src.close()
    return units[:6 * FPS]


def make_au(encoded, i, generation=0, t0=1_800_000_000.0):
    data, key = encoded[i % len(encoded)]
    nals = tuple(split_annexb(data))
    sps, pps = parameter_sets(nals)
    return AccessUnit("stream1", i, nals, key, i * 3000, t0 + i / FPS, W, H, FPS, sps, pps,
                      generation)


class Pipeline:
    """Just the hubs the recorder reads."""

    def __init__(self):
        self.hubs = {"stream1": StreamHub("stream1")}


def make_recorder(tmp_path, segment_seconds=300, max_total_mb=0, min_free_mb=0):
    clock = Clock()
    reactor = ImmediateReactor(clock)
    hub = Pipeline().hubs["stream1"]
    store = RecordingStore(str(tmp_path / "rec"), max_total_mb, min_free_mb)
    rec = Recorder(reactor, CameraState(str(tmp_path)), hub, store, SyncThreadPool(),
                   segment_seconds, clock=clock)
    rec.startService()
    return rec, hub, clock


def started_recorder(tmp_path, encoded, **kw):
    """A recorder recording from the first keyframe: (recorder, hub, clock)."""
    rec, hub, clock = make_recorder(tmp_path, **kw)
    feed(hub, encoded, 0, 1)
    rec.start()
    return rec, hub, clock


def only_file(rec):
    """(entry, path) of the one recording in the store."""
    [entry] = rec.store.entries.values()
    return entry, rec.store.path(entry["id"])


def feed(hub, encoded, start, stop, generation=0):
    for i in range(start, stop):
        hub.publish(make_au(encoded, i, generation))


def packets(path):
    """(pts seconds, keyframe) of every packet in an MP4 file."""
    with av.open(path) as c:
        return [(float(p.pts * p.time_base), p.is_keyframe) for p in c.demux(video=0) if p.size]


def test_recording_starts_at_the_cached_keyframe_and_is_continuous(tmp_path, encoded):
    rec, hub, clock = make_recorder(tmp_path)
    feed(hub, encoded, 0, 20)          # a keyframe at 15: the cache holds 15..19
    rec.start(name="unit")
    feed(hub, encoded, 20, 90)
    rec.stop()
    entry, path = only_file(rec)
    got = packets(path)
    assert got[0] == (0.0, True)
    assert len(got) == 90 - 15         # from the cached keyframe, nothing lost
    steps = {round(b[0] - a[0], 4) for a, b in zip(got, got[1:])}
    assert steps == {round(1 / FPS, 4)}
    assert entry["frames"] == 75 and not entry["recording"]
    assert abs(entry["duration"] - 75 / FPS) < 1e-3
    assert entry["name"] == "unit" and entry["id"].startswith("unit_")


def test_segments_cut_at_keyframes_lose_and_repeat_nothing(tmp_path, encoded):
    rec, hub, clock = started_recorder(tmp_path, encoded, segment_seconds=1)
    feed(hub, encoded, 1, 100)
    rec.stop()
    entries = sorted(rec.store.entries.values(), key=lambda e: e["segment"])
    assert len(entries) >= 3
    total = 0
    for e in entries:
        got = packets(rec.store.path(e["id"]))
        assert got[0][1], "every segment starts with a keyframe"
        assert e["frames"] == len(got)
        total += len(got)
    assert total == 100                 # every frame exactly once across the seams
    assert len({e["session"] for e in entries}) == 1


def test_pause_and_resume_keep_one_gapless_timeline(tmp_path, encoded):
    rec, hub, clock = started_recorder(tmp_path, encoded)
    feed(hub, encoded, 1, 40)
    rec.pause()
    assert rec.state.get("record") == "paused"
    feed(hub, encoded, 40, 70)         # not recorded
    rec.resume()                        # the replayed GOP starts at keyframe 60
    feed(hub, encoded, 70, 100)
    rec.stop()
    entry, path = only_file(rec)
    got = packets(path)
    assert len(got) == 40 + 40
    steps = {round(b[0] - a[0], 4) for a, b in zip(got, got[1:])}
    assert steps == {round(1 / FPS, 4)}
    assert got[40][1], "resumed at a keyframe"


def test_resume_within_the_same_gop_writes_no_frame_twice(tmp_path, encoded):
    rec, hub, clock = started_recorder(tmp_path, encoded)
    feed(hub, encoded, 1, 20)
    rec.pause()
    rec.resume()                        # the cache replays 15..19, already written
    feed(hub, encoded, 20, 30)
    rec.stop()
    assert len(packets(only_file(rec)[1])) == 30


def test_a_new_encoder_generation_starts_a_new_file(tmp_path, encoded):
    rec, hub, clock = started_recorder(tmp_path, encoded)
    feed(hub, encoded, 1, 30)
    feed(hub, encoded, 30, 60, generation=1)
    rec.stop()
    assert sorted(e["frames"] for e in rec.store.entries.values()) == [30, 30]


def test_the_record_key_drives_the_recorder(tmp_path, encoded):
    from rotordream.auth.roles import Principal
    rec, hub, clock = make_recorder(tmp_path)
    admin = Principal("admin", "admin")
    feed(hub, encoded, 0, 1)
    rec.state.set({"record": "on"}, admin)
    assert rec.mode == "recording"
    rec.state.set({"record": "pause"}, admin)
    assert rec.mode == "paused" and rec.state.get("record") == "paused"
    rec.state.set({"record": "pause_release"}, admin)
    assert rec.mode == "recording"
    rec.state.set({"record": False}, admin)
    assert rec.mode == "idle" and rec.state.get("record") is False
    with pytest.raises(RecorderError):
        rec.pause()


def test_duration_limit_stops_by_itself(tmp_path, encoded):
    rec, hub, clock = make_recorder(tmp_path)
    feed(hub, encoded, 0, 1)
    rec.start(duration=2)
    clock.advance(1.9)
    assert rec.mode == "recording"
    clock.advance(0.2)
    assert rec.mode == "idle" and rec.state.get("record") is False


def test_enospc_stops_recording_keeps_what_was_written_and_tells_everyone(tmp_path, encoded,
                                                                         monkeypatch):
    rec, hub, clock = make_recorder(tmp_path)
    events = []
    rec.state.subscribe_events(events.append)
    feed(hub, encoded, 0, 1)
    rec.start()
    feed(hub, encoded, 1, 45)          # three fragments on disk
    real_write = mp4.SegmentWriter.write

    def full(self, *args):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(mp4.SegmentWriter, "write", full)
    feed(hub, encoded, 45, 50)
    monkeypatch.setattr(mp4.SegmentWriter, "write", real_write)
    assert rec.mode == "idle" and rec.state.get("record") is False
    assert events and events[0]["code"] == "INSUFFICIENT_STORAGE" and events[0]["key"] == "record"
    assert "disk full" in events[0]["error"]
    [entry] = rec.store.entries.values()
    assert not entry["recording"]
    assert len(packets(rec.store.path(entry["id"]))) >= 30


def test_start_is_refused_when_retention_cannot_make_room(tmp_path, encoded):
    rec, hub, clock = make_recorder(tmp_path, min_free_mb=10 ** 9)
    with pytest.raises(RecorderError) as e:
        rec.start()
    assert e.value.code == "INSUFFICIENT_STORAGE" and e.value.status == 507
    assert rec.state.get("record") is False


def test_a_refused_record_command_reports_without_touching_the_key(tmp_path, encoded):
    from rotordream.auth.roles import Principal
    rec, hub, clock = make_recorder(tmp_path, min_free_mb=10 ** 9)
    seen, events = [], []
    rec.state.subscribe(lambda changes, origin: seen.append((changes, origin)))
    rec.state.subscribe_events(events.append)
    result = rec.state.set({"record": True, "brightness": 60}, Principal("admin", "admin"),
                           origin="websocket:1")
    # The setting is applied; the command acts after it and never flashes record=true.
    assert seen == [({"brightness": 60}, "websocket:1")]
    assert result.changes == {"brightness": 60, "record": False}
    assert result.info["record"]["code"] == "INSUFFICIENT_STORAGE"
    assert events[0]["key"] == "record" and rec.state.get("record") is False


def test_a_record_command_reports_under_the_writers_origin(tmp_path, encoded):
    from rotordream.auth.roles import Principal
    rec, hub, clock = make_recorder(tmp_path)
    seen = []
    rec.state.subscribe(lambda changes, origin: seen.append((changes, origin)))
    feed(hub, encoded, 0, 1)
    rec.state.set({"record": True}, Principal("admin", "admin"), origin="websocket:7")
    assert seen == [({"record": True}, "websocket:7")] and rec.mode == "recording"


def test_retention_deletes_the_oldest_first(tmp_path, encoded):
    rec, hub, clock = make_recorder(tmp_path)
    feed(hub, encoded, 0, 1)
    for n in range(3):
        rec.start(name="r%d" % n)
        feed(hub, encoded, 1 + n * 60, 61 + n * 60)
        rec.stop()
    store = rec.store
    names = [e["name"] for e in sorted(store.entries.values(), key=lambda e: e["start_ts"])]
    assert names == ["r0", "r1", "r2"]
    one = max(e["size"] for e in store.entries.values())
    store.max_total = store.total_bytes() - 1          # one file too many
    assert store.make_room()
    assert sorted(e["name"] for e in store.entries.values()) == ["r1", "r2"]
    store.max_total = one + 1
    assert store.make_room()
    assert [e["name"] for e in store.entries.values()] == ["r2"]


def test_index_is_rebuilt_from_files_and_crashed_entries_are_measured(tmp_path, encoded):
    rec, hub, clock = make_recorder(tmp_path)
    feed(hub, encoded, 0, 1)
    rec.start(name="a")
    feed(hub, encoded, 1, 61)
    rec.stop()
    rec.start(name="b")
    feed(hub, encoded, 61, 121)
    # "Crash": the second file's writer is never closed, the index says in progress.
    seg = rec.segment
    assert rec.store.entries[seg.id]["recording"]
    directory = rec.store.directory
    index = os.path.join(directory, "index.json")

    again = RecordingStore(directory)
    measured = again.load()
    assert measured == [seg.id]
    e = again.entries[seg.id]
    assert e["recovered"] and not e["recording"] and e["frames"] >= 45
    # Lost index: everything comes back from the files.
    os.unlink(index)
    third = RecordingStore(directory)
    assert sorted(third.load()) == sorted(again.entries)
    assert {x["width"] for x in third.entries.values()} == {W}
    # Corrupt index: kept aside, rebuilt.
    with open(index, "w") as f:
        f.write("{not json")
    fourth = RecordingStore(directory)
    fourth.load()
    assert sorted(fourth.entries) == sorted(third.entries)
    assert any(n.startswith("index.json.corrupt") for n in os.listdir(directory))
    with open(index) as f:
        assert len(json.load(f)["recordings"]) == 2


@pytest.mark.parametrize("rid", ["../state", "..", "a/b", "/etc/passwd", "%2e%2e", "a.mp4",
                                 "", "x" * 200, "a\x00b", ".hidden"])
def test_ids_that_could_leave_the_directory_are_refused(tmp_path, rid):
    store = RecordingStore(str(tmp_path))
    assert not valid_id(rid)
    with pytest.raises(UnknownRecording):
        store.path(rid)
    with pytest.raises(UnknownRecording):
        store.get(rid)


def test_listing_pages_and_filters(tmp_path):
    store = RecordingStore(str(tmp_path))
    for n in range(5):
        store.entries["r%d" % n] = {"id": "r%d" % n, "start_ts": 1000.0 + n * 100,
                                    "end_ts": 1050.0 + n * 100, "duration": 50.0, "size": 1}
    total, page = store.listing(offset=1, limit=2)
    assert total == 5 and [e["id"] for e in page] == ["r3", "r2"]
    total, page = store.listing(since=1160, until=1310)
    assert [e["id"] for e in page] == ["r3", "r2"]
    assert page[0]["start"] == "1970-01-01T00:21:40.000Z"


def test_a_torn_last_fragment_is_cut_off(tmp_path, encoded):
    rec, hub, clock = started_recorder(tmp_path, encoded)
    feed(hub, encoded, 1, 61)
    rec.stop()
    entry, path = only_file(rec)
    whole = os.path.getsize(path)
    assert mp4.trim_torn_tail(path) == 0
    with open(path, "ab") as f:          # half a fragment, as a crash leaves it
        f.write(b"\x00\x00\x10\x00moof" + b"\x00" * 100)
    assert mp4.trim_torn_tail(path) == 108
    assert os.path.getsize(path) == whole
    os.truncate(path, whole - 1000)      # the last mdat cut short
    cut = mp4.trim_torn_tail(path)
    assert cut > 0
    with av.open(path) as c:             # what is left decodes without an error
        frames = sum(1 for _ in c.decode(video=0))
    assert frames == 60                  # 61 written, the last (torn) fragment held one


def test_each_fragment_is_on_disk_once_the_next_keyframe_closes_it(tmp_path, encoded,
                                                                  monkeypatch):
    # What fsync has made durable at each moment must hold every frame before the last
    # keyframe: copy the file at each fsync and decode the copy.
    real_fsync = os.fsync
    durable = []

    def fsync(fd):
        real_fsync(fd)
        path = os.readlink("/proc/self/fd/%d" % fd)
        if path.endswith(".mp4"):
            with open(path, "rb") as f:
                durable.append(f.read())
        else:
            durable.append(path)  # a directory
    monkeypatch.setattr(os, "fsync", fsync)
    rec, hub, clock = started_recorder(tmp_path, encoded)
    feed(hub, encoded, 1, 61)              # keyframes at 15, 30, 45, 60
    monkeypatch.setattr(os, "fsync", real_fsync)
    files = [d for d in durable if isinstance(d, bytes)]
    assert str(tmp_path / "rec") in durable  # the new file's directory entry, once
    assert len(files) == 5                   # the first keyframe, then one per fragment
    for n, data in enumerate(files[1:], 1):
        copy = tmp_path / ("copy%d.mp4" % n)
        copy.write_bytes(data)
        mp4.trim_torn_tail(str(copy))
        with av.open(str(copy)) as c:
            assert sum(1 for _ in c.decode(video=0)) == 15 * n
    rec.stop()
