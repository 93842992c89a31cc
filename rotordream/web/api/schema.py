"""What the REST resources declare about themselves for the OpenAPI document.

Each :class:`~rotordream.web.api.base.ApiResource` lists its :class:`Route` s in
``routes`` (and the classes it makes per request in ``child_classes``);
:mod:`rotordream.web.api.openapi` walks the mounted tree and builds the document
from them. The request body schemas shared by several resources live here.
"""

from typing import NamedTuple, Optional

from rotordream.state import KEYS

PUBLIC = True           # no credentials needed
VIEWER = "viewer"       # open to anonymous clients while [auth] anonymous is viewer (default)
AUTHENTICATED = False   # credentials required

ANY = {}
STR = {"type": "string"}


class Route(NamedTuple):
    """One operation: path, method, summary, access, body schema, success status, media."""

    path: str
    method: str
    summary: str
    access: object = AUTHENTICATED
    body: Optional[dict] = None
    status: int = 200
    media: Optional[str] = None
    query: Optional[dict] = None    # query parameter name -> schema


def value_schema(spec):
    """The JSON schema of one state key's values (from its declaration in state.py)."""
    if spec.kind == "int":
        return {"type": "integer", "minimum": spec.minimum, "maximum": spec.maximum}
    if spec.kind == "float":
        return {"type": "number", "minimum": spec.minimum, "maximum": spec.maximum}
    if spec.kind in ("bool", "trigger"):
        return {"type": "boolean"}
    if spec.kind == "choice":
        return {"enum": list(spec.choices)}
    if spec.kind == "record":
        return {"anyOf": [{"type": "boolean"},
                          {"enum": ["on", "off", "pause", "pause_release"]}]}
    return {"type": "string", "maxLength": spec.max_length, "pattern": "^[^\\x00-\\x1f]*$"}


SETTINGS_BODY = {
    "type": "object", "minProperties": 1, "additionalProperties": False,
    "description": "keys of rotordream/state.py and their new values (all or nothing)",
    "properties": {spec.name: value_schema(spec) for spec in KEYS if spec.writable},
}
CREDENTIALS = {"type": "object", "required": ["username", "password"],
               "properties": {"username": STR, "password": STR}}
_NAME = {"type": "string", "pattern": "^[A-Za-z0-9_.@-]{1,32}$"}
_PASS = {"type": "string", "minLength": 8, "maxLength": 128, "pattern": "^[^\\x00-\\x1f]*$"}
_ROLES = {"enum": ["admin", "operator", "viewer", "guest"]}
NEW_USER = {"type": "object", "required": ["username", "password", "role"],
            "properties": {"username": _NAME, "password": _PASS, "role": _ROLES}}
ROLE = {"type": "object", "required": ["role"], "properties": {"role": _ROLES}}
PASSWORD = {"type": "object", "required": ["password"],
            "properties": {"password": _PASS, "current": STR}}
