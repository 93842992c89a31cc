"""twistd plugin: ``twistd -n rotordream``. Imports nothing heavy until used."""

from twisted.application.service import ServiceMaker

rotordream = ServiceMaker(
    "RotorDream", "rotordream.service",
    "Camera server: REST, WebSocket, RTSP, ONVIF, recording, motors", "rotordream")
