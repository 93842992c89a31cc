"""Hostile anonymous WebRTC clients against a running daemon (issue 13, items 2 and 3).

Each "machine" is a source address on loopback (127.0.0.2, 127.0.0.3, ...): they
take every slot they may, yet a signed-in viewer and the admin still get one (the
admin connects with aiortc); and none of them can hang up, switch or answer
another anonymous client's session.
"""

import asyncio
import http.client
import json
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

import pytest
import requests

from tests.webrtc.test_webrtc_live import Viewer, loopback_candidates, run  # noqa: F401


class Machine:
    """An anonymous HTTP client on source address ``source`` with a cookie jar of one."""

    def __init__(self, base, source):
        self.base = urlsplit(base)
        self.source = source
        self.cookie = None

    def call(self, method, path, body=None):
        """(status, headers, JSON body) of one request."""
        conn = http.client.HTTPConnection(self.base.hostname, self.base.port, timeout=30,
                                          source_address=(self.source, 0))
        headers = {}
        if self.cookie:
            headers["Cookie"] = self.cookie
        if body is not None:
            headers["Content-Type"] = "application/json"
            body = json.dumps(body)
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            data = json.loads(r.read() or b"null")
            set_cookie = r.getheader("set-cookie")
            if set_cookie:
                jar = SimpleCookie(set_cookie)
                self.cookie = "rotordream_webrtc=" + jar["rotordream_webrtc"].value
            return r.status, r, data
        finally:
            conn.close()

    def offer(self, stream="stream1"):
        return self.call("GET", "/api/webrtc/offer?stream=" + stream)


@pytest.fixture
def hostile(fresh_daemon, tmp_path):
    """A daemon with the default slot limits (10 in all, 4 per address, 2 reserved) and
    offers that expire in 8 s."""
    conf = tmp_path / "webrtc.toml"
    conf.write_text('[webrtc]\naddresses = ["127.0.0.1"]\noffer_timeout = 8\n'
                    'max_sessions = 10\nmax_sessions_per_address = 4\nreserved_sessions = 2\n')
    d = fresh_daemon(extra=["--config", str(conf)],
                     settings={"resolution": "640x360", "fps": 15})
    r = requests.post(d.http + "/api/users", auth=("admin", d.admin_password), timeout=30,
                      json={"username": "watcher", "password": "watcher-pass-1",
                            "role": "viewer"})
    assert r.status_code in (200, 201), r.text
    return d


def test_anonymous_hogs_leave_room_for_a_viewer_and_the_admin(hostile):
    d = hostile
    first, second, third = (Machine(d.http, "127.0.0.%d" % i) for i in (2, 3, 4))
    # Four offers from one address, renewed as an attacker would: the fifth is refused.
    codes = [first.offer()[0] for _ in range(4)]
    status, r, body = first.offer()
    assert codes == [200] * 4 and status == 429, body
    assert body["code"] == "RATE_LIMITED" and body["limit"] == 4
    assert r.getheader("retry-after") == "8"
    # A second machine takes four more: eight of ten, all anonymous clients may hold.
    assert [second.offer()[0] for _ in range(4)] == [200] * 4
    status, _, body = third.offer()
    assert status == 429 and "signed-in" in body["error"], body

    # A signed-in viewer gets an offer, and the admin one it connects with.
    watcher = requests.get(d.http + "/api/webrtc/offer", auth=("watcher", "watcher-pass-1"),
                           timeout=30)
    assert watcher.status_code == 200, watcher.text
    admin = ("admin", d.admin_password)

    async def admin_watches():
        viewer = Viewer()
        with requests.Session() as http:
            http.auth = admin
            sid = await viewer.camera_offers(http, d.http, "stream2")
        await viewer.frames_seen(10)
        full = requests.get(d.http + "/api/webrtc/offer", auth=admin, timeout=30)
        # Unanswered offers end after offer_timeout and free their slots; the admin's
        # connected session stays.
        expired = await asyncio.get_running_loop().run_in_executor(None, lambda: d.wait_output(
            lambda out: sum("not connected within 8 s" in line for line in out) >= 9, 60))
        again = third.offer()[0]
        listing = requests.get(d.http + "/api/webrtc/sessions", auth=admin,
                               timeout=30).json()["data"]["sessions"]
        frames = len(viewer.frames)
        await viewer.frames_seen(frames + 10)       # still watching
        await viewer.pc.close()
        return sid, full, expired, again, listing
    sid, full, expired, again, listing = run(admin_watches())
    # Ten of ten: now even the admin waits.
    assert full.status_code == 429 and "all 10" in full.json()["error"]
    assert expired, d.log()[-3000:]
    assert again == 200
    mine = [s for s in listing if s["id"] == sid]
    assert mine and mine[0]["state"] == "connected" and mine[0]["client"] == "127.0.0.1"
    assert {s["client"] for s in listing} == {"127.0.0.1", "127.0.0.4"}
    assert "Traceback" not in d.log()


