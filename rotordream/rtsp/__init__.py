"""The RTSP server (our own): messages, sessions, SDP, and the Twisted adapter."""
