"""Global IDs: `base64("Type:pk")`; plain numeric ids are accepted too."""

from __future__ import annotations

import re

from strawberry import relay

from domain.errors import InvalidInput

# ASCII digits only: str.isdigit() also accepts "²" or "١", which int() refuses or misreads.
_PK = re.compile(r"^[0-9]{1,18}$")


def parse_id(raw: str, type_name: str, path: tuple[str, ...]) -> int:
    """Decode an input ID for `type_name`; bad or foreign IDs are field errors."""
    value = str(raw).strip()
    if _PK.match(value):
        return int(value)
    try:
        gid = relay.GlobalID.from_id(value)
    except Exception:  # malformed base64 or missing separator
        raise InvalidInput.single(path, f"is not a valid {type_name} ID") from None
    if gid.type_name != type_name:
        raise InvalidInput.single(path, f"is a {gid.type_name} ID, expected a {type_name} ID")
    if not _PK.match(gid.node_id):
        raise InvalidInput.single(path, f"is not a valid {type_name} ID")
    return int(gid.node_id)


def as_pk(raw: object) -> int:
    """A node id as a primary key, or -1 (matches nothing) when it is not one."""
    value = str(raw)
    return int(value) if _PK.match(value) else -1


def to_global(type_name: str, pk: int) -> str:
    return str(relay.GlobalID(type_name, str(pk)))