def test_an_anonymous_session_answers_only_to_its_opener(daemon):
    owner, neighbour = Machine(daemon.http, "127.0.0.2"), Machine(daemon.http, "127.0.0.3")
    status, r, offer = owner.offer()
    assert status == 200, offer
    sid = offer["data"]["id"]
    path = "/api/webrtc/sessions/" + sid
    answer = {"type": "answer", "sdp": "v=0\r\n", "id": sid}

    def refused(machine):
        """The status of every way to touch the owner's session, from ``machine``."""
        return [machine.call("DELETE", path)[0],
                machine.call("PATCH", path, {"stream": "stream2"})[0],
                machine.call("POST", "/api/webrtc/answer", answer)[0]]

    # Another machine, with the id but no key.
    assert refused(neighbour) == [403, 403, 403]
    assert neighbour.call("GET", "/api/webrtc/sessions")[2]["data"]["sessions"] == []
    # Another client behind the same address (a NAT), without the key.
    assert refused(Machine(daemon.http, "127.0.0.2")) == [403, 403, 403]
    # The key stolen and replayed from elsewhere.
    thief = Machine(daemon.http, "127.0.0.3")
    thief.cookie = owner.cookie
    assert refused(thief) == [403, 403, 403]
    # The key is a secret of its own, not the id others may learn, in a cookie scripts on
    # the page cannot read; the id is 128 random bits.
    set_cookie = r.getheader("set-cookie").lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie
    assert "path=/api/webrtc" in set_cookie and sid.lower() not in set_cookie
    assert len(sid) >= 22
    # The opener: sees it (without addresses), switches it, ends it.
    listed = owner.call("GET", "/api/webrtc/sessions")[2]["data"]["sessions"]
    assert [s["id"] for s in listed] == [sid] and "client" not in listed[0]
    status, _, body = owner.call("PATCH", path, {"stream": "stream2"})
    assert status == 200 and body["data"]["stream"] == "stream2"
    assert owner.call("DELETE", path)[:1] == (200,)
    # The admin ends any anonymous session.
    other = owner.offer()[2]["data"]["id"]
    r = requests.delete(daemon.http + "/api/webrtc/sessions/" + other,
                        auth=("admin", daemon.admin_password), timeout=30)
    assert r.status_code == 200 and r.json()["data"] == {"ended": other}


def test_the_reference_flow_answers_by_cookie_from_its_own_address_only(daemon):
    async def go():
        viewer = Viewer()
        owner = Machine(daemon.http, "127.0.0.2")
        offer = owner.offer()[2]
        from aiortc import RTCSessionDescription
        await viewer.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        await viewer.pc.setLocalDescription(await viewer.pc.createAnswer())
        answer = {"type": "answer", "sdp": viewer.pc.localDescription.sdp}
        thief = Machine(daemon.http, "127.0.0.3")
        thief.cookie = owner.cookie
        stolen = thief.call("POST", "/api/webrtc/answer", answer)[0]
        mine = owner.call("POST", "/api/webrtc/answer", answer)   # no id: by the cookie
        await viewer.frames_seen(10)
        await viewer.pc.close()
        return stolen, mine, offer["data"]["id"]
    stolen, (status, _, body), sid = run(go())
    assert stolen == 404
    assert status == 200 and body["data"]["id"] == sid and body["data"]["user"] == "anonymous"
