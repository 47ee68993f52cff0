"""Queue status: jobs by priority and status, workers seen, the oldest wait, the budget."""

from __future__ import annotations

import datetime as dt
from typing import Any

import strawberry

import api.types.enums  # noqa: F401  (registers the GraphQL enums of these domain enums)
from api.types.processing import Budget, read_budget
from db.catalog import ModelRepository
from db.engine import database_now
from db.jobs import JobQueue
from db.workers import seen_workers
from domain import model as m
from domain.preflight import ALIVE_SECONDS

# A worker heartbeats every 10 s: three missed beats and it is presumed gone.
WORKER_ALIVE_SECONDS = ALIVE_SECONDS
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
    providers: list[str] = strawberry.field(
        description="The LiteLLM providers whose keys this worker holds (LiteLLM's "
                    "`validate_environment`); a start refuses a model whose provider a live "
                    "worker lacks.")
    key_envs: list[str] = strawberry.field(
        description="The model key variables (catalog `apiKeyEnv` names) set on this worker.")


@strawberry.type(description="A model with limits (rpm, tpm, maxConcurrency): its current "
                                    "rate against them, shared by every worker.")
class ModelRateStatus:
    model: str
    rpm: int | None = strawberry.field(description="Requests per minute allowed; null: none.")
    tpm: int | None = strawberry.field(description="Input + output tokens per minute allowed.")
    max_concurrency: int | None
    requests_last_minute: int = strawberry.field(
        description="Calls admitted in the last 60 seconds.")
    tokens_last_minute: int = strawberry.field(
        description="Tokens of the last 60 seconds' calls: the actual usage once a call has "
                    "answered, its reservation (prompt + max_tokens) while it is in flight.")
    tokens_available: float | None = strawberry.field(
        description="The token bucket's fill now (it holds 10 s of tpm); null without tpm.")
    in_flight: int = strawberry.field(description="Concurrency leases held now.")
    slowed_until: dt.datetime | None = strawberry.field(
        description="Set when a 429 or the provider's x-ratelimit-* headers asked every "
                    "worker to hold back this model's calls until then; null when not slowed.")


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
    model_rates: list[ModelRateStatus] = strawberry.field(
        description="Each model with limits: its rate in the last minute against them.")


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
                              alive=float(row.seconds_since_seen) <= WORKER_ALIVE_SECONDS,
                              providers=list(row.providers), key_envs=list(row.key_envs))
                   for row in await seen_workers(session)]
        limited = [row for row in await ModelRepository(session).list()
                   if row.rpm or row.tpm or row.max_concurrency]
    waiting = [job.oldest_seconds for job in jobs if job.status == m.JobStatus.WAITING]
    return QueueStatus(
        at=at, jobs=jobs, waiting=_count(jobs, m.JobStatus.WAITING),
        running=_count(jobs, m.JobStatus.CLAIMED),
        waiting_budget=_count(jobs, m.JobStatus.WAITING_BUDGET),
        oldest_waiting_seconds=max(waiting) if waiting else None,
        workers=workers, workers_alive=sum(1 for w in workers if w.alive),
        budget=await read_budget(info), model_rates=await _model_rates(info, limited, at))


async def _model_rates(info: strawberry.Info, rows: list[Any],
                       at: dt.datetime) -> list[ModelRateStatus]:
    """Each limited model's state in the shared limiter (Redis, or this process's)."""
    if not rows:
        return []
    from workers.limits import Limits, limiter_for

    limiter = limiter_for(info.context.runtime.settings.redis_url)
    rates = []
    for row in rows:
        rate = await limiter.status(row.name, Limits(row.rpm, row.tpm, row.max_concurrency))
        rates.append(ModelRateStatus(
            model=row.name, rpm=row.rpm, tpm=row.tpm, max_concurrency=row.max_concurrency,
            requests_last_minute=rate.requests_last_minute,
            tokens_last_minute=rate.tokens_last_minute,
            tokens_available=rate.tokens_available, in_flight=rate.in_flight,
            slowed_until=(at + dt.timedelta(seconds=rate.slowed_for_s)
                          if rate.slowed_for_s > 0 else None)))
    return rates


@strawberry.type
class QueueQueries:
    @strawberry.field(description="Jobs per priority and status, workers seen, the oldest "
                                  "waiting job's age and the budget.")
    async def queue_status(self, info: strawberry.Info) -> QueueStatus:
        return await read_queue_status(info)
