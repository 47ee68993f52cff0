"""The durable job queue: atomic claims with leases, renewal, retries and the sweeper's queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from db.tables import JobRow

_J = JobRow.__table__.c  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    id: int
    kind: str
    run_id: int | None
    batch_id: int | None
    attempts: int
    max_attempts: int
    payload: dict[str, Any]


_CLAIM = sa.text("""
UPDATE processing_queue AS q
SET status = 'claimed', lease_owner = :owner,
    lease_expires_at = now() + make_interval(secs => :lease),
    attempts = q.attempts + 1, updated_at = now()
WHERE q.id = (
    SELECT id FROM processing_queue
    WHERE status = 'waiting' AND available_at <= now()
    ORDER BY priority DESC, created_at, id
    FOR UPDATE SKIP LOCKED
    LIMIT 1
)
RETURNING q.id, q.kind, q.run_id, q.batch_id, q.attempts, q.max_attempts, q.payload
""")

_STATUS_COUNTS = sa.text("""
SELECT priority, status, count(*) AS jobs,
       extract(epoch FROM now() - min(created_at)) AS oldest_seconds
FROM processing_queue GROUP BY priority, status ORDER BY priority DESC, status
""")


# How long after its time a delayed wake-up may still be on its way before the sweeper sends
# another one.
DELAYED_WAKEUP_GRACE_S = 2.0


class JobQueue:
    """Queue operations inside the caller's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def enqueue(self, *, kind: str, priority: int, run_id: int | None = None,
                      batch_id: int | None = None, max_attempts: int = 3,
                      payload: dict[str, Any] | None = None) -> int:
        row = JobRow(kind=kind, priority=priority, run_id=run_id, batch_id=batch_id,
                     max_attempts=max_attempts, payload=payload or {}, status="waiting")
        self.session.add(row)
        await self.session.flush()
        assert row.id is not None
        return row.id

    async def claim(self, owner: str, lease_seconds: int) -> ClaimedJob | None:
        """Take the most urgent waiting job (priority, then age) or None."""
        row = (await self.session.execute(_CLAIM, {"owner": owner, "lease": lease_seconds})
               ).first()
        if row is None:
            return None
        return ClaimedJob(row.id, row.kind, row.run_id, row.batch_id, row.attempts,
                          row.max_attempts, dict(row.payload or {}))

    async def renew(self, job_id: int, owner: str, lease_seconds: int) -> str | None:
        """Extend our lease; returns the job status, or None when the lease is no longer ours."""
        result = await self.session.execute(sa.text(
            "UPDATE processing_queue SET lease_expires_at = now() + make_interval(secs => :lease)"
            " WHERE id = :id AND lease_owner = :owner AND status = 'claimed' RETURNING status"),
            {"id": job_id, "owner": owner, "lease": lease_seconds})
        status = result.scalar_one_or_none()
        return str(status) if status is not None else None

    async def status_of(self, job_id: int) -> str | None:
        result = await self.session.execute(sa.select(_J.status).where(_J.id == job_id))
        value = result.scalar_one_or_none()
        return str(value) if value is not None else None

    async def finish(self, job_id: int, owner: str, status: str, error: str | None = None
                     ) -> bool:
        """Close a claimed job (done, failed, cancelled); False when the lease was lost."""
        result = await self.session.execute(sa.text(
            "UPDATE processing_queue SET status = :status, error_message = :error,"
            " lease_owner = NULL, lease_expires_at = NULL, updated_at = now()"
            " WHERE id = :id AND lease_owner = :owner AND status = 'claimed'"),
            {"id": job_id, "owner": owner, "status": status, "error": error})
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def release(self, job_id: int, owner: str, *, status: str = "waiting",
                      delay_seconds: float = 0, error: str | None = None,
                      payload: dict[str, Any] | None = None,
                      refund_attempt: bool = False) -> bool:
        """Give a claimed job back (retry later, wait for budget, or look again at a provider
        batch later: `refund_attempt`)."""
        # Waiting for money is not a failed try: a budget pause gives its attempt back, or a
        # few pauses would use up the retries a later transient error or dead worker needs;
        # neither is waiting for a provider's batch to finish.
        result = await self.session.execute(sa.text(
            "UPDATE processing_queue SET status = :status, lease_owner = NULL,"
            " attempts = greatest(attempts - :refund, 0),"
            " lease_expires_at = NULL, message_sent_at = NULL,"
            " available_at = now() + make_interval(secs => :delay),"
            " error_message = coalesce(:error, error_message),"
            " payload = payload || CAST(:payload AS jsonb), updated_at = now()"
            " WHERE id = :id AND lease_owner = :owner AND status = 'claimed'"),
            {"id": job_id, "owner": owner, "status": status, "delay": float(delay_seconds),
             "refund": int(status == "waiting_budget" or refund_attempt), "error": error,
             "payload": _json(payload or {})})
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def mark_sent(self, job_ids: list[int]) -> None:
        if job_ids:
            await self.session.execute(sa.update(JobRow).where(_J.id.in_(job_ids))
                                       .values(message_sent_at=sa.func.now()))

    async def cancel_for_batch(self, batch_id: int) -> list[int]:
        """Cancel every open job of a batch; returns their ids (claimed ones stop at renewal)."""
        result = await self.session.execute(sa.text(
            "UPDATE processing_queue SET status = 'cancelled', updated_at = now()"
            " WHERE batch_id = :b AND status IN ('waiting', 'claimed', 'waiting_budget')"
            " RETURNING id"), {"b": batch_id})
        return [row.id for row in result]

    async def requeue_expired(self) -> list[tuple[int, int | None]]:
        """Claimed jobs whose lease ran out (worker died): back to waiting, or failed when out
        of attempts. Returns (job id, run id) of the jobs that failed for good."""
        await self.session.execute(sa.text(
            "UPDATE processing_queue SET status = 'waiting', lease_owner = NULL,"
            " lease_expires_at = NULL, message_sent_at = NULL, updated_at = now(),"
            " error_message = 'lease expired: the worker stopped responding'"
            " WHERE status = 'claimed' AND lease_expires_at < now() AND attempts < max_attempts"))
        failed = await self.session.execute(sa.text(
            "UPDATE processing_queue SET status = 'failed', lease_owner = NULL,"
            " lease_expires_at = NULL, updated_at = now(),"
            " error_message = 'lease expired and no attempts left'"
            " WHERE status = 'claimed' AND lease_expires_at < now()"
            " AND attempts >= max_attempts RETURNING id, run_id"))
        return [(row.id, row.run_id) for row in failed]

    async def unsent(self, older_than_seconds: float) -> list[int]:
        """Waiting jobs with no message in flight (the broker lost it, or it was never sent),
        and jobs whose delayed wake-up should have claimed them a while ago (a wake-up sent
        for a later `available_at` that came and went: lost, or delivered too early)."""
        result = await self.session.execute(sa.text(
            "SELECT id FROM processing_queue WHERE status = 'waiting' AND available_at <= now()"
            " AND (message_sent_at IS NULL"
            "      OR message_sent_at < now() - make_interval(secs => :age)"
            "      OR (message_sent_at < available_at"
            "          AND available_at < now() - make_interval(secs => :grace)))"
            " ORDER BY priority DESC, created_at LIMIT 500"),
            {"age": older_than_seconds, "grace": DELAYED_WAKEUP_GRACE_S})
        return [row.id for row in result]

    async def resume_budget_waiters(self, remaining: Decimal | None) -> list[int]:
        """Jobs paused for budget whose next call now fits go back to waiting, their runs to
        pending; returns the job ids."""
        result = await self.session.execute(sa.text(
            "UPDATE processing_queue SET status = 'waiting', message_sent_at = NULL,"
            " available_at = now(), updated_at = now()"
            " WHERE status = 'waiting_budget' AND (CAST(:remaining AS numeric) IS NULL"
            "  OR coalesce((payload->>'needed_usd')::numeric, 0) <= CAST(:remaining AS numeric))"
            " RETURNING id"), {"remaining": remaining})
        resumed = [row.id for row in result]
        if resumed:  # their runs leave WAITING_BUDGET with them (lock order job → run)
            await self.session.execute(sa.text(
                "UPDATE source_processing SET status = 'pending', error_message = NULL"
                " WHERE status = 'waiting_budget' AND id IN (SELECT run_id FROM"
                " processing_queue WHERE id = ANY(:ids))"), {"ids": resumed})
        return resumed

    async def counts(self) -> list[tuple[int, str, int, datetime | None]]:
        """(priority, status, count, oldest created_at) for queue status and metrics."""
        result = await self.session.execute(sa.text(
            "SELECT priority, status, count(*) AS n, min(created_at) AS oldest"
            " FROM processing_queue WHERE status IN ('waiting', 'claimed', 'waiting_budget')"
            " GROUP BY priority, status"))
        return [(row.priority, row.status, row.n, row.oldest) for row in result]

    async def status_counts(self) -> list[Any]:
        """Rows (priority, status, jobs, oldest_seconds) over every job, highest priority first
        then by status: the queue status query."""
        return list(await self.session.execute(_STATUS_COUNTS))


def _json(value: dict[str, Any]) -> str:
    import json

    return json.dumps(value, default=str)
