"""The Python client (clients/python, rotordream_client) against a real daemon: every
method of Camera and AsyncCamera, the auth modes, errors, watch across a restart,
resumed downloads, TLS with the daemon's self-signed certificate."""

import asyncio
import concurrent.futures
import glob
import os

import pytest

from tests.conftest import free_port, require_module, seed_state

rc = require_module("rotordream_client")


def test_info_status_health_and_snapshot(admin):
    info = admin.info()
    assert info["product"] and "rtsp" in info["capabilities"]
    assert set(info["streams"]) == {"stream1", "stream2"}
    status = admin.status()
    assert status["uptime"] > 0 and "recording" in status
    assert admin.health()["healthy"] is True
    jpeg = admin.snapshot()
    assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
    small = admin.snapshot(quality=5)
    assert small[:2] == b"\xff\xd8" and len(small) < len(jpeg)


def test_get_set_batch_and_invalid_value(admin):
    before = admin.get("brightness", "contrast")
    assert set(before) == {"brightness", "contrast"}
    try:
        confirmed = admin.set(brightness=61, cam1_light=True)
        assert confirmed["brightness"] == 61 and confirmed["cam1-light"] is True
        assert admin.get("brightness")["brightness"] == 61
        assert admin.get_all()["cam1-light"] is True
        with pytest.raises(rc.InvalidValue) as e:
            admin.set({"brightness": 62, "contrast": 500})
        assert e.value.code == "INVALID_VALUE" and e.value.key == "contrast"
        assert e.value.status == 400 and e.value.allowed
        # All or nothing: the good half of the batch did not happen.
        assert admin.get("brightness", "contrast") == {"brightness": 61,
                                                       "contrast": before["contrast"]}
        with pytest.raises(rc.ApiError) as e:
            admin.get("no-such-key")
        assert e.value.key == "no-such-key"
    finally:
        admin.set(brightness=before["brightness"], cam1_light=False)


def test_auth_modes_basic_digest_bearer_login_logout(daemon):
    for scheme in ("digest", "basic"):
        with rc.Camera(daemon.http, "admin", daemon.admin_password, auth=scheme) as cam:
            # Listing users needs an admin: the 401 challenge is answered with `scheme`.
            assert "admin" in [u["username"] for u in cam.users.list()]
    with rc.Camera(daemon.http, "admin", "wrong", auth="basic") as cam:
        with pytest.raises(rc.Unauthorized) as e:
            cam.users.list()
        assert e.value.code == "UNAUTHORIZED" and e.value.status == 401
    with rc.Camera(daemon.http) as anonymous:
        assert "brightness" in anonymous.get_all()   # anonymous clients are viewers
        with pytest.raises(rc.Unauthorized):
            anonymous.set(brightness=50)
    with rc.Camera(daemon.http, "admin", daemon.admin_password) as cam:
        session = cam.login()
        assert session["role"] == "admin" and cam.token == session["token"]
        with rc.Camera(daemon.http, token=session["token"]) as bearer:
            assert bearer.users.list()
            url = bearer.stream_url("stream2", transport="udp")
            assert url == "rtsp://127.0.0.1:%d/stream2?udp&token=%s" % (daemon.rtsp_port,
                                                                         session["token"])
        assert cam.logout()["logged_out"] is True and cam.token is None
        with rc.Camera(daemon.http, token=session["token"]) as revoked:
            with pytest.raises(rc.Unauthorized):
                revoked.users.list()
        assert cam.users.list()   # back on the password
        assert cam.stream_url() == "rtsp://127.0.0.1:%d/stream1?tcp" % daemon.rtsp_port
        assert cam.stream_url(transport=None, credentials=True) == \
            "rtsp://admin:%s@127.0.0.1:%d/stream1" % (daemon.admin_password, daemon.rtsp_port)


