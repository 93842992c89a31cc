"""WebRTC against a running daemon, with aiortc as the viewer: real ICE, DTLS and SRTP on 127.0.0.1.

aiortc offers no loopback candidates of its own, so this module pins its host
candidates to 127.0.0.1 (the daemons under test are configured the same way).
"""

import asyncio
import concurrent.futures
import signal
import time

import pytest
import requests
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from rotordream.webrtc.sessions import use_host_addresses


@pytest.fixture(autouse=True, scope="module")
def loopback_candidates():
    use_host_addresses(["127.0.0.1"])
    yield
    use_host_addresses(())


def run(coro, timeout=90):
    """Run an aiortc coroutine in a thread with its own event loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=timeout)


class Viewer:
    """One aiortc peer connection watching the camera, counting decoded frames."""

    def __init__(self):
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.frames = []
        self.first_frame = None
        self.started = time.monotonic()
        self.ended = asyncio.get_running_loop().create_future()
        self._enough = None
        self._want = 0

        @self.pc.on("track")
        def on_track(track):
            asyncio.ensure_future(self._pull(track))

        @self.pc.on("connectionstatechange")
        def changed():
            if self.pc.connectionState in ("closed", "failed") and not self.ended.done():
                self.ended.set_result(self.pc.connectionState)

    async def _pull(self, track):
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            if self.first_frame is None:
                self.first_frame = time.monotonic() - self.started
            self.frames.append((frame.width, frame.height))
            if self._enough is not None and len(self.frames) >= self._want \
                    and not self._enough.done():
                self._enough.set_result(None)

    async def size_seen(self, size, after, timeout=30):
        """Wait until a frame of ``size`` comes after the first ``after`` frames."""
        deadline = time.monotonic() + timeout
        while size not in self.frames[after:]:
            await self.frames_seen(len(self.frames) + 1, deadline - time.monotonic())

    async def frames_seen(self, count, timeout=30):
        """Wait until ``count`` frames have been decoded."""
        self._want = count
        self._enough = asyncio.get_running_loop().create_future()
        if len(self.frames) >= count:
            return
        await asyncio.wait_for(self._enough, timeout)

    async def camera_offers(self, http, base, stream="stream1", answer_with_id=False):
        """The API reference's flow: GET the camera's offer, POST our answer (cookie-matched)."""
        r = http.get(base + "/api/webrtc/offer", params={"stream": stream}, timeout=30)
        assert r.status_code == 200, r.text
        offer = r.json()
        await self.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], offer["type"]))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        body = {"type": "answer", "sdp": self.pc.localDescription.sdp}
        if answer_with_id:
            body["id"] = offer["data"]["id"]
        r = http.post(base + "/api/webrtc/answer", json=body, timeout=30)
        assert r.status_code == 200, r.text
        return offer["data"]["id"]

    async def viewer_offers(self, http, base, stream="stream1"):
        """WHEP-style: POST our offer, apply the camera's answer."""
        self.pc.addTransceiver("video", direction="recvonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        r = http.post(base + "/api/webrtc/offer", params={"stream": stream},
                      json={"type": "offer", "sdp": self.pc.localDescription.sdp}, timeout=30)
        assert r.status_code == 200, r.text
        answer = r.json()
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        return answer["data"]["id"]


def test_the_reference_flow_plays_stream1_and_stream2(daemon):
    async def go():
        results = {}
        for stream in ("stream1", "stream2"):
            viewer = Viewer()
            with requests.Session() as http:  # keeps the offer's cookie, as a browser does
                sid = await viewer.camera_offers(http, daemon.http, stream)
                await viewer.frames_seen(30)
                admin = ("admin", daemon.admin_password)
                listing = requests.get(daemon.http + "/api/webrtc/sessions",
                                       auth=admin).json()["data"]
                streams = requests.get(daemon.http + "/api/streams", auth=admin).json()["data"]
                status = requests.get(daemon.http + "/api/status", auth=admin).json()["data"]
            await viewer.pc.close()
            counted = {s["name"]: s["webrtc_clients"] for s in streams["streams"]}
            results[stream] = (set(viewer.frames), viewer.first_frame, listing, sid)
            results[stream + " counts"] = (counted[stream], status["clients"]["webrtc"])
        return results
    info = requests.get(daemon.http + "/api/info").json()["data"]
    assert "webrtc" in info["capabilities"]
    assert info["streams"]["stream2"]["webrtc"] == "/api/webrtc/offer?stream=stream2"
    results = run(go())
    for stream in ("stream1", "stream2"):
        assert min(results.pop(stream + " counts")) >= 1  # /api/streams and /api/status
    assert results["stream1"][0] == {(1280, 720)}
    assert results["stream2"][0] == {(640, 360)}
    for stream, (_, first, listing, sid) in results.items():
        # The cached GOP starts the picture at once, not at the next keyframe.
        assert first < 5, (stream, first)
        mine = [s for s in listing["sessions"] if s["id"] == sid]
        assert mine and mine[0]["state"] == "connected" and mine[0]["stream"] == stream
        assert mine[0]["frames_sent"] >= 30 and mine[0]["user"] == "anonymous"


