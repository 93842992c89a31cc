"""The few contracts between RotorDream's parts.

Fakes in ``rotordream/testing.py`` are checked against these with
``zope.interface.verify.verifyObject``.
"""

from zope.interface import Attribute, Interface


class IVideoPipeline(Interface):
    """The capture/encode producer: encoded streams, snapshots, counters."""

    hubs = Attribute("dict name -> rotordream.media.hub.StreamHub for 'stream1', 'stream2'")

    def snapshot(quality=None):
        """Deferred firing with JPEG bytes of the latest full-resolution frame."""

    def stats():
        """Counters: frames captured/encoded/dropped per stream, encode ms, uptime."""

    def observe_frames(fn):
        """Call ``fn(luma, capture_time)`` in the capture thread with each stream2-size
        luma plane (numpy uint8 HxW). ``fn`` must be quick and thread-safe."""


class IMotorController(Interface):
    """What ONVIF PTZ, REST and WebSocket use to drive the motors.

    Positions are degrees, velocities are -1..1 of the axis' maximum speed.
    Methods returning Deferreds fail with rotordream.motor.MotorError on a
    refused command (limit, fault, timeout).
    """

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
    """The recorder, as REST, WebSocket, RTSP playback and ONVIF events see it."""

    def start(name=None, duration=None):
        """Start recording; return the status dict. Raises RecorderError."""

    def stop():
        """Stop recording; return the status dict."""

    def pause():
        """Pause (no frames written until resume)."""

    def resume():
        """Resume after pause."""

    def status():
        """Dict: recording, paused, id, duration, bytes, free."""