def test_users_management_and_permissions(admin, daemon):
    name = "client-op"
    added = admin.users.add(name, "first-pass-1", "operator")
    try:
        assert added["role"] == "operator"
        assert name in [u["username"] for u in admin.users.list()]
        with pytest.raises(rc.Conflict):
            admin.users.add(name, "x-pass-12345", "viewer")
        assert admin.users.passwd(name, "second-pass-2")["password_changed"] is True
        with rc.Camera(daemon.http, name, "second-pass-2") as op:
            assert op.users.get(name)["role"] == "operator"
            with pytest.raises(rc.Forbidden) as e:
                op.users.list()
            assert e.value.code == "FORBIDDEN"
            op.users.passwd(name, "third-pass-3", current="second-pass-2")
        assert admin.users.set_role(name, "viewer")["role"] == "viewer"
        with rc.Camera(daemon.http, name, "third-pass-3") as viewer:
            with pytest.raises(rc.Forbidden):
                viewer.set(brightness=50)
    finally:
        assert admin.users.delete(name) == {"deleted": name}
    with pytest.raises(rc.NotFound):
        admin.users.delete(name)


def test_watch_yields_changes_and_only_changes(admin, daemon):
    watch = admin.watch(["brightness", "contrast"], initial=True)
    try:
        first = next(watch)
        assert set(first) == {"brightness", "contrast"}
        with rc.Camera(daemon.http, "admin", daemon.admin_password) as other:
            other.set(brightness=first["brightness"] + 1)
            assert next(watch) == {"brightness": first["brightness"] + 1}
            other.set(saturation=77)          # not watched
            other.set(contrast=first["contrast"] + 2)
            assert next(watch) == {"contrast": first["contrast"] + 2}
            other.set(brightness=first["brightness"], contrast=first["contrast"], saturation=50)
            assert next(watch) == first
    finally:
        watch.close()


def test_watch_with_a_token_and_an_error_as_exception(admin, daemon):
    with rc.Camera(daemon.http, "admin", daemon.admin_password) as cam:
        cam.login()
        watch = cam.watch(["cam2-light"], initial=True)
        try:
            assert next(watch) == {"cam2-light": False}
            admin.set(cam2_light=True)
            assert next(watch) == {"cam2-light": True}
        finally:
            watch.close()
            admin.set(cam2_light=False)
            cam.logout()
    with rc.Camera(daemon.http, token="not-a-token") as bad:
        with pytest.raises(rc.Unauthorized):
            next(bad.watch())


def test_watch_survives_a_daemon_restart(fresh_daemon, tmp_path_factory):
    d = fresh_daemon(settings={"resolution": "640x360", "brightness": 40})
    cam = rc.Camera(d.http, "admin", d.admin_password)
    watch = cam.watch(["brightness"], initial=True, max_backoff=1.0)
    try:
        assert next(watch) == {"brightness": 40}
        cam.set(brightness=41)
        assert next(watch) == {"brightness": 41}
        d.stop()
        # Changed while the daemon was down: only a re-read after the reconnect sees it.
        seed_state(d.state_dir, {"resolution": "640x360", "brightness": 45})
        d.start()
        assert next(watch) == {"brightness": 45}
        cam.set(brightness=46)    # after the restart: a broadcast on the new connection
        assert next(watch) == {"brightness": 46}
    finally:
        watch.close()
        cam.close()


def test_async_camera_same_surface(daemon):
    async def main():
        async with rc.AsyncCamera(daemon.http, "admin", daemon.admin_password) as cam:
            assert (await cam.info())["api_version"]
            assert "uptime" in await cam.status()
            assert (await cam.snapshot())[:2] == b"\xff\xd8"
            start = (await cam.get("sharpness"))["sharpness"]
            watch = cam.watch(["sharpness"], initial=True)
            assert await watch.__anext__() == {"sharpness": start}
            await cam.set(sharpness=start + 3)
            assert await watch.__anext__() == {"sharpness": start + 3}
            await watch.aclose()
            with pytest.raises(rc.InvalidValue) as e:
                await cam.set(sharpness=101)
            assert e.value.key == "sharpness"
            await cam.set(sharpness=start)
            assert [r async for r in cam.recordings.list(limit=1)] is not None
            assert (await cam.recording.status())["state"]
            assert "admin" in [u["username"] for u in await cam.users.list()]
            assert isinstance(await cam.ptz.presets(), list)
            await cam.login()
            assert (await cam.stream_url()).endswith("?tcp&token=" + cam.token)
            await cam.logout()

    # The test process runs Twisted's asyncio reactor: the client gets a loop of its own.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, main()).result(120)


