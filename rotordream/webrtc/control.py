"""The per-viewer rules of :mod:`.pacing` applied to one aiortc sender.

aiortc sends a frame's packets back to back, answers every NACK from its
history and, for pre-encoded packets, ignores PLI, FIR and the estimate. It
offers no hooks, so three of the sender's own methods are wrapped:

- the DTLS transport's ``_send_rtp``: every RTP packet (not RTCP) waits for its
  turn in the :class:`~.pacing.Pacer`; originals are recorded for the
  :class:`~.pacing.Retransmitter`;
- the sender's ``_retransmit``: a NACKed packet goes again only if allowed;
- the sender's ``_handle_rtcp_packet``: REMB feeds the estimate, receiver
  reports the RTT, PLI/FIR restart the viewer at the next keyframe (and ask for a
  forced IDR only as often as the shared :class:`~.pacing.KeyframeRequests`
  allows).

``now`` is the reactor's clock (``clock.seconds``); waiting is the asyncio
loop's, which runs under the reactor.
"""

import asyncio
import struct

from aiortc.rtp import (RTCP_PSFB_APP, RTCP_PSFB_FIR, RTCP_PSFB_PLI, RtcpPsfbPacket,
                        RtcpRrPacket, RtcpSrPacket, is_rtcp, unpack_remb_fci)

from rotordream.webrtc.pacing import Pacer, Retransmitter

MIN_WAIT = 0.001   # shorter waits are not worth a timer: the burst allowance covers them


class SenderControl:
    """Pacing, bounded retransmission and PLI handling for one viewer's sender.

    ``on_estimate(bitrate)`` and ``on_picture_loss()`` are called back; ``now()``
    gives the time in seconds.
    """

    def __init__(self, sender, now, on_estimate=None, on_picture_loss=None,
                 pacer=None, retransmitter=None):
        self.sender = sender
        self.now = now
        self.pacer = pacer or Pacer()
        self.retransmitter = retransmitter or Retransmitter()
        self.on_estimate = on_estimate or (lambda bitrate: None)
        self.on_picture_loss = on_picture_loss or (lambda: None)
        self.rtt = None
        self.fraction_lost = 0.0
        self.picture_losses = 0
        self.paced = 0
        self._original_handle = sender._handle_rtcp_packet
        self._original_retransmit = sender._retransmit
        sender._handle_rtcp_packet = self.handle_rtcp
        sender._retransmit = self.retransmit
        self._transport = None

    def attach_transport(self, transport):
        """Pace what ``transport`` (the session's RTCDtlsTransport) sends as RTP."""
        if self._transport is transport:
            return
        self._transport = transport
        original = transport._send_rtp
        ssrc = self.sender._ssrc

        async def send(data):
            if is_rtcp(data):
                return await original(data)
            now = self.now()
            if len(data) >= 12 and struct.unpack_from("!I", data, 8)[0] == ssrc:
                self.retransmitter.sent(struct.unpack_from("!H", data, 2)[0], len(data), now)
            wait = self.pacer.send_at(len(data), now) - now
            if wait >= MIN_WAIT:
                self.paced += 1
                await asyncio.sleep(wait)
            return await original(data)
        transport._send_rtp = send

    def set_estimate(self, bitrate):
        """A new bandwidth estimate for this viewer, bit/s."""
        self.pacer.set_estimate(bitrate)
        self.retransmitter.set_estimate(bitrate)
        self.on_estimate(bitrate)

    async def retransmit(self, seq):
        """Send packet ``seq`` again if still useful and within the budget."""
        if self.retransmitter.allow(seq, self.now()):
            await self._original_retransmit(seq)

    async def handle_rtcp(self, packet):
        """The sender's RTCP handler, with estimates, RTT and picture loss taken here."""
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            self.picture_losses += 1
            self.on_picture_loss()
            return   # aiortc would only flag its (unused) encoder
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                pass
            else:
                if self.sender._ssrc in ssrcs:
                    self.set_estimate(bitrate)
        await self._original_handle(packet)
        if isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            for report in packet.reports:
                if report.ssrc == self.sender._ssrc:
                    self.fraction_lost = report.fraction_lost / 256.0
            rtt = getattr(self.sender, "_RTCRtpSender__rtt", None)
            if rtt is not None:
                self.rtt = rtt
                self.retransmitter.set_rtt(rtt)

    def stats(self):
        """What the session listing shows of this viewer's sending."""
        return {"rtt": self.rtt, "fraction_lost": self.fraction_lost,
                "pacing_rate": int(self.pacer.rate), "paced_packets": self.paced,
                "picture_losses": self.picture_losses,
                "nacked": self.retransmitter.counters()}
