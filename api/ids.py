"""Global IDs: `base64("Type:pk")`; plain numeric ids are accepted too."""

from __future__ import annotations

from strawberry import relay

from domain.errors import InvalidInput


def parse_id(raw: str, type_name: str, path: tuple[str, ...]) -> int:
    """Decode an input ID for `type_name`; bad or foreign IDs are field errors."""
    value = str(raw).strip()
    if value.isdigit() and len(value) < 19:
        return int(value)
    try:
        gid = relay.GlobalID.from_id(value)
    except Exception:  # malformed base64 or missing separator
        raise InvalidInput.single(path, f"is not a valid {type_name} ID") from None
    if gid.type_name != type_name:
        raise InvalidInput.single(path, f"is a {gid.type_name} ID, expected a {type_name} ID")
    if not gid.node_id.isdigit() or len(gid.node_id) >= 19:
        raise InvalidInput.single(path, f"is not a valid {type_name} ID")
    return int(gid.node_id)


def to_global(type_name: str, pk: int) -> str:
    return str(relay.GlobalID(type_name, str(pk)))
