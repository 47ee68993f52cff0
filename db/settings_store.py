"""Operator-set values kept in the `settings` table (they override environment defaults)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.tables import SettingRow

DAILY_BUDGET = "daily_budget_usd"
FRAGMENT_COST_LIMIT = "fragment_cost_limit_usd"
QUALITY_THRESHOLDS = "quality_thresholds"
QUALITY_WEIGHTS = "quality_weights"


class SettingsStore:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, key: str) -> Any | None:
        row = await self.session.get(SettingRow, key)
        return None if row is None else row.value

    async def has(self, key: str) -> bool:
        return await self.session.get(SettingRow, key) is not None

    async def put(self, key: str, value: Any, updated_by: str | None = None) -> None:
        stmt = insert(SettingRow).values(key=key, value=value, updated_by=updated_by)
        await self.session.execute(stmt.on_conflict_do_update(
            index_elements=["key"],
            set_={"value": stmt.excluded.value, "updated_by": stmt.excluded.updated_by,
                  "updated_at": sa.func.now()},
        ))
