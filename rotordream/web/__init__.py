"""The HTTP side: one twisted.web Site for REST, WebSocket, ONVIF and the web page."""
