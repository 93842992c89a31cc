"""RTP/RTCP packets, H.264 packetization (RFC 6184) and the NTP<->RTP clock."""
