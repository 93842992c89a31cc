"""Time conversions: wall clock to NTP, capture time to RTP timestamps."""

NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900 to 1970


def ntp_timestamp(wall_time):
    """64-bit NTP timestamp of a Unix time (float seconds)."""
    seconds = int(wall_time) + NTP_EPOCH_OFFSET
    fraction = int((wall_time % 1) * (1 << 32)) & 0xFFFFFFFF
    return (seconds << 32) | fraction


def ntp_to_unix(ntp):
    """Unix time of a 64-bit NTP timestamp."""
    return (ntp >> 32) - NTP_EPOCH_OFFSET + (ntp & 0xFFFFFFFF) / (1 << 32)


def rtp_time(base, pts):
    """The 32-bit RTP timestamp of a 90 kHz ``pts`` with a random ``base`` offset."""
    return (base + pts) & 0xFFFFFFFF
