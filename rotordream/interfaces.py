"""The few contracts between RotorDream's parts.

Fakes in ``rotordream/testing.py`` are checked against these with
``zope.interface.verify.verifyObject``.
"""

from zope.interface import Attribute, Interface


class ICredentialChecker(Interface):
    """The two checks a control session makes when a client logs in over WebSocket."""

    def check_password(username, password, client=None, protocol="http"):
        """The Principal (or a Deferred of it) for correct credentials; AuthError (raised
        or as the Deferred's failure) otherwise. ``client`` is the source address,
        ``protocol`` what a wrong password counts under."""

    def check_token(token):
        """The Principal a bearer/session token belongs to; raises AuthError if invalid."""


class IStreamHub(Interface):
    """One encoded stream's fan-out (rotordream.media.hub.StreamHub), as consumers use it."""

    name = Attribute("str: 'stream1' or 'stream2'")
    latest = Attribute("the newest AccessUnit, or None before the first")
    bitrate = Attribute("int: measured bitrate over the last two seconds, bit/s")

    def subscribe(callback, replay=True):
        """Call ``callback(au)`` for every access unit (the cached GOP first with
        ``replay``); a Subscription with ``cancel()``."""

    def keyframe():
        """Deferred firing with a keyframe access unit: the cached one, or the next."""

    def request_keyframe():
        """Ask the encoder for an IDR as the next picture (thread-safe; no rate limit)."""


class IVideoPipeline(Interface):
    """The capture/encode producer: encoded streams, snapshots, counters."""

    hubs = Attribute("dict name -> rotordream.media.hub.StreamHub for 'stream1', 'stream2'")

    def snapshot(quality=None):
        """Deferred firing with JPEG bytes of the latest full-resolution frame."""

    def snap(snap_id):
        """Deferred firing with the JPEG a ``snap`` command took. KeyError when unknown
        (only the last few are kept)."""

    def stats():
        """Counters: frames captured/encoded/dropped per stream, encode ms, uptime."""

    def observe_frames(fn):
        """Call ``fn(luma, capture_time)`` in the capture thread with each stream2-size
        luma plane (numpy uint8 HxW). ``fn`` must be quick and thread-safe."""

    def histograms():
        """Latency histograms since the start (rotordream.media.capture.Buckets, seconds):
        ``{"encode_seconds": {stream: Buckets}, "capture_to_hub_seconds": Buckets}``."""


class IMotorController(Interface):
    """What ONVIF PTZ, REST and WebSocket use to drive the motors.

    Positions are degrees, velocities are -1..1 of the axis' maximum speed.
    Methods returning Deferreds fail with rotordream.motor.MotorError on a
    refused command (limit, fault, timeout).
    """

    faults = Attribute("int: times the controller went into fault since the start")

    def continuous_move(pan_velocity, tilt_velocity, timeout=None):
        """Move at a velocity until stopped or ``timeout`` seconds pass; Deferred."""

    def absolute_move(pan=None, tilt=None, speed=None):
        """Move to absolute positions (None leaves an axis); Deferred."""

    def relative_move(pan=0.0, tilt=0.0, speed=None):
        """Move by the given offsets; Deferred."""

    def stop(pan=True, tilt=True):
        """Stop the given axes; Deferred."""

    def home():
        """Go to the home position; Deferred."""

    def set_home():
        """Make the current position the home position."""

    def set_rotor(enabled=None, speed=None, direction=None):
        """Change the rotor (on/off, rpm, 'cw'/'ccw'); Deferred."""

    def status():
        """Dict: pan, tilt, pan_moving, tilt_moving, state ('idle'|'moving'|'fault'),
        rotor_enabled, rotor_rpm, connected."""

    def limits():
        """Dict: pan_min, pan_max, tilt_min, tilt_max (degrees), pan_speed, tilt_speed (deg/s)."""

    def presets():
        """List of dicts: token, name, pan, tilt."""

    def set_preset(name, token=None):
        """Store the current position as a preset; return its token."""

    def goto_preset(token, speed=None):
        """Move to a preset; Deferred. KeyError for an unknown token."""

    def remove_preset(token):
        """Delete a preset. KeyError for an unknown token."""


class IRecorder(Interface):
    """The recorder, as REST, WebSocket, RTSP playback and ONVIF events see it.

    ``origin`` names who asked (``"rest"``, ``"ws"``, ``"onvif"``): it travels with
    the state change the command reports, so every client sees who did it.
    """

    store = Attribute("rotordream.recording.store.RecordingStore: the finished recordings")
    segment = Attribute("the segment being written, or None")
    written = Attribute("int: bytes of the segments finished since the start")

    def start(name=None, duration=None, origin="recorder"):
        """Start recording; return the status dict. Raises RecorderError."""

    def stop(origin="recorder"):
        """Stop recording; return the status dict (the file is finished later)."""

    def closed():
        """Deferred firing once the segment being written, if any, is finished."""

    def pause(origin="recorder"):
        """Pause (no frames written until resume); return the status dict."""

    def resume(origin="recorder"):
        """Resume after pause; return the status dict."""

    def status():
        """Dict: recording, paused, id, duration, bytes, free."""

    def segment_size():
        """Bytes of the segment being written so far (0 when none)."""


class IWebRTC(Interface):
    """The WebRTC viewers, as the REST resources under /api/webrtc see them.

    Every call names its caller (``rotordream.webrtc.access.Caller``), which decides
    what it may see and end. Deferreds fail with ``WebRTCError`` (status, message, code).
    """

    def offer(stream, caller):
        """Deferred firing with ``{"id", "type": "offer", "sdp", "key"}`` from the camera."""

    def accept(stream, sdp, caller):
        """Deferred firing with ``{"id", "type": "answer", "sdp", "key"}`` for a viewer's
        offer."""

    def answer(session_id, sdp, caller):
        """Deferred firing with the session dict once the viewer's answer is applied
        (``session_id`` None: the caller's newest waiting offer)."""

    def switch(session_id, stream, caller):
        """Send ``stream`` to a session from its next keyframe; the session dict."""

    def visible(caller):
        """The session dicts ``caller`` may see."""

    def hang_up(session_id, caller):
        """End a session; Deferred firing when closed."""

    def counts():
        """Dict stream name -> number of WebRTC sessions."""

    def estimates():
        """The viewers' latest bandwidth estimates in bit/s (sessions that sent one)."""

    def end_resource(resource, caller):
        """End the session of a WHEP session resource; Deferred firing with its id."""

    def ice_servers():
        """RTCIceServer dicts for viewers (TURN ones with short-lived credentials)."""

    def switch_counters():
        """Dict (from, to, reason) -> stream switches so far (reason: manual, estimate,
        probe, picture_loss)."""


class IStreamServer(Interface):
    """The RTSP server, as /api/status, /api/streams and the stream URLs see it."""

    port = Attribute("the RTSP port listened on, or None before start")
    multicast = Attribute("the streams' multicast groups (rtsp.multicast.MulticastGroups: "
                          "groups by stream, hold/release) while their socket is bound, "
                          "else None")

    def sessions():
        """List of session dicts: session, stream, state, client, transport, packets, loss,
        jitter, dropped_units."""

    def counters():
        """Dict of totals: clients and slow_drops by protocol, packets by transport, and
        the sessions' latest RTCP loss fractions and jitters (seconds) as lists."""
