"""API keys: create (the secret is shown once), revoke, list."""

from __future__ import annotations

from typing import Any

from domain.errors import InvalidInput
from domain.ports import Ports

ROLES = ("viewer", "editor", "operator")


async def create_key(ports: Ports, name: str, role: str) -> Any:
    """A new key with `role`; the answer carries its secret, which is stored only hashed."""
    if role not in ROLES:
        raise InvalidInput.single(("role",), f"must be one of {', '.join(ROLES)}")
    label = name.strip()
    if not label:
        raise InvalidInput.single(("name",), "must not be empty")
    async with ports.uow() as uow:
        return await uow.keys.create(label, role)


async def revoke_key(ports: Ports, ident: str) -> int:
    """Revoke the active keys matching an id, prefix, name or the whole secret; returns how
    many were revoked."""
    ident = ident.strip()
    if not ident:
        raise InvalidInput.single(("key",), "must name a key")
    async with ports.uow() as uow:
        return await uow.keys.revoke(ident)


async def list_keys(ports: Ports) -> list[Any]:
    """Every key, never its secret."""
    async with ports.uow(read_only=True) as uow:
        return await uow.keys.list()