def test_a_viewer_may_offer_instead_and_two_viewers_share_the_stream(daemon):
    async def go():
        a, b = Viewer(), Viewer()
        with requests.Session() as http:
            await a.viewer_offers(http, daemon.http, "stream2")
            await b.camera_offers(http, daemon.http, "stream2", answer_with_id=True)
        await asyncio.gather(a.frames_seen(45), b.frames_seen(45))
        sizes = set(a.frames) | set(b.frames)
        await a.pc.close()
        await b.pc.close()
        return sizes
    assert run(go()) == {(640, 360)}


def test_bad_requests_get_clear_errors_and_the_daemon_keeps_serving(daemon):
    base = daemon.http

    def error(r, status, code=None):
        assert r.status_code == status, r.text
        body = r.json()
        assert body["status"] == "error" and body["error"]
        if code:
            assert body["code"] == code
        return body

    body = error(requests.get(base + "/api/webrtc/offer?stream=stream9"), 400, "BAD_REQUEST")
    assert body["key"] == "stream" and body["allowed"] == ["stream1", "stream2", "auto"]
    error(requests.post(base + "/api/webrtc/answer", data="not json",
                        headers={"content-type": "application/json"}), 400)
    error(requests.post(base + "/api/webrtc/answer", json=["answer"]), 400)
    error(requests.post(base + "/api/webrtc/answer", json={"type": "offer", "sdp": "v=0"}), 400)
    error(requests.post(base + "/api/webrtc/answer", json={"type": "answer", "sdp": "hello"}), 400)
    body = error(requests.post(base + "/api/webrtc/answer",
                               json={"type": "answer", "sdp": "v=0\r\n"}), 400)
    assert body["key"] == "id"  # no id and no cookie: which session?
    error(requests.post(base + "/api/webrtc/answer",
                        json={"type": "answer", "sdp": "v=0\r\n", "id": "nope"}), 404, "NOT_FOUND")
    error(requests.delete(base + "/api/webrtc/sessions/nope"), 404, "NOT_FOUND")
    error(requests.put(base + "/api/webrtc/offer"), 405, "METHOD_NOT_ALLOWED")
    assert requests.head(base + "/api/webrtc/offer").status_code == 405  # no session left behind

    async def garbage_answer_and_no_h264():
        with requests.Session() as http:
            offer = http.get(base + "/api/webrtc/offer").json()
            sid = offer["data"]["id"]
            garbage = http.post(base + "/api/webrtc/answer",
                                json={"type": "answer", "sdp": "v=0\r\nm=banana\r\n"})
            gone = http.post(base + "/api/webrtc/answer",
                             json={"type": "answer", "sdp": "v=0\r\n", "id": sid})
        # A viewer offering only VP8: nothing in common with an H.264 camera.
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = "\r\n".join(l for l in pc.localDescription.sdp.split("\r\n")
                          if "H264" not in l and "rtx" not in l)
        vp8 = requests.post(base + "/api/webrtc/offer", json={"type": "offer", "sdp": sdp})
        await pc.close()
        return garbage, gone, vp8
    garbage, gone, vp8 = run(garbage_answer_and_no_h264())
    assert "refused" in error(garbage, 400)["error"]
    error(gone, 404)  # a refused answer ends its session
    error(vp8, 400)

    async def answered_twice():
        viewer = Viewer()
        with requests.Session() as http:
            sid = await viewer.camera_offers(http, base, "stream2")
            again = http.post(base + "/api/webrtc/answer",
                              json={"type": "answer", "sdp": viewer.pc.localDescription.sdp})
        await viewer.frames_seen(10)  # the first answer stands
        await viewer.pc.close()
        return again
    error(run(answered_twice()), 409, "CONFLICT")
    assert requests.get(base + "/api/health").status_code == 200
    assert "Traceback" not in daemon.log()


