"""What the forecast reads and keeps: completed runs' usage per model and source type, the
live workers, and each batch's forecast (processing_batches.forecast) with the actual cost
and time of its runs for `comparison`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from domain.forecast import History, Usage

# Reprocessed runs carry their original's usage (no call was made): left out, as are runs
# that did not complete. Latency counts interactive calls only (a batch API answers in hours).
_HISTORY = sa.text("""
    SELECT r.model_name, s.source_type,
           sum(r.input_tokens) AS input_tokens, sum(r.output_tokens) AS output_tokens,
           coalesce(sum(r.llm_calls) FILTER (WHERE b.mode = 'interactive'), 0) AS llm_calls,
           coalesce(sum(r.latency_ms) FILTER (WHERE b.mode = 'interactive'), 0) AS latency_ms,
           count(*) AS runs
    FROM source_processing r
    JOIN sources s ON s.id = r.source_id
    JOIN processing_batches b ON b.id = r.batch_id
    WHERE r.status IN ('completed', 'completed_with_errors')
      AND r.reprocessed_from_id IS NULL AND r.input_tokens > 0
      AND (CAST(:models AS text[]) IS NULL OR r.model_name = ANY(CAST(:models AS text[])))
    GROUP BY r.model_name, s.source_type""")

_LIVE = sa.text("""
    SELECT count(*) FROM workers
    WHERE last_seen_at > now() - make_interval(secs => :within)""")

_CHECKS = sa.text("""
    SELECT r.id, r.source_id, r.status, r.cost_usd,
           extract(epoch FROM r.completed_at - r.started_at) AS seconds, b.forecast
    FROM source_processing r JOIN processing_batches b ON b.id = r.batch_id
    WHERE r.id = ANY(CAST(:ids AS bigint[])) AND b.forecast IS NOT NULL""")


class ForecastRepository:
    """Reads and writes inside the caller's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def history(self, model_names: Sequence[str] | None = None) -> History:
        found = await self.session.execute(
            _HISTORY, {"models": None if model_names is None else list(model_names)})
        return History({(row.model_name, row.source_type): Usage(
            int(row.input_tokens), int(row.output_tokens), int(row.llm_calls),
            int(row.latency_ms), int(row.runs)) for row in found})

    async def live_workers(self, within_seconds: int = 30) -> int:
        return int((await self.session.execute(_LIVE, {"within": within_seconds})).scalar_one())

    async def batch_sources(self, batch_ids: Sequence[int]) -> dict[int, list[int]]:
        found: dict[int, list[int]] = {bid: [] for bid in batch_ids}
        rows = await self.session.execute(sa.text(
            "SELECT batch_id, source_id FROM source_processing"
            " WHERE batch_id = ANY(CAST(:ids AS bigint[])) ORDER BY id"),
            {"ids": list(batch_ids)})
        for row in rows:
            found[row.batch_id].append(row.source_id)
        return found

    async def store(self, batch_id: int, forecast: dict[str, Any]) -> None:
        await self.session.execute(
            sa.text("UPDATE processing_batches SET forecast = CAST(:f AS jsonb) WHERE id = :id"),
            {"f": _json(forecast), "id": batch_id})


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


async def forecast_checks(session: Any, run_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Forecast against actual of each run whose batch kept a forecast: the source's share of
    the batch forecast, the run's cost, and its seconds from start to end (None unfinished)."""
    if not run_ids:
        return {}
    checks: dict[int, dict[str, Any]] = {}
    for row in await session.execute(_CHECKS, {"ids": list(run_ids)}):
        part = (row.forecast.get("sources") or {}).get(str(row.source_id))
        if part is None:
            continue
        finished = row.status in ("completed", "completed_with_errors")
        checks[row.id] = {
            "expected_cost_usd": _decimal(part.get("expectedCostUsd")),
            "worst_cost_usd": _decimal(part.get("worstCostUsd")),
            "expected_seconds": part.get("expectedSeconds"),
            "actual_cost_usd": Decimal(row.cost_usd) if finished else None,
            "actual_seconds": None if not finished or row.seconds is None
            else float(row.seconds)}
    return checks


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))
