"""The device's WS-Discovery identity, kept in the state dir across restarts.

The endpoint address (``urn:uuid:``) must never change, or every NVR that
added the camera sees a new device. The InstanceId of AppSequence must grow
with each start and MetadataVersion with each change of scopes, so both are
counted here too.
"""

import json
import os
import uuid
from dataclasses import dataclass, replace

from twisted.logger import Logger

from rotordream.fsutil import atomic_write, keep_corrupt_copy

log = Logger()

IDENTITY_FILE = "discovery.json"


@dataclass(frozen=True)
class Identity:
    """Endpoint address, start counter (AppSequence InstanceId) and metadata version."""

    address: str
    instance_id: int = 1
    metadata_version: int = 1


def _valid(data):
    try:
        address = data["address"]
        if not address.startswith("urn:uuid:"):
            return None
        uuid.UUID(address[len("urn:uuid:"):])
        instance = int(data.get("instance_id", 0))
        version = int(data.get("metadata_version", 1))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    if not (0 <= instance < 2 ** 32 and 1 <= version < 2 ** 32):
        return None
    return Identity(address, instance, version)


def load(state_dir):
    """Read the identity (a new one if missing or unreadable) and count this start; save it."""
    path = os.path.join(state_dir, IDENTITY_FILE)
    identity = None
    try:
        with open(path, "rb") as f:
            identity = _valid(json.loads(f.read()))
        if identity is None:
            keep_corrupt_copy(path, log)
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        keep_corrupt_copy(path, log)
    if identity is None:
        identity = Identity(uuid.uuid4().urn, 0, 1)
    identity = replace(identity, instance_id=(identity.instance_id + 1) % 2 ** 32)
    save(state_dir, identity)
    return identity


def save(state_dir, identity):
    """Write ``identity`` to the state dir atomically."""
    data = {"address": identity.address, "instance_id": identity.instance_id,
            "metadata_version": identity.metadata_version}
    atomic_write(os.path.join(state_dir, IDENTITY_FILE),
                 (json.dumps(data, indent=1) + "\n").encode())
