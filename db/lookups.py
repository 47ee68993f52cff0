"""Rows by key, one statement per batch of keys: what the API's DataLoaders call.

Each function takes an open session and the keys of one DataLoader batch and returns the rows
found, keyed (absent keys are left out; the loader answers None for them). Fragments by id
are `db.graph.fragments_by_id`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from db.tables import BatchRow, ModelRow, RunRow

_B = BatchRow.__table__.c  # type: ignore[attr-defined]
_R = RunRow.__table__.c  # type: ignore[attr-defined]
_M = ModelRow.__table__.c  # type: ignore[attr-defined]


async def batches_by_id(session: Any, ids: list[int]) -> dict[int, BatchRow]:
    rows = await session.execute(sa.select(BatchRow).where(_B.id.in_(ids)))
    return {row.id: row for row in rows.scalars()}


async def runs_by_id(session: Any, ids: list[int]) -> dict[int, RunRow]:
    rows = await session.execute(sa.select(RunRow).where(_R.id.in_(ids)))
    return {row.id: row for row in rows.scalars()}


async def runs_by_batch(session: Any, ids: list[int]) -> dict[int, list[RunRow]]:
    """The runs of each batch in id order (an empty list for a batch without runs)."""
    rows = await session.execute(sa.select(RunRow).where(_R.batch_id.in_(ids)).order_by(_R.id))
    grouped: dict[int, list[RunRow]] = {key: [] for key in ids}
    for row in rows.scalars():
        grouped[row.batch_id].append(row)
    return grouped


async def models_by_name(session: Any, names: list[str]) -> dict[str, ModelRow]:
    rows = await session.execute(sa.select(ModelRow).where(_M.name.in_(names)))
    return {row.name: row for row in rows.scalars()}
