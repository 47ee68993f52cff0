"""Strategy plan state kept on batches (their `config` and `decisions`), in PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from db.performance import plan_samples
from domain.optimizer import Candidate


class StrategyRepository:
    """Reads and writes of plans, inside the caller's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_plan(self, group_id: str, source_type: str) -> None:
        """Serialise the steps of one plan until this transaction ends."""
        await self.session.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                                   {"k": f"mmos.strategy:{group_id}:{source_type}"})

    async def step_siblings(self, group_id: str, source_type: str, step: int) -> list[Any]:
        """The batches of one step of a plan: id, status, decisions."""
        rows = await self.session.execute(sa.text("""
            SELECT id, status, decisions FROM processing_batches
            WHERE group_id = :g AND config -> 'plan' ->> 'sourceType' = :t
              AND (config ->> 'step')::int = :n ORDER BY id"""),
            {"g": group_id, "t": source_type, "n": step})
        return list(rows.all())

    async def record_decision(self, batch_ids: Sequence[int], record: dict[str, Any]) -> None:
        """Append one decision to the decisions of these batches."""
        await self.session.execute(sa.text(
            "UPDATE processing_batches SET decisions = decisions || CAST(:d AS jsonb)"
            " WHERE id = ANY(:ids)"),
            {"d": json.dumps([record], default=str), "ids": list(batch_ids)})

    async def stalled_steps(self, limit: int) -> list[int]:
        """One batch of each ended, non-final plan step that has no decision yet."""
        rows = await self.session.execute(sa.text("""
            SELECT min(b.id) FROM processing_batches b
            WHERE b.strategy IS NOT NULL AND b.config ? 'plan'
              AND NOT coalesce((b.config ->> 'final')::boolean, false)
              AND b.status IN ('completed', 'failed', 'cancelled')
              AND NOT EXISTS (
                SELECT 1 FROM processing_batches o
                WHERE o.group_id = b.group_id
                  AND o.config -> 'plan' ->> 'sourceType' = b.config -> 'plan' ->> 'sourceType'
                  AND o.config ->> 'step' = b.config ->> 'step'
                  AND o.decisions @> jsonb_build_array(jsonb_build_object(
                        'afterStep', (b.config ->> 'step')::int)))
            GROUP BY b.group_id, b.config -> 'plan' ->> 'sourceType', b.config ->> 'step'
            LIMIT :n"""), {"n": limit})
        return [int(row[0]) for row in rows]

    async def unmeasured_samples(self, source_ids: Sequence[int]) -> list[int]:
        """Sources among these with a completed run that has no measurement yet."""
        rows = await self.session.execute(sa.text("""
            SELECT DISTINCT r.source_id FROM source_processing r
            LEFT JOIN model_performance mp ON mp.run_id = r.id
            WHERE r.source_id = ANY(:ids) AND mp.id IS NULL
              AND r.status IN ('completed', 'completed_with_errors')"""),
            {"ids": list(source_ids)})
        return [int(source_id) for (source_id,) in rows.all()]

    async def plan_samples(self, group_id: str, source_type: str, sample_ids: Sequence[int]
                           ) -> tuple[list[Candidate], dict[str, frozenset[int]]]:
        """What the plan's models measured on its sample, and what each completed."""
        return await plan_samples(self.session, group_id, source_type, sample_ids)


__all__ = ["StrategyRepository"]