def test_rate_limited_raises_or_waits(fresh_daemon, tmp_path):
    conf = tmp_path / "limits.toml"
    conf.write_text("[http]\nrate_limit = 3\nrate_period = 1\n")
    d = fresh_daemon(extra=["--config", str(conf)], settings={"resolution": "640x360"})
    with rc.Camera(d.http) as cam:
        with pytest.raises(rc.RateLimited) as e:
            for _ in range(10):
                cam.health()
        assert e.value.code == "RATE_LIMITED" and e.value.retry_after >= 1
    with rc.Camera(d.http, wait_rate_limited=True) as patient:
        assert all(patient.health()["healthy"] for _ in range(6))


def record_for(cam, seconds, name):
    """Record ``seconds`` with the recorder's own limit; the finished entry."""
    watch = cam.watch(["record"], initial=True)
    try:
        next(watch)
        status = cam.recording.start(name=name, duration=seconds)
        assert status["recording"] is True and status["name"] == name
        seen = {}
        for change in watch:
            seen.update(change)
            if seen.get("record") is False:
                break
    finally:
        watch.close()
    cam.recording.stop()
    return [r for r in cam.recordings.list() if r["name"] == name][0]


def test_recording_control_list_download_resume_delete(admin, daemon, tmp_path):
    watch = admin.watch(["record"], initial=True)
    try:
        next(watch)
        assert admin.recording.start(name="client-ctl")["recording"] is True
        assert next(watch) == {"record": True}
        admin.recording.pause()
        assert next(watch) == {"record": "paused"}
        assert admin.recording.status()["paused"] is True
        admin.recording.resume()
        assert next(watch) == {"record": True}
        stopped = admin.recording.stop()
        assert stopped["recording"] is False
    finally:
        watch.close()
    entry = record_for(admin, 3, "client-dl")
    listed = list(admin.recordings.list(page_size=1))
    assert len(listed) >= 2 and len({r["id"] for r in listed}) == len(listed)
    assert [r["id"] for r in listed] == [r["id"] for r in admin.recordings.list()]
    assert len(list(admin.recordings.list(limit=1))) == 1
    assert entry["id"] in [r["id"] for r in admin.recordings.list(since=entry["start"] - 1)] \
        if isinstance(entry.get("start"), (int, float)) else True
    on_disk = glob.glob(os.path.join(daemon.state_dir, "recordings", entry["id"] + ".*"))
    with open(on_disk[0], "rb") as f:
        original = f.read()
    assert len(original) == entry["size"] > 20000

    class Interrupted(Exception):
        pass

    def cut(done, total):
        if done >= 10000:
            raise Interrupted

    target = str(tmp_path / "clip.mp4")
    with pytest.raises(Interrupted):
        admin.recordings.download(entry["id"], target, progress=cut, chunk_size=1000)
    partial = os.path.getsize(target)
    assert 0 < partial < len(original)
    seen = []
    admin.recordings.download(entry["id"], target, progress=lambda d, t: seen.append((d, t)),
                              chunk_size=1000)
    # Resumed: the first piece continued after the partial file, not from byte 0.
    assert seen[0] == (partial + 1000, len(original))
    with open(target, "rb") as f:
        assert f.read() == original
    # Complete already: nothing more to fetch, the file stays as it is.
    assert admin.recordings.download(entry["id"], target) == target
    assert os.path.getsize(target) == len(original)
    assert admin.recordings.delete(entry["id"]) == {"deleted": entry["id"]}
    with pytest.raises(rc.NotFound):
        admin.recordings.delete(entry["id"])
    with pytest.raises(rc.NotFound):
        admin.recordings.download(entry["id"], str(tmp_path / "gone.mp4"))


