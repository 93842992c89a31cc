"""The per-viewer rules of :mod:`.pacing` applied to one aiortc sender.

aiortc sends a frame's packets back to back, answers every NACK from its
history and, for pre-encoded packets, ignores PLI, FIR and the estimate. It
offers no hooks, so three of the sender's own methods are wrapped:

- the DTLS transport's ``_send_rtp``: every RTP packet (not RTCP) waits for its
  turn in the :class:`~.pacing.Pacer`; originals are recorded for the
  :class:`~.pacing.Retransmitter`;
- the sender's ``_retransmit``: a NACKed packet goes again only if allowed;
- the sender's ``_handle_rtcp_packet``: REMB feeds the estimate, receiver
  reports the RTT and loss, NACKs the loss too, PLI/FIR restart the viewer at the
  next keyframe (and ask for a forced IDR only as often as the shared
  :class:`~.pacing.KeyframeRequests` allows).

With transport-cc negotiated (:meth:`SenderControl.use_transport_cc`), every RTP
packet (media, RTX, padding) gets the connection's next transport-wide sequence
number as it leaves the pacer, and the DTLS transport's ``_handle_rtcp_data`` is
wrapped too: aiortc parses RTPFB FMT=15 as if it were a NACK and drops what it
says, so the feedback is read from the raw datagram first (:mod:`.twcc`). Its
estimate then wins over REMB.

A probe (:mod:`.switching`) pads: copies of recent packets sent again as RTX
(which the receiver discards, but counts), stamped with the time they leave so
the receiver's delay estimate sees them as new traffic.

``now`` is the reactor's clock (``clock.seconds``); waiting is the asyncio
loop's, which runs under the reactor.
"""

import asyncio
import copy
import struct

from aiortc import clock as ntp
from aiortc.rtcrtpsender import wrap_rtx
from aiortc.rtp import (RTCP_PSFB_APP, RTCP_PSFB_FIR, RTCP_PSFB_PLI, RTCP_RTPFB_NACK,
                        RtcpPsfbPacket, RtcpRrPacket, RtcpRtpfbPacket, RtcpSrPacket, is_rtcp,
                        unpack_remb_fci)
from aiortc.utils import uint16_add

from rotordream.webrtc import twcc
from rotordream.webrtc.pacing import Pacer, Retransmitter

