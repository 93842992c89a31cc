"""SDP for DESCRIBE (RFC 4566, RFC 6184 fmtp)."""

import base64


def profile_level_id(sps):
    """The hex profile-level-id (profile_idc, constraint flags, level_idc) from an SPS."""
    return sps[1:4].hex() if len(sps) >= 4 else "42e01f"


def describe(session_id, address, stream_name, sps, pps, width, height, fps, npt_range="now-",
             control="trackID=0", multicast=None):
    """The SDP text of one H.264 stream; ``multicast`` (a transport.Group) puts its group,
    TTL and port in ``c=`` and ``m=`` (RFC 4566 5.7) for clients that read them."""
    sprop = "%s,%s" % (base64.b64encode(sps).decode(), base64.b64encode(pps).decode())
    lines = [
        "v=0",
        "o=- %d 1 IN IP4 %s" % (session_id, address),
        "s=RotorDream %s" % stream_name,
        "c=IN IP4 %s/%d" % (multicast.address, multicast.ttl) if multicast else
        "c=IN IP4 0.0.0.0",
        "t=0 0",
        "a=tool:RotorDream",
        "a=control:*",
        "a=range:npt=%s" % npt_range,
        "m=video %d RTP/AVP 96" % (multicast.port if multicast else 0),
        "a=rtpmap:96 H264/90000",
        "a=fmtp:96 packetization-mode=1;profile-level-id=%s;sprop-parameter-sets=%s"
        % (profile_level_id(sps), sprop),
        "a=framerate:%s" % fps,
        "a=x-dimensions:%d,%d" % (width, height),
        "a=control:%s" % control,
    ]
    return ("\r\n".join(l for l in lines if l is not None) + "\r\n").encode("ascii")