def test_ptz_move_presets_goto_continuous_stop(admin):
    watch = admin.watch(["pan-position", "tilt-position", "motor-state"], initial=True)

    def until(predicate):
        state = {}
        for change in watch:
            state.update(change)
            if predicate(state):
                return state

    try:
        next(watch)
        admin.ptz.move(pan=10, tilt=-5)
        until(lambda s: abs(s.get("pan-position", 99) - 10) < 0.5 and
              abs(s.get("tilt-position", 99) + 5) < 0.5)
        token = admin.ptz.set_preset("client-preset")
        presets = admin.ptz.presets()
        assert token in [p["token"] for p in presets]
        assert [(p["name"], p["pan"], p["tilt"]) for p in presets if p["token"] == token] == \
            [("client-preset", 10, -5)]
        admin.ptz.move(0, 0)
        until(lambda s: abs(s.get("pan-position", 99)) < 0.5)
        admin.ptz.goto(token)
        until(lambda s: abs(s.get("pan-position", 99) - 10) < 0.5)
        admin.ptz.continuous(0.5, 0.0, timeout=20)
        until(lambda s: s.get("motor-state") == "moving" and s.get("pan-position", 0) > 11)
        admin.ptz.stop()
        stopped = until(lambda s: s.get("motor-state") == "idle")["pan-position"]
        assert admin.ptz.position()["motor-state"] == "idle"
        with pytest.raises(rc.NotFound):
            admin.ptz.goto("no-such-preset")
        with pytest.raises(rc.InvalidValue):
            admin.ptz.continuous(3.0, 0.0)
        admin.ptz.relative(pan=-4)
        until(lambda s: abs(s.get("pan-position", 99) - (stopped - 4)) < 0.5 and
              s.get("motor-state") == "idle")
        admin.ptz.home()
        until(lambda s: abs(s.get("pan-position", 99)) < 0.5 and s.get("motor-state") == "idle")
        assert admin.ptz.status()["limits"]["pan_max"] > 0
        admin.ptz.remove_preset(token)
        assert token not in [p["token"] for p in admin.ptz.presets()]
        with pytest.raises(rc.NotFound):
            admin.ptz.remove_preset(token)
    finally:
        admin.ptz.move(0, 0)
        watch.close()


def test_rotor(admin):
    watch = admin.watch(["rotor-rpm"], initial=True)
    try:
        next(watch)
        admin.rotor.set(enabled=True, speed=1200, direction="ccw")
        status = admin.rotor.status()
        assert status["rotor-enabled"] is True and status["rotor-speed"] == 1200
        assert status["rotor-direction"] == "ccw"
        for change in watch:
            if change.get("rotor-rpm", 0) > 0:
                break
        with pytest.raises(rc.InvalidValue) as e:
            admin.rotor.set(direction="sideways")
        assert e.value.key == "rotor-direction"
    finally:
        admin.rotor.set(enabled=False, speed=3000, direction="cw")
        watch.close()


def test_tls_with_the_pinned_self_signed_certificate(fresh_daemon):
    https = free_port()
    d = fresh_daemon(extra=["--https", "ssl:%d:interface=127.0.0.1" % https],
                     settings={"resolution": "640x360"})
    cert = os.path.join(d.state_dir, "tls-cert.pem")
    base = "https://127.0.0.1:%d" % https
    with rc.Camera(base, "admin", d.admin_password, verify=cert) as cam:
        assert cam.info()["product"]
        assert "admin" in [u["username"] for u in cam.users.list()]
        cam.login()
        watch = cam.watch(["gain"], initial=True)    # wss:// with the same certificate
        try:
            assert next(watch) == {"gain": 0}
            cam.set(gain=7)
            assert next(watch) == {"gain": 7}
        finally:
            watch.close()
    with rc.Camera(base) as unpinned:
        with pytest.raises(rc.ConnectionFailed):
            unpinned.info()


def test_async_watch_survives_a_daemon_restart(fresh_daemon):
    d = fresh_daemon(settings={"resolution": "640x360", "contrast": 30})

    def restart():
        d.stop()
        seed_state(d.state_dir, {"resolution": "640x360", "contrast": 35})
        d.start()

    async def main():
        async with rc.AsyncCamera(d.http, "admin", d.admin_password, auth="basic") as cam:
            watch = cam.watch(["contrast"], initial=True, max_backoff=1.0)
            assert await watch.__anext__() == {"contrast": 30}
            await asyncio.get_running_loop().run_in_executor(None, restart)
            assert await watch.__anext__() == {"contrast": 35}
            await cam.set(contrast=36)
            assert await watch.__anext__() == {"contrast": 36}
            await watch.aclose()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, main()).result(120)
