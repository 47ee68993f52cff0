"""API keys: random secrets shown once, stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from db.tables import ApiKeyRow

ROLES = ("viewer", "editor", "operator")
KEY_PREFIX = "mmos"
# `last_used_at` is refreshed only when older than this (a minute is precise enough for it).
LAST_USED_RESOLUTION_SECONDS = 60

_K = ApiKeyRow.__table__.c  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class IssuedKey:
    id: int
    name: str
    role: str
    secret: str  # shown once, never stored


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: int
    name: str
    prefix: str
    role: str
    created_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def split_key(token: str) -> tuple[str, str] | None:
    """`mmos_<prefix>_<secret>` → (prefix, whole token); None when malformed."""
    parts = token.strip().split("_")
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 8 or len(parts[2]) < 32:
        return None
    return parts[1], token.strip()


class KeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, name: str, role: str) -> IssuedKey:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        prefix = secrets.token_hex(4)
        token = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32).replace('_', 'x')}"
        row = ApiKeyRow(name=name[:100], prefix=prefix, key_hash=_digest(token), role=role)
        self.session.add(row)
        await self.session.flush()
        return IssuedKey(row.id or 0, row.name, role, token)

    async def revoke(self, ident: str) -> int:
        """Revoke by id, prefix, name or the whole secret; returns how many keys were revoked.

        A secret (people paste the leaked token) revokes its key only when it verifies as
        `verify` checks it: its prefix's key, with a matching hash (compared in constant time).
        """
        condition = sa.or_(_K.prefix == ident, _K.name == ident)
        if ident.isascii() and ident.isdigit() and len(ident) < 19:
            condition = sa.or_(condition, _K.id == int(ident))
        secret_of = await self._active_row(ident)
        if secret_of is not None:
            condition = sa.or_(condition, _K.id == secret_of.id)
        result = await self.session.execute(sa.update(ApiKeyRow).where(
            condition, _K.revoked_at.is_(None)).values(revoked_at=sa.func.now()))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def _active_row(self, token: str) -> ApiKeyRow | None:
        """The active key whose whole secret is `token` (constant-time hash comparison)."""
        parsed = split_key(token)
        if parsed is None:
            return None
        prefix, whole = parsed
        row = (await self.session.execute(sa.select(ApiKeyRow).where(
            _K.prefix == prefix, _K.revoked_at.is_(None)))).scalar_one_or_none()
        if row is None or not hmac.compare_digest(row.key_hash, _digest(whole)):
            return None
        return row

    async def list(self) -> list[KeyInfo]:
        rows = await self.session.execute(sa.select(ApiKeyRow).order_by(_K.id))
        return [KeyInfo(r.id or 0, r.name, r.prefix, r.role, r.created_at, r.revoked_at,
                        r.last_used_at) for r in rows.scalars()]

    async def verify(self, token: str) -> KeyInfo | None:
        """The active key matching `token` (constant-time hash comparison), else None.

        Verified on every call (a revocation applies to the next request); `last_used_at`
        is written at most once a minute per key (LAST_USED_RESOLUTION_SECONDS): a busy key
        would otherwise write, and lock, its row on every request."""
        row = await self._active_row(token)
        if row is None:
            return None
        info = KeyInfo(row.id or 0, row.name, row.prefix, row.role, row.created_at,
                       row.revoked_at, row.last_used_at)
        await self.session.execute(sa.text(
            "UPDATE api_keys SET last_used_at = now() WHERE id = :id AND (last_used_at IS NULL"
            " OR last_used_at < now() - make_interval(secs => :resolution))"),
            {"id": row.id, "resolution": LAST_USED_RESOLUTION_SECONDS})
        return info
