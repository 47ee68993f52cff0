"""Operator-set values kept in the `settings` table (they override environment defaults)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.tables import SettingRow
from domain.settings_keys import (  # noqa: F401  (re-exported for db/ readers)
    DAILY_BUDGET,
    FRAGMENT_COST_LIMIT,
    MIN_VERIFIED,
    QUALITY_THRESHOLDS,
    QUALITY_WEIGHTS,
    REFERENCE_MODEL,
)


class SettingsStore:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, key: str, default: Any = None) -> Any:
        """The stored value (JSON null included), or `default` when the key was never set."""
        result = await self.session.execute(
            sa.select(SettingRow.__table__.c.value).where(  # type: ignore[attr-defined]
                SettingRow.__table__.c.key == key))  # type: ignore[attr-defined]
        row = result.first()
        return default if row is None else row[0]

    async def has(self, key: str) -> bool:
        return await self.session.get(SettingRow, key) is not None

    async def put(self, key: str, value: Any, updated_by: str | None = None) -> None:
        stmt = insert(SettingRow).values(key=key, value=value, updated_by=updated_by)
        await self.session.execute(stmt.on_conflict_do_update(
            index_elements=["key"],
            set_={"value": stmt.excluded.value, "updated_by": stmt.excluded.updated_by,
                  "updated_at": sa.func.now()},
        ))
