"""Worker heartbeats: which worker processes are alive (queue status and metrics read them)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

_SEEN = sa.text("""
SELECT worker_id, hostname, pid, started_at, last_seen_at,
       extract(epoch FROM now() - last_seen_at) AS seconds_since_seen
FROM workers ORDER BY last_seen_at DESC, worker_id
""")


async def beat(session: Any, worker_id: str, hostname: str, pid: int) -> None:
    """Register the worker, or refresh its last-seen time."""
    await session.execute(sa.text(
        "INSERT INTO workers (worker_id, hostname, pid) VALUES (:w, :h, :p)"
        " ON CONFLICT (worker_id) DO UPDATE SET last_seen_at = now()"),
        {"w": worker_id, "h": hostname, "p": pid})


async def forget(session: Any, worker_id: str) -> None:
    """The worker stopped cleanly."""
    await session.execute(sa.text("DELETE FROM workers WHERE worker_id = :w"),
                          {"w": worker_id})


async def seen_workers(session: Any) -> list[Any]:
    """Rows (worker_id, hostname, pid, started_at, last_seen_at, seconds_since_seen) of every
    registered worker, most recently seen first."""
    return list(await session.execute(_SEEN))
