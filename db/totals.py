"""Totals every process agrees on, read from Postgres for the metrics endpoint."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

_TOTALS_SQL = {
    "runs": "SELECT status, model_name, count(*) FROM source_processing GROUP BY 1, 2",
    "fragments": "SELECT model_name, count(*) FROM fragments GROUP BY 1",
    "cost": "SELECT model_name, coalesce(sum(actual_usd), 0) FROM budget_ledger"
            " WHERE status = 'settled' GROUP BY 1",
    "queue": "SELECT priority, status, count(*) FROM processing_queue"
             " WHERE status IN ('waiting', 'claimed', 'waiting_budget') GROUP BY 1, 2",
    "oldest": "SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)"
              " FROM processing_queue WHERE status = 'waiting'",
    "budget": "SELECT coalesce(sum(spent_usd), 0), coalesce(sum(reserved_usd), 0)"
              " FROM budget_days WHERE day = (now() AT TIME ZONE 'utc')::date",
    "workers": "SELECT worker_id, extract(epoch FROM last_seen_at) FROM workers",
}


async def read_totals(session: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Runs by status and model, fragments and settled cost by model, open jobs by priority
    and status, the oldest waiting job's age, today's budget, worker heartbeats."""
    data: dict[str, list[tuple[Any, ...]]] = {}
    for name, sql in _TOTALS_SQL.items():
        data[name] = [tuple(row) for row in await session.execute(sa.text(sql))]
    return data
