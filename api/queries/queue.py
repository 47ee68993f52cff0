"""Queue status: jobs by priority and status, workers seen, the oldest wait, the budget."""

from __future__ import annotations

import datetime as dt

import strawberry

import api.types.enums  # noqa: F401  (registers the GraphQL enums of these domain enums)
from api.types.processing import Budget, read_budget
from db.engine import database_now
from db.jobs import JobQueue
from db.workers import seen_workers
from domain import model as m

# A worker heartbeats every 10 s: three missed beats and it is presumed gone.
WORKER_ALIVE_SECONDS = 30.0
_PRIORITY_BY_RANK = {priority.rank: priority for priority in m.ExtractionPriority}


@strawberry.type(description="How many jobs of one priority are in one status.")
class JobCount:
    priority: m.ExtractionPriority | None = strawberry.field(
        description="The source's extraction priority; null for a rank no priority has.")
    priority_rank: int = strawberry.field(description="Higher is claimed first.")
    status: m.JobStatus
    count: int
    oldest_seconds: float = strawberry.field(description="Age of the oldest of these jobs.")


@strawberry.type(description="A worker process that has sent a heartbeat.")
class WorkerSeen:
    worker_id: str
    hostname: str
    pid: int
    started_at: dt.datetime
    last_seen_at: dt.datetime
    seconds_since_seen: float
    alive: bool = strawberry.field(
        description=f"Seen within the last {WORKER_ALIVE_SECONDS:.0f} seconds.")


@strawberry.type(description="The job queue, its workers and the budget, as of `at`.")
class QueueStatus:
    at: dt.datetime
    jobs: list[JobCount] = strawberry.field(description="By priority (highest first), status.")
    waiting: int = strawberry.field(description="Jobs waiting to be claimed.")
    running: int = strawberry.field(description="Jobs claimed by a worker.")
    waiting_budget: int = strawberry.field(description="Jobs paused until the budget allows.")
    oldest_waiting_seconds: float | None = strawberry.field(
        description="Age of the oldest job waiting to be claimed; null when none waits.")
    workers: list[WorkerSeen]
    workers_alive: int
    budget: Budget


def _count(jobs: list[JobCount], status: m.JobStatus) -> int:
    return sum(job.count for job in jobs if job.status == status)


async def read_queue_status(info: strawberry.Info) -> QueueStatus:
    """The queue status now, from PostgreSQL."""
    async with info.context.runtime.read() as session:
        at = await database_now(session)
        jobs = [JobCount(priority=_PRIORITY_BY_RANK.get(row.priority),
                         priority_rank=row.priority, status=m.JobStatus(row.status),
                         count=row.jobs, oldest_seconds=round(float(row.oldest_seconds), 3))
                for row in await JobQueue(session).status_counts()]
        workers = [WorkerSeen(worker_id=row.worker_id, hostname=row.hostname, pid=row.pid,
                              started_at=row.started_at, last_seen_at=row.last_seen_at,
                              seconds_since_seen=round(float(row.seconds_since_seen), 3),
                              alive=float(row.seconds_since_seen) <= WORKER_ALIVE_SECONDS)
                   for row in await seen_workers(session)]
    waiting = [job.oldest_seconds for job in jobs if job.status == m.JobStatus.WAITING]
    return QueueStatus(
        at=at, jobs=jobs, waiting=_count(jobs, m.JobStatus.WAITING),
        running=_count(jobs, m.JobStatus.CLAIMED),
        waiting_budget=_count(jobs, m.JobStatus.WAITING_BUDGET),
        oldest_waiting_seconds=max(waiting) if waiting else None,
        workers=workers, workers_alive=sum(1 for w in workers if w.alive),
        budget=await read_budget(info))


@strawberry.type
class QueueQueries:
    @strawberry.field(description="Jobs per priority and status, workers seen, the oldest "
                                  "waiting job's age and the budget.")
    async def queue_status(self, info: strawberry.Info) -> QueueStatus:
        return await read_queue_status(info)
