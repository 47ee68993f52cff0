"""Worker heartbeats: which worker processes are alive and what each can call (queue status,
metrics and the start's pre-flight read them)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from domain.preflight import WorkerReach

# `providers` is the worker's report (domain/preflight.py `WorkerReach.to_json`); shown, its
# key variables are only those a catalog model names (`key_envs`), never the worker's others.
_SEEN = sa.text("""
SELECT worker_id, hostname, pid, started_at, last_seen_at,
       extract(epoch FROM now() - last_seen_at) AS seconds_since_seen,
       CASE WHEN jsonb_typeof(providers -> 'providers') = 'array'
            THEN ARRAY(SELECT jsonb_array_elements_text(providers -> 'providers') ORDER BY 1)
            ELSE ARRAY[]::text[] END AS providers,
       CASE WHEN jsonb_typeof(providers -> 'keyEnvs') = 'array'
            THEN ARRAY(SELECT name FROM jsonb_array_elements_text(providers -> 'keyEnvs') name
                       WHERE name IN (SELECT api_key_env FROM models
                                      WHERE api_key_env IS NOT NULL) ORDER BY 1)
            ELSE ARRAY[]::text[] END AS key_envs
FROM workers ORDER BY last_seen_at DESC, worker_id
""")

_REACH = sa.text("""
SELECT worker_id, providers FROM workers
WHERE last_seen_at >= now() - make_interval(secs => :within)
ORDER BY worker_id
""")


async def beat(session: Any, worker_id: str, hostname: str, pid: int,
               reach: WorkerReach | None = None) -> None:
    """Register the worker, or refresh its last-seen time; with `reach`, store what it can
    call (kept as it was when None)."""
    if reach is None:
        await session.execute(sa.text(
            "INSERT INTO workers (worker_id, hostname, pid) VALUES (:w, :h, :p)"
            " ON CONFLICT (worker_id) DO UPDATE SET last_seen_at = now()"),
            {"w": worker_id, "h": hostname, "p": pid})
        return
    statement = sa.text(
        "INSERT INTO workers (worker_id, hostname, pid, providers) VALUES (:w, :h, :p, :r)"
        " ON CONFLICT (worker_id) DO UPDATE SET last_seen_at = now(),"
        " providers = EXCLUDED.providers").bindparams(sa.bindparam("r", type_=JSONB))
    await session.execute(statement, {"w": worker_id, "h": hostname, "p": pid,
                                      "r": reach.to_json()})


async def forget(session: Any, worker_id: str) -> None:
    """The worker stopped cleanly."""
    await session.execute(sa.text("DELETE FROM workers WHERE worker_id = :w"),
                          {"w": worker_id})


async def seen_workers(session: Any) -> list[Any]:
    """Rows (worker_id, hostname, pid, started_at, last_seen_at, seconds_since_seen,
    providers, key_envs) of every registered worker, most recently seen first."""
    return list(await session.execute(_SEEN))


class WorkerRepository:
    """What the workers seen lately can call, for the start's pre-flight."""

    def __init__(self, session: Any) -> None:
        self.session = session

    async def reach(self, within_seconds: float) -> list[WorkerReach]:
        rows = await self.session.execute(_REACH, {"within": float(within_seconds)})
        return [WorkerReach.from_json(row.worker_id, row.providers) for row in rows]


async def connection_limits(session: Any, within_seconds: float,
                            worker_id: str) -> tuple[int, int]:
    """(the server's max_connections, the workers alive: those seen within `within_seconds`
    other than `worker_id`, plus that one)."""
    limit = (await session.execute(sa.text("SHOW max_connections"))).scalar_one()
    others = (await session.execute(sa.text(
        "SELECT count(*) FROM workers WHERE last_seen_at >= now() - make_interval(secs => :w)"
        " AND worker_id <> :me"), {"w": within_seconds, "me": worker_id})).scalar_one()
    return int(limit), int(others) + 1
