"""ONVIF Profile S: SOAP core, WS-Security, Device, Media, PTZ, Imaging (issue 8)."""
