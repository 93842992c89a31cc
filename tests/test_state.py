"""Camera state: every key's validation, permissions, batch atomicity, persistence."""

import json
import os

import pytest
from twisted.internet.task import Clock

from rotordream.auth.roles import Principal, anonymous
from rotordream.state import KEYS, CameraState, StateError, with_defaults

ADMIN = Principal("admin", "admin")
OPERATOR = Principal("op", "operator")
VIEWER = Principal("view", "viewer")


def sample_valid(spec):
    """A valid value different from the default, per key kind."""
    if spec.kind == "int":
        return spec.maximum if spec.default != spec.maximum else spec.minimum
    if spec.kind == "float":
        return spec.maximum if spec.maximum is not None else 1.5
    if spec.kind in ("bool", "trigger"):
        return not spec.default
    if spec.kind == "choice":
        return next(c for c in spec.choices if c != spec.default)
    if spec.kind == "record":
        return "on"
    if spec.kind == "str":
        return "lab 3"
    raise AssertionError(spec.kind)


WRITABLE = [s for s in KEYS if s.writable]
READ_ONLY = [s for s in KEYS if not s.writable]


@pytest.mark.parametrize("spec", WRITABLE, ids=lambda s: s.name)
def test_every_writable_key_accepts_a_valid_value_and_refuses_a_wrong_type(spec):
    state = CameraState()
    value = sample_valid(spec)
    result = state.set({spec.name: value}, ADMIN)
    assert spec.name in result.changes
    if spec.kind != "trigger":
        assert state.get(spec.name) == spec.validate(value)
    wrong = "seventy" if spec.kind not in ("str", "choice", "record") else 12345
    with pytest.raises(StateError) as e:
        state.set({spec.name: wrong}, ADMIN)
    assert e.value.key == spec.name and e.value.code in ("BAD_REQUEST", "INVALID_VALUE")
    assert spec.name in e.value.message


@pytest.mark.parametrize("spec", [s for s in KEYS if s.kind in ("int", "float") and s.writable],
                         ids=lambda s: s.name)
def test_numeric_bounds_are_inclusive_and_errors_name_the_range(spec):
    state = CameraState()
    state.set({spec.name: spec.minimum}, ADMIN)
    state.set({spec.name: spec.maximum}, ADMIN)
    for bad in (spec.minimum - 1, spec.maximum + 1):
        with pytest.raises(StateError) as e:
            state.set({spec.name: bad}, ADMIN)
        assert e.value.code == "INVALID_VALUE"
        assert e.value.allowed == {"min": spec.minimum, "max": spec.maximum}
        assert "between" in e.value.message


def test_booleans_are_not_integers_and_integers_not_booleans():
    state = CameraState()
    with pytest.raises(StateError):
        state.set({"brightness": True}, OPERATOR)
    with pytest.raises(StateError):
        state.set({"cam1-light": 1}, OPERATOR)
    with pytest.raises(StateError):
        state.set({"brightness": 75.5}, OPERATOR)
    assert state.set({"brightness": 75.0}, OPERATOR).changes == {"brightness": 75}


@pytest.mark.parametrize("spec", READ_ONLY, ids=lambda s: s.name)
def test_read_only_keys_refuse_writes_even_from_admin(spec):
    state = CameraState()
    with pytest.raises(StateError) as e:
        state.set({spec.name: spec.default}, ADMIN)
    assert e.value.code == "FORBIDDEN"


def test_record_words_normalise():
    state = CameraState()
    for word, stored in (("on", True), ("pause", "paused"), ("pause_release", True),
                         ("off", False), (True, True), (False, False)):
        state.set({"record": word}, OPERATOR)
        assert state.get("record") == stored
    with pytest.raises(StateError) as e:
        state.set({"record": "maybe"}, OPERATOR)
    assert "pause_release" in e.value.message


def test_resolution_choices_and_alias():
    state = CameraState()
    with pytest.raises(StateError) as e:
        state.set({"resolution": "123x45"}, OPERATOR)
    assert "1920x1080" in e.value.allowed
    state.set({"noise-suppression": True}, OPERATOR)
    assert state.get("noise-supression") is True
    state.set_choices("resolution", ["640x360"])
    with pytest.raises(StateError):
        state.set({"resolution": "1920x1080"}, OPERATOR)


