"""RotorDream: a camera server daemon on Twisted (REST, WebSocket, RTSP, ONVIF, WebRTC)."""

__version__ = "0.1.0"
API_VERSION = "1.2"
PRODUCT = "RotorDream"
