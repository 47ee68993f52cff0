"""Reads for the review page: a source's fragment spans in one statement, runs per model."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from db.tables import FragmentRow, RunRow
from domain.model import FINISHED_RUN

# A reader draws every span of the runs it shows at once; beyond this a page would not help.
MAX_SPANS = 20_000

ACTIVE_RUN_STATUSES = ("pending", "processing", "waiting_budget")


async def fragment_spans(session: AsyncSession, source_id: int,
                         run_ids: list[int] | None) -> list[Any]:
    """The spans of a source's fragments (of `run_ids` only, when given), in text order."""
    f = FragmentRow.__table__.c  # type: ignore[attr-defined]
    query = (sa.select(f.id, f.run_id, f.model_name, f.char_start, f.char_end, f.grounding,
                       f.verification_status, f.category)
             .where(f.source_id == source_id)
             .order_by(f.char_start.asc().nulls_last(), f.id)
             .limit(MAX_SPANS))
    if run_ids is not None:
        query = query.where(f.run_id.in_(run_ids))
    return list((await session.execute(query)).all())


async def runs_per_model(session: AsyncSession,
                         source_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Per source: one entry per model with its runs, completed and active ones."""
    r = RunRow.__table__.c  # type: ignore[attr-defined]
    rows = (await session.execute(
        sa.select(r.source_id, r.model_name,
                  sa.func.count().label("runs"),
                  sa.func.count().filter(r.status.in_(FINISHED_RUN)).label("completed"),
                  sa.func.count().filter(r.status.in_(ACTIVE_RUN_STATUSES)).label("active"))
        .where(r.source_id.in_(source_ids))
        .group_by(r.source_id, r.model_name)
        .order_by(r.source_id, r.model_name))).all()
    found: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        found[row.source_id].append({"model": row.model_name, "runs": row.runs,
                                     "completed": row.completed, "active": row.active})
    return found