MIN_WAIT = 0.001   # shorter waits are not worth a timer: the burst allowance covers them
TWCC_FRESH = 2.0   # seconds a transport-cc estimate outranks REMB after its last feedback
REMB, TRANSPORT_CC = "remb", "transport-cc"


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
        self.padded = 0
        self._sent_lately = 0     # media packets since the last loss reading
        self._nacked_lately = 0   # of them NACKed
        self._padding = None      # the task sending padding
        self.padding_hurt = False  # a NACK came while padding (read by the switcher)
        self._original_handle = sender._handle_rtcp_packet
        self._original_retransmit = sender._retransmit
        sender._handle_rtcp_packet = self.handle_rtcp
        sender._retransmit = self.retransmit
        self._transport = None
        self.estimate_source = None   # where the last estimate used came from
        self.remb = None              # the last REMB, bit/s (kept when transport-cc wins)
        self.twcc = None              # the twcc.Estimator, when transport-cc is negotiated
        self.twcc_id = None           # its header extension id
        self.twcc_malformed = 0
        self._twcc_seq = 0            # the connection's transport-wide sequence number
        self._twcc_at = None          # when the last transport-cc estimate came

    def use_transport_cc(self, ext_id, estimator=None):
        """Stamp transport-wide sequence numbers in header extension ``ext_id`` and take
        the estimate from the feedback (one counter per connection: one sender each)."""
        self.twcc_id = ext_id
        self.twcc = estimator or twcc.Estimator()

    def attach_transport(self, transport):
        """Pace what ``transport`` (the session's RTCDtlsTransport) sends as RTP."""
        if self._transport is transport:
            return
        self._transport = transport
        original = transport._send_rtp
        ssrc = self.sender._ssrc
        original_rtcp = getattr(transport, "_handle_rtcp_data", None)

        async def received_rtcp(data):
            if self.twcc is not None:
                for packet in twcc.feedback_packets(data):
                    self.transport_feedback(packet)
            return await original_rtcp(data)
        if original_rtcp is not None:
            transport._handle_rtcp_data = received_rtcp

        async def send(data):
            if is_rtcp(data):
                return await original(data)
            now = self.now()
            if len(data) >= 12 and struct.unpack_from("!I", data, 8)[0] == ssrc:
                self._sent_lately += 1
                self.retransmitter.sent(struct.unpack_from("!H", data, 2)[0], len(data), now)
            wait = self.pacer.send_at(len(data), now) - now
            if wait >= MIN_WAIT:
                self.paced += 1
                await asyncio.sleep(wait)
            if self.twcc_id is not None:
                seq, self._twcc_seq = self._twcc_seq, (self._twcc_seq + 1) & 0xFFFF
                data = twcc.stamp(data, self.twcc_id, seq)
                self.twcc.sent(seq, len(data), self.now())
            return await original(data)
        transport._send_rtp = send

    def transport_feedback(self, packet):
        """One transport-cc feedback packet (bytes) from the viewer."""
        try:
            feedback = twcc.parse_feedback(packet)
        except twcc.FeedbackError:
            self.twcc_malformed += 1
            return
        now = self.now()
        bitrate = self.twcc.feedback(feedback, now)
        if bitrate is not None:
            self._twcc_at = now
            self.set_estimate(int(bitrate), TRANSPORT_CC)

    def set_estimate(self, bitrate, source=REMB):
        """A new bandwidth estimate for this viewer, bit/s, from ``source``."""
        self.estimate_source = source
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
        if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            self._nacked_lately += len(packet.lost)
            if self._padding is not None and not self._padding.done():
                # The viewer lost media while padding: the probe overran its link.
                self._padding.cancel()
                self.padding_hurt = True
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                pass
            else:
                if self.sender._ssrc in ssrcs:
                    self.remb = bitrate
                    if self._twcc_at is None or self.now() - self._twcc_at > TWCC_FRESH:
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

    def loss(self):
        """The loss lately: the larger of the last receiver report's fraction and the
        share of packets NACKed since the previous call."""
        nacked = self._nacked_lately / self._sent_lately if self._sent_lately else 0.0
        self._sent_lately = self._nacked_lately = 0
        return max(self.fraction_lost, min(1.0, nacked))

    def hurt(self):
        """True once after the viewer NACKed media while padding was being sent."""
        hurt, self.padding_hurt = self.padding_hurt, False
        return hurt

    def pad(self, bitrate, media_rate, seconds):
        """Send about ``seconds`` worth of padding so that the viewer receives ``bitrate``
        in all while the stream brings ``media_rate``; paced like the rest."""
        self.pacer.set_media_rate(max(bitrate, media_rate))
        count = int(max(0, bitrate - media_rate) * seconds / 8 / 1200)
        if count and (self._padding is None or self._padding.done()) and \
                self._transport is not None:
            self._padding = asyncio.ensure_future(self._send_padding(count))

    async def _send_padding(self, count):
        sender = self.sender
        history = getattr(sender, "_RTCRtpSender__rtp_history", None)
        payload_type = getattr(sender, "_RTCRtpSender__rtx_payload_type", None)
        extensions_map = getattr(sender, "_RTCRtpSender__rtp_header_extensions_map", None)
        if not history or payload_type is None or extensions_map is None:
            return   # no RTX negotiated: no way to pad without disturbing the picture
        packets = sorted(history.values(), key=lambda p: p.sequence_number)[-32:]
        for i in range(count):
            original = packets[i % len(packets)]
            seq = sender._RTCRtpSender__rtx_sequence_number
            sender._RTCRtpSender__rtx_sequence_number = uint16_add(seq, 1)
            rtx = wrap_rtx(original, payload_type, seq, sender._rtx_ssrc)
            rtx.extensions = copy.copy(original.extensions)
            rtx.extensions.abs_send_time = (ntp.current_ntp_time() >> 14) & 0x00FFFFFF
            self.padded += 1
            try:
                await self._transport._send_rtp(rtx.serialize(extensions_map))
            except ConnectionError:
                return

    def stats(self):
        """What the session listing shows of this viewer's sending."""
        return {"rtt": self.rtt, "fraction_lost": self.fraction_lost,
                "pacing_rate": int(self.pacer.rate), "paced_packets": self.paced,
                "picture_losses": self.picture_losses, "padding_packets": self.padded,
                "nacked": self.retransmitter.counters(), "estimate_source": self.estimate_source,
                "remb": self.remb, "transport_cc": None if self.twcc is None else
                dict(self.twcc.stats(), malformed=self.twcc_malformed,
                     extension_id=self.twcc_id)}
