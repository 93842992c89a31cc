"""WHEP against a running daemon, with a WHEP client written from draft-ietf-wish-whep.

The client is aiortc: it POSTs its offer as ``application/sdp``, applies the
``201 Created`` answer, keeps the ``Location`` and ends the session with a
``DELETE`` there. It keeps no cookies, as WHEP players do not.
"""

import urllib.parse

import requests
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from tests.webrtc.test_webrtc_live import Viewer, loopback_candidates, run  # noqa: F401

SDP = "application/sdp"


class WhepClient(Viewer):
    """A WHEP player: one recvonly video transceiver, offer in a POST, DELETE to leave."""

    async def play(self, endpoint, headers=None):
        """POST the offer; apply the answer; the 201 response."""
        self.pc.addTransceiver("video", direction="recvonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        reply = requests.post(endpoint, data=self.pc.localDescription.sdp.encode(),
                              headers=dict({"content-type": SDP}, **(headers or {})),
                              timeout=30)
        assert reply.status_code == 201, reply.text
        self.resource = urllib.parse.urljoin(endpoint, reply.headers["location"])
        await self.pc.setRemoteDescription(RTCSessionDescription(reply.text, "answer"))
        return reply

    def stop(self):
        """DELETE the session resource."""
        return requests.delete(self.resource, timeout=30)


def listing(daemon):
    """Every session of the daemon, by id (other tests' sessions may still be ending)."""
    admin = ("admin", daemon.admin_password)
    return {s["id"]: s for s in requests.get(daemon.http + "/api/webrtc/sessions",
                                             auth=admin).json()["data"]["sessions"]}


def test_a_whep_client_plays_and_deletes_its_session(daemon):
    endpoint = daemon.http + "/api/webrtc/whep?stream=stream2"

    async def go():
        before = listing(daemon)
        client = WhepClient()
        reply = await client.play(endpoint)
        await client.frames_seen(30)
        during = listing(daemon)
        gone = client.stop()
        after = listing(daemon)
        again = client.stop()
        await client.pc.close()
        mine = [s for i, s in during.items() if i not in before]
        return reply, set(client.frames), mine, gone, after, again, client.resource
    reply, sizes, mine, gone, after, again, resource = run(go())
    assert reply.headers["content-type"] == SDP
    assert reply.text.startswith("v=0\r\n") and "H264/90000" in reply.text
    assert "a=candidate:" in reply.text   # ICE gathered whole: no trickle needed
    path = urllib.parse.urlparse(resource).path
    assert path.startswith("/api/webrtc/whep/") and len(path.rsplit("/", 1)[1]) == 43
    assert sizes == {(640, 360)}
    assert [(s["stream"], s["state"]) for s in mine] == [("stream2", "connected")]
    assert gone.status_code == 200, gone.text
    assert gone.json()["data"]["ended"] == mine[0]["id"] and mine[0]["id"] not in after
    assert again.status_code == 404


def test_whep_options_methods_and_media_types(daemon):
    endpoint = daemon.http + "/api/webrtc/whep"
    before = listing(daemon)
    options = requests.options(endpoint)
    assert options.status_code == 200
    assert options.headers["accept-post"] == SDP
    assert "POST" in options.headers["allow"]
    # The endpoint takes POSTs only; a resource DELETEs only (no trickle ICE or restart).
    assert requests.get(endpoint).status_code == 405
    assert requests.put(endpoint, data=b"v=0\r\n", headers={"content-type": SDP}).status_code \
        == 405
    assert requests.patch(endpoint + "/x", data=b"a=end-of-candidates\r\n",
                          headers={"content-type": "application/trickle-ice-sdpfrag"}
                          ).status_code == 405
    assert requests.options(endpoint + "/x").headers["allow"] == "DELETE, OPTIONS"
    wrong = requests.post(endpoint, json={"type": "offer", "sdp": "v=0\r\n"})
    assert wrong.status_code == 415 and wrong.json()["allowed"] == [SDP]
    assert requests.post(endpoint, data=b"hello", headers={"content-type": SDP}
                         ).status_code == 400
    assert requests.post(endpoint + "?stream=stream9", data=b"v=0\r\n",
                         headers={"content-type": SDP}).status_code == 400
    assert requests.delete(endpoint + "/" + "A" * 43).status_code == 404
    assert not set(listing(daemon)) - set(before)


def test_a_whep_offer_without_h264_is_refused_and_leaves_nothing(daemon):
    before = listing(daemon)

    async def go():
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = "\r\n".join(line for line in pc.localDescription.sdp.split("\r\n")
                          if "H264" not in line and "rtx" not in line)
        reply = requests.post(daemon.http + "/api/webrtc/whep", data=sdp.encode(),
                              headers={"content-type": SDP})
        await pc.close()
        return reply
    reply = run(go())
    assert reply.status_code == 400, reply.text
    assert not set(listing(daemon)) - set(before)


def test_whep_cors_for_a_configured_origin(fresh_daemon, tmp_path):
    origin = "https://player.example"
    conf = tmp_path / "cors.toml"
    conf.write_text('[http]\ncors_origins = ["%s"]\nallowed_origins = ["%s"]\n'
                    '[webrtc]\naddresses = ["127.0.0.1"]\n' % (origin, origin))
    d = fresh_daemon(extra=["--config", str(conf)],
                     settings={"resolution": "320x240", "stream2-resolution": "320x180"})
    endpoint = d.http + "/api/webrtc/whep"
    preflight = requests.options(endpoint, headers={
        "origin": origin, "access-control-request-method": "POST",
        "access-control-request-headers": "content-type"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == origin
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "content-type" in preflight.headers["access-control-allow-headers"]
    assert preflight.headers["accept-post"] == SDP
    # Another origin gets no CORS headers.
    other = requests.options(endpoint, headers={"origin": "https://elsewhere.example",
                                                "access-control-request-method": "POST"})
    assert "access-control-allow-origin" not in other.headers

    async def go():
        client = WhepClient()
        reply = await client.play(endpoint, headers={"origin": origin})
        gone = requests.delete(client.resource, headers={"origin": origin})
        await client.pc.close()
        return reply, gone
    reply, gone = run(go())
    assert reply.headers["access-control-allow-origin"] == origin
    exposed = reply.headers["access-control-expose-headers"].lower()
    assert "location" in exposed and "link" in exposed
    assert gone.status_code == 200 and gone.headers["access-control-allow-origin"] == origin