def test_a_batch_is_all_or_nothing_and_notifies_once_in_order():
    state = CameraState()
    seen = []
    state.subscribe(lambda changes, origin: seen.append((list(changes.items()), origin)))
    with pytest.raises(StateError) as e:
        state.set({"brightness": 75, "contrast": 60, "saturation": 500}, OPERATOR)
    assert e.value.key == "saturation"
    assert state.get("brightness") == 50 and state.get("contrast") == 50 and seen == []
    state.set({"brightness": 75, "contrast": 60, "saturation": 40}, OPERATOR, origin="test")
    assert seen == [([("brightness", 75), ("contrast", 60), ("saturation", 40)], "test")]
    # An unchanged value is confirmed but not broadcast again.
    state.set({"brightness": 75}, OPERATOR)
    assert len(seen) == 1


def test_permissions_per_key_and_role():
    state = CameraState()
    with pytest.raises(StateError) as e:
        state.set({"brightness": 1}, VIEWER)
    assert e.value.code == "FORBIDDEN"
    with pytest.raises(StateError) as e:
        state.set({"brightness": 1}, anonymous())
    assert e.value.code == "UNAUTHORIZED"
    with pytest.raises(StateError) as e:
        state.set({"device-name": "x"}, OPERATOR)
    assert e.value.code == "FORBIDDEN"
    assert "discovery-mode" not in state.read("*", VIEWER)
    assert "discovery-mode" in state.read("*", ADMIN)
    with pytest.raises(StateError):
        state.read(["discovery-mode"], VIEWER)
    assert state.read(["brightness"], anonymous()) == {"brightness": 50}
    assert state.read("*", anonymous("guest")) == {}
    with pytest.raises(StateError) as e:
        state.set({"nope": 1}, ADMIN)
    assert e.value.code == "UNKNOWN_KEY"


def test_actions_run_after_validation_and_report_info():
    state = CameraState()
    calls = []
    state.set_command("snap", lambda values, origin: calls.append(values["snap"]) or
                      {"snap": {"url": "/api/snapshot"}})
    result = state.set({"snap": True}, OPERATOR)
    assert calls == [True] and result.info == {"snap": {"url": "/api/snapshot"}}
    with pytest.raises(StateError):
        state.set({"snap": True, "brightness": 900}, OPERATOR)
    assert calls == [True]


def test_persisted_keys_survive_restart_and_writes_coalesce(tmp_path):
    clock = Clock()
    state = CameraState(str(tmp_path), clock=clock)
    state.set({"brightness": 70, "contrast": 30}, OPERATOR)
    state.set({"resolution": "1280x720", "pan": 10.0}, OPERATOR)
    assert not (tmp_path / "state.json").exists()  # written once, at the end of the turn
    clock.advance(0)
    stored = json.loads((tmp_path / "state.json").read_text())["values"]
    assert stored["brightness"] == 70 and stored["resolution"] == "1280x720"
    assert "pan" not in stored  # a motor target is not a setting
    again = CameraState(str(tmp_path), clock=Clock())
    assert again.get("brightness") == 70 and again.get("contrast") == 30
    assert again.get("resolution") == "1280x720" and again.get("pan") == 0.0
    assert oct(os.stat(tmp_path / "state.json").st_mode & 0o777) == "0o644"


@pytest.mark.parametrize("content", [b'{"version": 1, "values": {"bright', b"\x00\xff garbage",
                                     b"[]", b'{"values": 5}'])
def test_a_corrupt_state_file_is_kept_aside_and_defaults_used(tmp_path, content):
    (tmp_path / "state.json").write_bytes(content)
    state = CameraState(str(tmp_path))
    assert state.get("brightness") == 50
    assert (tmp_path / "state.json.corrupt-0").read_bytes() == content
    state.set({"brightness": 60}, OPERATOR)
    assert CameraState(str(tmp_path)).get("brightness") == 60


def test_bad_stored_values_are_ignored_one_by_one(tmp_path):
    (tmp_path / "state.json").write_text(json.dumps(
        {"version": 1, "values": {"brightness": 900, "contrast": 10, "unknown": 1}}))
    state = CameraState(str(tmp_path))
    assert state.get("brightness") == 50 and state.get("contrast") == 10