@pytest.fixture
def limited(fresh_daemon, tmp_path):
    conf = tmp_path / "webrtc.toml"
    conf.write_text('[auth]\nanonymous = "guest"\n[http]\nrate_limit = 0\n'
                    '[webrtc]\naddresses = ["127.0.0.1"]\nmax_sessions = 2\noffer_timeout = 3\n')
    return fresh_daemon(extra=["--config", str(conf)], settings={"resolution": "640x360"})


def test_limits_expiry_roles_hang_up_and_stop(limited):
    d = limited
    admin = ("admin", d.admin_password)
    base = d.http
    # anonymous = guest: no viewing without credentials.
    r = requests.get(base + "/api/webrtc/offer")
    assert r.status_code == 401 and r.json()["code"] == "UNAUTHORIZED"

    # Two offers nobody answers fill the two places; a third is refused with Retry-After.
    ids = [requests.get(base + "/api/webrtc/offer", auth=admin).json()["data"]["id"]
           for _ in range(2)]
    r = requests.get(base + "/api/webrtc/offer", auth=admin)
    assert r.status_code == 429 and r.json()["code"] == "RATE_LIMITED"
    assert r.json()["limit"] == 2 and r.headers["retry-after"] == "3"
    # Unanswered offers end after offer_timeout and free their places.
    assert d.wait_output(lambda out: sum("not connected within 3 s" in l for l in out) == 2,
                         timeout=30), d.log()[-2000:]
    assert all(i in d.log() for i in ids)

    # Another user may not end an admin's session; the admin may; the viewer sees it end.
    requests.post(base + "/api/users", auth=admin,
                  json={"username": "watcher", "password": "watcher-pass-1", "role": "viewer"})
    watcher = ("watcher", "watcher-pass-1")

    async def hang_up():
        viewer = Viewer()
        with requests.Session() as http:
            http.auth = admin
            sid = await viewer.camera_offers(http, base, "stream2")
        await viewer.frames_seen(10)
        mine = requests.get(base + "/api/webrtc/sessions", auth=watcher).json()["data"]
        other = requests.delete(base + "/api/webrtc/sessions/" + sid, auth=watcher)
        ended = requests.delete(base + "/api/webrtc/sessions/" + sid, auth=admin)
        state = await asyncio.wait_for(viewer.ended, 30)
        await viewer.pc.close()
        return mine, other, ended, state, sid
    mine, other, ended, state, sid = run(hang_up())
    assert mine["sessions"] == [] and mine["max_sessions"] == 2  # not the watcher's
    assert other.status_code == 403 and other.json()["code"] == "FORBIDDEN"
    assert ended.status_code == 200 and ended.json()["data"] == {"ended": sid}
    assert state in ("closed", "failed")

    # SIGTERM with a viewer connected: every peer connection closed, exit 0.
    async def connected():
        viewer = Viewer()
        with requests.Session() as http:
            http.auth = watcher
            await viewer.camera_offers(http, base, "stream1")
        await viewer.frames_seen(10)
        t = time.monotonic()
        code = await asyncio.get_running_loop().run_in_executor(None, d.stop, signal.SIGTERM)
        state = await asyncio.wait_for(viewer.ended, 30)
        await viewer.pc.close()
        return code, time.monotonic() - t, state
    code, took, state = run(connected())
    assert code == 0 and took < 5, d.log()[-3000:]
    assert state in ("closed", "failed")
    assert "ended: daemon stopping" in d.log() and "Traceback" not in d.log()


