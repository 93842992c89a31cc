"""Users, roles, permissions and the HTTP/RTSP/WebSocket authentication shared by every API."""
