"""Roles and the permissions each grants; every API checks these same names.

State keys (rotordream/state.py) name the permission that reads and writes
them; REST endpoints, RTSP, WebSocket and ONVIF operations name theirs.
"""

from dataclasses import dataclass, field

# Permission names. Kept as plain strings so key declarations stay readable.
STATE_READ = "state.read"            # read ordinary camera state
CAMERA_CONTROL = "camera.control"    # image settings, lights, resolution
MOTOR_CONTROL = "motor.control"      # rotor, pan/tilt
RECORDING_CONTROL = "recording.control"  # start/stop/pause recording
SNAPSHOT = "snapshot.take"           # trigger a snapshot (snap key)
SNAPSHOT_READ = "snapshot.read"      # fetch /api/snapshot
STREAM_WATCH = "stream.watch"        # RTSP / WebRTC viewing
RECORDINGS_READ = "recordings.read"  # list and download recordings
RECORDINGS_DELETE = "recordings.delete"
STATUS_READ = "status.read"          # /api/status, /api/streams, camera status
SYSTEM_ADMIN = "system.admin"        # security and system settings, reboot
USERS_ADMIN = "users.admin"          # user management

ALL_PERMISSIONS = frozenset({
    STATE_READ, CAMERA_CONTROL, MOTOR_CONTROL, RECORDING_CONTROL, SNAPSHOT,
    SNAPSHOT_READ, STREAM_WATCH, RECORDINGS_READ, RECORDINGS_DELETE,
    STATUS_READ, SYSTEM_ADMIN, USERS_ADMIN,
})

_VIEWER = frozenset({STATE_READ, SNAPSHOT_READ, STREAM_WATCH, RECORDINGS_READ, STATUS_READ})
_OPERATOR = _VIEWER | {CAMERA_CONTROL, MOTOR_CONTROL, RECORDING_CONTROL, SNAPSHOT, RECORDINGS_DELETE}

ROLE_PERMISSIONS = {
    "admin": ALL_PERMISSIONS,
    "operator": frozenset(_OPERATOR),
    "viewer": _VIEWER,
    "guest": frozenset(),
}

# Every role name, highest first.
ROLES = ("admin", "operator", "viewer", "guest")


def permissions_for(role):
    """The permission set of a role name; unknown roles get nothing."""
    return ROLE_PERMISSIONS.get(role, frozenset())


@dataclass(frozen=True)
class Principal:
    """Who is making a request: a user (or anonymous) and what they may do."""

    name: str
    role: str
    authenticated: bool = True
    permissions: frozenset = field(default=None)

    def __post_init__(self):
        if self.permissions is None:
            object.__setattr__(self, "permissions", permissions_for(self.role))

    def can(self, permission):
        """True when this principal holds ``permission`` (None means public)."""
        return permission is None or permission in self.permissions


def anonymous(role="viewer"):
    """The principal of a client that sent no credentials."""
    return Principal(name="anonymous", role=role, authenticated=False)


SYSTEM = Principal(name="system", role="admin")
"""The daemon itself (pipeline, recorder, motor service) when it changes state."""
