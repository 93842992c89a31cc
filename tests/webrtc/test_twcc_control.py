"""Transport-cc in a viewer's sender: every packet stamped, the feedback read from the raw
RTCP before aiortc, its estimate preferred to REMB; and the SDP both ways."""

import asyncio
import struct

import pytest_twisted
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtpPacket, pack_remb_fci
from twisted.internet import task

from rotordream.config import WebRTC
from rotordream.media.hub import StreamHub
from rotordream.webrtc import twcc
from rotordream.webrtc.control import SenderControl
from rotordream.webrtc.sessions import WebRTCService
from tests.webrtc.test_pacing import SSRC, FakeSender, FakeTransport, rtp
from tests.webrtc.test_units import run


class RtcpTransport(FakeTransport):
    """Also the DTLS transport's ``_handle_rtcp_data``: records what reached aiortc."""

    def __init__(self):
        super().__init__()
        self.rtcp = []

    async def _handle_rtcp_data(self, data):
        self.rtcp.append(data)


def seq_of(data):
    packet = RtpPacket.parse(data)
    assert packet.extensions is not None
    return packet


@pytest_twisted.inlineCallbacks
def test_packets_are_numbered_and_feedback_sets_the_estimate():
    clock = task.Clock()
    clock.advance(10)
    sender, transport = FakeSender(), RtcpTransport()
    estimates = []
    control = SenderControl(sender, clock.seconds, on_estimate=estimates.append)
    control.use_transport_cc(5)
    control.attach_transport(transport)
    control.set_estimate(50_000_000)

    async def go():
        for seq in range(40):
            await transport._send_rtp(rtp(seq))
            clock.advance(0.01)        # 1200 bytes every 10 ms: 960 kbit/s
        rtcp = struct.pack("!BBHI", 0x80, 201, 1, 1)   # an empty RR before it, compound
        arrivals = [1_000_000 + 10_000 * i for i in range(40)]
        await transport._handle_rtcp_data(rtcp + twcc.build_feedback(0, arrivals))
        broken = twcc.build_feedback(0, [64000])
        await transport._handle_rtcp_data(broken[:20] + b"\xf0\x00" + broken[22:])  # symbol 11
        # A REMB now loses to the fresh transport-cc estimate, and wins once it is stale.
        remb = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0,
                              fci=pack_remb_fci(123_000, [SSRC]))
        await sender._handle_rtcp_packet(remb)
        first = control.estimate_source
        clock.advance(3)
        await sender._handle_rtcp_packet(remb)
        return first
    source_then = yield run(go())
    numbers = [struct.unpack_from("!H", d, 17)[0] for d in transport.sent]
    assert numbers == list(range(40))
    assert all(d[12:16] == b"\xbe\xde\x00\x01" and d[16] == 0x51 for d in transport.sent)
    assert len(transport.rtcp) == 2            # aiortc still gets everything
    stats = control.stats()
    assert stats["transport_cc"]["feedbacks"] == 1 and stats["transport_cc"]["malformed"] == 1
    assert source_then == "transport-cc" and 800_000 <= estimates[-2] <= 1_500_000
    assert control.estimate_source == "remb" and estimates[-1] == 123_000
    assert stats["remb"] == 123_000


def hubs():
    return {"stream1": StreamHub("stream1"), "stream2": StreamHub("stream2")}


class Caller:
    class principal:
        name = "admin"
    authenticated = True
    manages_all = True
    client = "127.0.0.1"
    key = None


@pytest_twisted.inlineCallbacks
def test_offer_and_answer_carry_transport_cc_when_enabled():
    clock = task.Clock()
    on = WebRTCService(hubs(), clock, WebRTC(transport_cc=True))
    off = WebRTCService(hubs(), clock, WebRTC())
    offered = yield on.offer("stream1", Caller)
    plain = yield off.offer("stream1", Caller)
    assert twcc.extension_id(offered["sdp"]) is not None
    assert "transport-cc" in offered["sdp"]
    assert twcc.extension_id(plain["sdp"]) is None and "transport-cc" not in plain["sdp"]

    # A viewer's offer with the extension gets it back in the answer, with its id.
    async def viewer_offer():
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("video", direction="recvonly")
        offer = await pc.createOffer()
        await pc.close()
        return twcc.add_to_sdp(offer.sdp, 9)[0]
    sdp = yield run(viewer_offer())
    answered = yield on.accept("stream1", sdp, Caller)
    assert twcc.extension_id(answered["sdp"]) == 9 and "transport-cc" in answered["sdp"]
    session = on.sessions[answered["id"]]
    assert session.control.twcc_id == 9
    assert session.public()["sending"]["transport_cc"]["extension_id"] == 9
    for service in (on, off):
        yield service.stopService()
    yield run(asyncio.sleep(0))