def test_a_viewer_follows_a_resolution_change_without_reconnecting(fresh_daemon, tmp_path):
    conf = tmp_path / "webrtc.toml"
    conf.write_text('[webrtc]\naddresses = ["127.0.0.1"]\n')
    d = fresh_daemon(extra=["--config", str(conf)], settings={"resolution": "640x360"})
    admin = ("admin", d.admin_password)

    async def go():
        viewer = Viewer()
        with requests.Session() as http:
            await viewer.camera_offers(http, d.http, "stream1")
        await viewer.frames_seen(15)
        before = len(viewer.frames)
        r = requests.post(d.http + "/api/settings", json={"resolution": "1280x720"}, auth=admin)
        assert r.status_code == 200, r.text
        await viewer.frames_seen(before + 60)
        await viewer.pc.close()
        return viewer.frames
    frames = run(go())
    assert frames[0] == (640, 360) and frames[-1] == (1280, 720)
    # One switch, from the old size to the new, no other sizes in between.
    assert len({f for f in frames}) == 2
    assert frames.index((1280, 720)) == len(frames) - frames[::-1].index((640, 360))


def test_a_viewer_is_switched_between_streams_without_renegotiating(daemon):
    base = daemon.http

    async def go():
        viewer = Viewer()
        with requests.Session() as http:
            sid = await viewer.camera_offers(http, base, "stream1")
            await viewer.frames_seen(15)
            url = base + "/api/webrtc/sessions/" + sid
            bad = [http.patch(url, json=body) for body in
                   ({"stream": "stream9"}, {"stream": 2}, {}, {"stream": "stream2", "x": 1})]
            missing = http.patch(base + "/api/webrtc/sessions/nope", json={"stream": "stream2"})
            down = http.patch(url, json={"stream": "stream2"})
            mark = len(viewer.frames)
            await viewer.size_seen((640, 360), mark)   # at stream2's next keyframe
            await viewer.frames_seen(len(viewer.frames) + 15)
            up = http.patch(url, json={"stream": "stream1"})
            mark2 = len(viewer.frames)
            await viewer.size_seen((1280, 720), mark2)
            await viewer.frames_seen(len(viewer.frames) + 15)
        await viewer.pc.close()
        return viewer.frames, mark, bad, missing, down, up, mark2
    frames, mark, bad, missing, down, up, mark2 = run(go())
    assert all(r.status_code == 400 and r.json()["key"] == "stream" for r in bad)
    assert missing.status_code == 404
    assert down.status_code == 200 and down.json()["data"]["stream"] == "stream2"
    assert frames[0] == (1280, 720) and (640, 360) in frames[mark:]
    switched = frames.index((640, 360))
    assert set(frames[:switched]) == {(1280, 720)}      # one clean switch
    # And back, the same way.
    assert up.json()["data"]["stream"] == "stream1" and frames[-1] == (1280, 720)


def test_a_pli_forces_an_idr_of_the_viewers_stream_at_once(daemon):
    admin = ("admin", daemon.admin_password)

    def stream1():
        status = requests.get(daemon.http + "/api/status", auth=admin, timeout=10).json()
        return status["data"]["camera"]["streams"]["stream1"]

    async def go():
        viewer = Viewer()
        with requests.Session() as http:
            sid = await viewer.camera_offers(http, daemon.http, "stream1")
            await viewer.frames_seen(20)
            receiver = viewer.pc.getTransceivers()[0].receiver
            [ssrc] = list(receiver._RTCRtpReceiver__remote_streams)
            await asyncio.sleep(1.1)   # past any forced IDR another test asked for (1 a second)
            before = stream1()
            asked = time.monotonic()
            await receiver._send_rtcp_pli(ssrc)
            after = before
            while after["keyframes"] == before["keyframes"] and time.monotonic() - asked < 2:
                await asyncio.sleep(0.05)
                after = stream1()
            took = time.monotonic() - asked
            seen = len(viewer.frames)
            await viewer.frames_seen(seen + 10)   # it plays on from the new keyframe
            listing = requests.get(daemon.http + "/api/webrtc/sessions", auth=admin,
                                   timeout=10).json()["data"]["sessions"]
        await viewer.pc.close()
        return before, after, took, [s for s in listing if s["id"] == sid][0]
    before, after, took, session = run(go())
    assert after["keyframe_requests"] == before["keyframe_requests"] + 1
    # One forced (a regular one may fall in the same poll now and then: gop 30 at 30 fps).
    assert after["keyframes"] - before["keyframes"] in (1, 2)
    # The regular keyframe is up to a second away: this one came with the next picture or
    # two, plus the status polling.
    print("PLI to the forced keyframe in the hub", round(took, 3), "s")
    assert took < 0.3, took
    assert session["sending"]["picture_losses"] == 1 and session["resyncs"] == 1