def test_daemon_updates_read_only_status_keys_and_observers_hear():
    state = CameraState()
    seen = []
    state.subscribe(lambda c, o: seen.append((c, o)))
    state.update({"cam1-exists": True, "pan-position": 12.5}, origin="pipeline")
    assert seen == [({"cam1-exists": True, "pan-position": 12.5}, "pipeline")]
    with pytest.raises(StateError):
        state.update({"motor-state": "dancing"})


def pooled_state(tmp_path):
    from rotordream.testing import ImmediateReactor, QueuedThreadPool
    reactor, pool = ImmediateReactor(), QueuedThreadPool()
    return CameraState(str(tmp_path), clock=reactor, pool=pool), reactor.clock, pool


def stored(tmp_path):
    return json.loads((tmp_path / "state.json").read_text())["values"]


def test_the_state_file_is_written_in_the_pool_one_write_at_a_time(tmp_path):
    state, clock, pool = pooled_state(tmp_path)
    state.set({"brightness": 70}, OPERATOR)
    clock.advance(0)
    assert len(pool.queue) == 1 and not (tmp_path / "state.json").exists()
    # Changes while that write is in the pool wait for it, then go out as one write.
    state.set({"brightness": 71}, OPERATOR)
    state.set({"contrast": 20}, OPERATOR)
    clock.advance(0)
    assert len(pool.queue) == 1
    pool.run_next()
    assert stored(tmp_path)["brightness"] == 70
    clock.advance(0)
    assert len(pool.queue) == 1
    pool.run_next()
    assert stored(tmp_path)["brightness"] == 71 and stored(tmp_path)["contrast"] == 20
    clock.advance(0)
    assert pool.queue == []


def test_flush_is_never_undone_by_an_older_write_still_in_the_pool(tmp_path):
    state, clock, pool = pooled_state(tmp_path)
    state.set({"brightness": 70}, OPERATOR)
    clock.advance(0)
    state.set({"brightness": 80}, OPERATOR)
    state.flush()
    assert stored(tmp_path)["brightness"] == 80
    pool.run_next()  # the write of 70, queued before the flush
    assert stored(tmp_path)["brightness"] == 80
    clock.advance(0)
    assert pool.queue == []  # nothing newer than the flush to write


def test_a_failed_write_is_logged_not_retried_in_a_loop(tmp_path, monkeypatch):
    from twisted.logger import globalLogPublisher
    import rotordream.state as statemod
    state, clock, pool = pooled_state(tmp_path)
    real = statemod.atomic_write

    def full_disk(path, data):
        raise OSError(28, "No space left on device")
    errors = []
    observer = errors.append
    globalLogPublisher.addObserver(observer)
    try:
        monkeypatch.setattr(statemod, "atomic_write", full_disk)
        state.set({"brightness": 70}, OPERATOR)
        clock.advance(0)
        pool.run_next()
        clock.advance(0)
        assert pool.queue == []
        failures = [e for e in errors if e.get("log_failure") is not None]
    finally:
        globalLogPublisher.removeObserver(observer)
    assert len(failures) == 1 and failures[0]["log_failure"].check(OSError)
    assert "state.json" in failures[0]["path"]
    # The next change writes everything, the failed change included.
    monkeypatch.setattr(statemod, "atomic_write", real)
    state.set({"contrast": 20}, OPERATOR)
    clock.advance(0)
    pool.run_next()
    assert stored(tmp_path)["brightness"] == 70 and stored(tmp_path)["contrast"] == 20


def test_the_config_gives_factory_defaults_and_a_kept_setting_wins(tmp_path):
    keys = with_defaults(profile="high")
    assert CameraState(keys=keys).get("profile") == "high"
    assert CameraState().get("profile") == "baseline"
    kept = CameraState(str(tmp_path))
    kept.update({"profile": "main"})
    kept.flush()
    assert CameraState(str(tmp_path), keys=keys).get("profile") == "main"
    with pytest.raises(KeyError):
        with_defaults(no_such_key=1)
    with pytest.raises(StateError):
        CameraState().set({"profile": "extended"}, Principal("admin", "admin"))
