"""WS-Discovery: the camera announces itself and answers ONVIF Probes on UDP 3702.

``message`` is the pure wire format, ``protocol`` the Twisted socket adapter,
``service`` the Target Service policy and ``build_discovery_service(...)``.
"""
