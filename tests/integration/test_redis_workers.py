"""The engine across processes: `mmos worker` children on Redis sharing the test PostgreSQL.

The test process plays the API: models, sources and budgets go through GraphQL, batches through
the use case behind processBatch (no strategy plan), and the wake-ups are the dispatcher's
messages sent through a private Redis broker (`RedisWakeups`), because the in-process fixtures
may already have bound this process to the stub broker. The priority test sends none: the
workers' sweeper finds the unsent jobs. Workers reach the fake provider, which runs in this
process, over HTTP through the model's `apiBase`. Each worker's JSON log is kept in the test's
tmp_path.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from api.ids import parse_id
from domain.prompt import source_text_of
from tests.support.database import reset_database
from tests.support.fake_provider import (
    FakeProvider,
    RecordedRequest,
    Responder,
    Scripted,
    answer_json,
    grounded_fragments,
)
from tests.support.graphql import GraphQLClient
from tests.support.waiting import wait_for
from tests.support.workers import (
    NoWakeups,
    RedisWakeups,
    WorkerFleet,
    flush_redis,
    worker_env,
)

pytestmark = pytest.mark.slow

MODEL = "fake-mini"

REGISTER = """mutation($input: RegisterModelInput!) { registerModel(input: $input) {
  __typename ... on RegisterModelPayload { model { name } } } }"""
CREATE = """mutation($input: CreateSourceInput!) { createSource(input: $input) {
  __typename ... on CreateSourcePayload { source { id } } } }"""
SET_BUDGET = """mutation($amount: Decimal) { setDailyBudget(input: {amountUsd: $amount}) {
  __typename ... on SetBudgetPayload { resumedRuns budget { limitUsd spentUsd reservedUsd } } } }"""


# -- fixtures -------------------------------------------------------------------------------------


@dataclass
class Control:
    """The API side of the test: a runtime of our own services, GraphQL, the wake-up sender."""

    runtime: Any
    gql: GraphQLClient
    wakeups: RedisWakeups

    def stop_dispatching(self) -> None:
        """From now on, new jobs get no message: the workers' sweeper must find them."""
        # Not just removed: with no dispatcher, a process that has a broker makes one.
        self.runtime.dispatcher = NoWakeups()

    async def rows(self, sql: str, **params: Any) -> list[Any]:
        async with self.runtime.read() as session:
            return list((await session.execute(sa.text(sql), params)).all())

    async def value(self, sql: str, **params: Any) -> Any:
        async with self.runtime.read() as session:
            return (await session.execute(sa.text(sql), params)).scalar_one()


@pytest.fixture
async def control(runtime: Any, settings: Any, redis_url: str,
                  quiet_in_process_worker: None) -> AsyncIterator[Control]:
    from api.app import create_app

    await reset_database(runtime)
    flush_redis(redis_url)
    # The session runtime's engine and services, minus the stub broker's dispatcher and worker.
    wakeups = RedisWakeups(runtime, redis_url)
    view = runtime.with_dispatcher(wakeups)
    app = create_app(settings, runtime=view)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield Control(view, GraphQLClient(http), wakeups)
    wakeups.close()


@pytest.fixture
def fleet(database_url: str, redis_url: str, tmp_path: Any) -> Iterator[WorkerFleet]:
    workers = WorkerFleet(worker_env(database_url, redis_url), tmp_path)
    yield workers
    workers.close()


# -- helpers --------------------------------------------------------------------------------------


def echo_with(*, latency: float = 0.0, completion_tokens: int | None = None) -> Responder:
    """Grounded fragments of the chunk, answered after `latency`, reporting that usage."""

    def respond(request: RecordedRequest) -> Scripted:
        return Scripted(content=answer_json(grounded_fragments(request)), latency=latency,
                        completion_tokens=completion_tokens)

    return respond


def short_text(index: int) -> str:
    return (f"Interview number {index}. I moved to Lisbon in {1950 + index} because I wanted a "
            f"quieter life. When I feel pressure, I write lists to calm down. I value honesty "
            f"more than comfort, and I told my team {index} times.")


def long_text(paragraphs: int) -> str:
    """A source of distinct sentences, long enough for several default-sized chunks."""
    lines = []
    for p in range(paragraphs):
        sentences = [f"In year {p} of the project, on day {s}, I learned lesson {p * 100 + s} "
                     f"about patience because the plan number {s} changed again."
                     for s in range(40)]
        lines.append(" ".join(sentences))
    return "\n\n".join(lines)


async def register_fake_model(gql: GraphQLClient, provider: FakeProvider) -> None:
    body = await gql(REGISTER, {"input": {"name": MODEL, "litellmModel": "openai/gpt-4o-mini",
                                          "apiBase": provider.url}})
    assert body["data"]["registerModel"]["__typename"] == "RegisterModelPayload", body


async def create_sources(gql: GraphQLClient, texts: list[str], priority: str,
                         prefix: str) -> list[str]:
    ids = []
    for index, text in enumerate(texts):
        body = await gql(CREATE, {"input": {
            "sourceCode": f"{prefix}_{index:03d}", "title": f"{prefix} {index}",
            "sourceType": "INTERVIEW", "content": text, "extractionPriority": priority}})
        payload = body["data"]["createSource"]
        assert payload["__typename"] == "CreateSourcePayload", payload
        ids.append(payload["source"]["id"])
    return ids


async def process(control: Control, source_ids: list[str]) -> int:
    """One plain batch (no strategy plan) of the fake model over the sources; its database id.

    The use case behind processBatch, so every source gets its run and job at once.
    """
    from domain.services.processing import start_processing

    ids = [parse_id(value, "Source", ("sourceIds",)) for value in source_ids]
    started = await start_processing(control.runtime.ports, source_ids=ids, model_names=[MODEL],
                                     strategy=None, budget_usd=None)
    [batch_id] = started.batch_ids
    return batch_id


async def wait_completed(control: Control, fleet: WorkerFleet, run_id: int) -> None:
    """Until the run completed; any status but processing, pending or completed fails."""
    async def completed() -> bool:
        status = await control.value("SELECT status FROM source_processing WHERE id = :r",
                                     r=run_id)
        assert status in ("processing", "pending", "completed"), fleet.logs()
        return status == "completed"

    await wait_for(completed, timeout=90)


async def job_counts(control: Control) -> dict[str, int]:
    rows = await control.rows("SELECT status, count(*) AS n FROM processing_queue GROUP BY 1")
    return {row.status: row.n for row in rows}


async def run_counts(control: Control) -> dict[str, int]:
    rows = await control.rows("SELECT status, count(*) AS n FROM source_processing GROUP BY 1")
    return {row.status: row.n for row in rows}


async def wait_quiet(probe: Any, *, quiet: float, within: float) -> Any:
    """Wait until `probe` returns the same truthy value for `quiet` seconds."""
    deadline = time.monotonic() + within
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        value = await probe()
        if not value or value != last:
            last, since = value, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return value
        await asyncio.sleep(0.25)
    raise AssertionError(f"no stable state within {within}s (last: {last!r})")


async def assert_no_duplicate_fragments(control: Control) -> None:
    duplicated_keys = await control.value(
        "SELECT count(*) FROM (SELECT run_id, chunk_index, ordinal FROM fragments"
        " GROUP BY 1, 2, 3 HAVING count(*) > 1) d")
    duplicated_codes = await control.value(
        "SELECT count(*) FROM (SELECT fragment_code FROM fragments GROUP BY 1"
        " HAVING count(*) > 1) d")
    duplicated_spans = await control.value(
        "SELECT count(*) FROM (SELECT run_id, char_start, char_end FROM fragments"
        " WHERE char_start IS NOT NULL GROUP BY 1, 2, 3 HAVING count(*) > 1) d")
    assert (duplicated_keys, duplicated_codes, duplicated_spans) == (0, 0, 0)


def assert_clean_logs(fleet: WorkerFleet, *, except_for: tuple[str, ...] = ()) -> None:
    """No worker logged a warning or an error: no lease lost, no failed sweep, no crash."""
    problems = [f"{w.name}: {r.get('event')}" for w in fleet.workers if w.name not in except_for
                for r in w.log_records() if r.get("level") in ("warning", "error", "critical")]
    assert not problems, problems


def report(title: str, **figures: Any) -> None:
    """Print the measured figures (visible with -s; kept in the captured output otherwise)."""
    print(f"\n[{title}] " + ", ".join(f"{key}={value}" for key, value in figures.items()))


# -- 1. the budget holds across processes ---------------------------------------------------------

RUNS = 50
DAILY_BUDGET = Decimal("0.012")
# Reported usage near max_tokens: the actual cost of a call is close to its reserved worst case,
# so the budget binds on settled money, not only on reservations.
COMPLETION_TOKENS = 3800


async def test_three_workers_never_spend_past_the_daily_budget_and_resume_when_raised(
        control: Control, fleet: WorkerFleet, provider: FakeProvider) -> None:
    gql = control.gql
    # Given: 50 one-chunk sources, a priced model served by the fake, a budget of a tenth
    provider.set_default(echo_with(latency=0.2, completion_tokens=COMPLETION_TOKENS))
    await register_fake_model(gql, provider)
    body = await gql(SET_BUDGET, {"amount": str(DAILY_BUDGET)})
    assert body["data"]["setDailyBudget"]["__typename"] == "SetBudgetPayload", body
    sources = await create_sources(gql, [short_text(i) for i in range(RUNS)], "MEDIUM", "BUD")
    fleet.start(3)
    started = time.monotonic()

    # When: the whole batch is dispatched at once to three worker processes
    batch_id = await process(control, sources)

    async def paused_plateau() -> tuple[tuple[str, int], ...] | None:
        jobs = await job_counts(control)
        busy = jobs.get("waiting", 0) + jobs.get("claimed", 0)
        if busy or not jobs.get("waiting_budget"):
            return None
        return tuple(sorted((await run_counts(control)).items()))

    plateau = dict(await wait_quiet(paused_plateau, quiet=3.0, within=120))
    paused_after = time.monotonic() - started

    # Then: settled spend within the budget, nothing left reserved, the rest paused
    day = (await control.rows("SELECT spent_usd, reserved_usd FROM budget_days"))[0]
    settled = await control.value(
        "SELECT coalesce(sum(actual_usd), 0) FROM budget_ledger WHERE status = 'settled'")
    open_rows = await control.value(
        "SELECT count(*) FROM budget_ledger WHERE status = 'reserved'")
    worst_case = await control.value("SELECT max(reserved_usd) FROM budget_ledger")
    assert RUNS * worst_case >= 10 * DAILY_BUDGET, "the batch's worst case must be 10x budget"
    assert day.spent_usd == settled <= DAILY_BUDGET
    assert day.reserved_usd == 0 and open_rows == 0
    assert plateau.get("waiting_budget", 0) > 0
    assert plateau.get("completed", 0) + plateau.get("waiting_budget", 0) == RUNS, plateau
    calls_within_budget = len(provider.requests)

    # When: the operator raises the budget
    body = await gql(SET_BUDGET, {"amount": "1.00"})
    assert body["data"]["setDailyBudget"]["__typename"] == "SetBudgetPayload", body

    async def all_done() -> dict[str, int] | None:
        counts = await run_counts(control)
        return counts if counts.get("completed", 0) == RUNS else None

    await wait_for(all_done, timeout=120)
    finished_after = time.monotonic() - started

    # Then: every run completed exactly once, every provider call settled exactly once
    batch_status = await control.value("SELECT status FROM processing_batches WHERE id = :b",
                                       b=batch_id)
    assert batch_status == "completed"
    assert await control.value("SELECT count(*) FROM source_processing WHERE chunk_count <> 1"
                               " OR chunks_done <> 1") == 0
    await assert_no_duplicate_fragments(control)
    ledger = {row.status: row for row in await control.rows(
        "SELECT status, count(*) AS n, sum(actual_usd) AS actual FROM budget_ledger GROUP BY 1")}
    closed = sum(ledger[s].n for s in ("settled", "released") if s in ledger)
    assert "reserved" not in ledger
    assert len(provider.requests) == closed == RUNS  # one call per one-chunk run, none repeated
    day = (await control.rows("SELECT spent_usd, reserved_usd FROM budget_days"))[0]
    runs_cost = await control.value("SELECT sum(cost_usd) FROM source_processing")
    assert day.reserved_usd == 0
    assert day.spent_usd == ledger["settled"].actual == runs_cost
    # Waiting for budget is not a failed attempt: paused jobs keep their retries.
    assert await control.value("SELECT max(attempts) FROM processing_queue") == 1
    claims = fleet.claims()
    assert all(claims.values()), f"every worker should have claimed jobs: {claims}"
    assert_clean_logs(fleet)
    report("budget", runs=RUNS, budget=DAILY_BUDGET, worst_case_per_call=worst_case,
           paused_after_s=round(paused_after, 1), plateau=plateau,
           settled_at_plateau=settled, calls_within_budget=calls_within_budget,
           total_s=round(finished_after, 1), total_spent=day.spent_usd,
           claims_per_worker={k: len(v) for k, v in claims.items()})


# -- 2. a worker killed mid-run -------------------------------------------------------------------

RESERVATION_TTL_SECONDS = 30  # the smallest allowed: a dead call's reservation is swept soon


async def test_a_killed_worker_run_is_reclaimed_after_its_lease_without_paying_twice(
        control: Control, fleet: WorkerFleet, provider: FakeProvider) -> None:
    gql = control.gql
    # Given: a source of several chunks, one worker calling the model one chunk at a time
    provider.set_default(echo_with(latency=1.0))
    await register_fake_model(gql, provider)
    content = long_text(6)
    [source] = await create_sources(gql, [content], "HIGH", "KILL")
    one_at_a_time = {"MMOS_LLM_CONCURRENCY": "1",
                     "MMOS_RESERVATION_TTL_SECONDS": str(RESERVATION_TTL_SECONDS),
                     # Reservations must outlive calls: a short call timeout goes with it.
                     "MMOS_LLM_TIMEOUT_SECONDS": "20"}
    doomed = fleet.spawn("doomed", **one_at_a_time)
    doomed.wait_ready()
    batch_id = await process(control, [source])
    run_id = await control.value("SELECT id FROM source_processing WHERE batch_id = :b",
                                 b=batch_id)

    async def some_chunks_done() -> int | None:
        row = (await control.rows("SELECT status, chunks_done, chunk_count FROM"
                                  " source_processing WHERE id = :r", r=run_id))[0]
        return row.chunks_done if row.status == "processing" and row.chunks_done >= 2 else None

    await wait_for(some_chunks_done, timeout=60)

    # When: the worker is killed mid-run, and a new one starts
    lease_before_kill = await control.value(
        "SELECT lease_expires_at FROM processing_queue WHERE run_id = :r", r=run_id)
    doomed.kill()
    killed_at = time.monotonic()
    done_before_kill = {row.chunk_index for row in await control.rows(
        "SELECT chunk_index FROM run_chunks WHERE run_id = :r", r=run_id)}
    calls_before_kill = len(provider.requests)
    rescuer = fleet.spawn("rescuer", **one_at_a_time)
    rescuer.wait_ready()

    await wait_completed(control, fleet, run_id)
    recovered_after = time.monotonic() - killed_at

    # Then: the job was claimed again only after the lease ran out, by the new worker
    job = (await control.rows("SELECT id, status, attempts FROM processing_queue"
                              " WHERE run_id = :r", r=run_id))[0]
    assert (job.status, job.attempts) == ("done", 2)
    assert job.id in rescuer.claimed_job_ids(), fleet.logs()
    restarts = await control.rows(
        "SELECT created_at FROM batch_events WHERE batch_id = :b AND kind = 'STARTED'"
        " ORDER BY seq", b=batch_id)
    assert len(restarts) == 2
    assert restarts[1].created_at >= lease_before_kill

    # Then: each chunk stored once, no duplicate fragment, chunks done before the kill not redone
    chunks = await control.rows("SELECT chunk_index, char_start, char_end FROM run_chunks"
                                " WHERE run_id = :r ORDER BY chunk_index", r=run_id)
    run = (await control.rows("SELECT chunk_count, chunks_done, fragment_count, attempts"
                              " FROM source_processing WHERE id = :r", r=run_id))[0]
    assert [c.chunk_index for c in chunks] == list(range(run.chunk_count))
    assert run.chunks_done == run.chunk_count >= 4 and run.attempts == 2
    await assert_no_duplicate_fragments(control)
    calls_per_chunk = {c.chunk_index: 0 for c in chunks}
    for request in provider.requests:
        text = source_text_of(request.messages)
        [index] = [c.chunk_index for c in chunks if content[c.char_start:c.char_end] == text]
        calls_per_chunk[index] += 1
    assert all(calls_per_chunk[i] == 1 for i in done_before_kill), calls_per_chunk
    assert all(n >= 1 for n in calls_per_chunk.values())
    repeated = sum(calls_per_chunk.values()) - len(chunks)
    assert repeated <= 1  # only the call in flight when the worker died is made again

    # Then: every provider call has exactly one ledger row; at most the dead call stays reserved
    ledger = {row.status: row.n for row in await control.rows(
        "SELECT status, count(*) AS n FROM budget_ledger GROUP BY 1")}
    assert sum(ledger.values()) == len(provider.requests)
    # The call in flight when the worker died stays reserved until its TTL, then is released.
    assert ledger.get("reserved", 0) <= repeated
    assert_clean_logs(fleet, except_for=("doomed",))

    async def reservations_released() -> bool:
        day = (await control.rows("SELECT reserved_usd FROM budget_days"))[0]
        left = await control.value("SELECT count(*) FROM budget_ledger WHERE status = 'reserved'")
        return day.reserved_usd == 0 and left == 0

    await wait_for(reservations_released, timeout=RESERVATION_TTL_SECONDS + 30)
    report("kill -9", chunks=run.chunk_count, done_before_kill=len(done_before_kill),
           calls_before_kill=calls_before_kill, calls_total=len(provider.requests),
           repeated_calls=repeated, fragments=run.fragment_count,
           recovered_after_kill_s=round(recovered_after, 1), ledger=ledger,
           released_after_kill_s=round(time.monotonic() - killed_at, 1))


# -- 3. priority across workers -------------------------------------------------------------------


async def test_critical_sources_start_before_older_low_ones_across_workers(
        control: Control, fleet: WorkerFleet, provider: FakeProvider) -> None:
    gql = control.gql
    # Given: a backlog of LOW jobs, then newer CRITICAL jobs, as many as the workers' slots
    provider.set_default(echo_with(latency=1.0))
    await register_fake_model(gql, provider)
    control.stop_dispatching()
    workers, threads = 3, 2
    low = await create_sources(gql, [short_text(i) for i in range(12)], "LOW", "LOW")
    critical = await create_sources(gql, [short_text(100 + i) for i in range(workers * threads)],
                                    "CRITICAL", "CRIT")
    low_batch = await process(control, low)
    critical_batch = await process(control, critical)
    assert await job_counts(control) == {"waiting": len(low) + len(critical)}
    assert await control.value(
        "SELECT count(*) FROM processing_queue WHERE message_sent_at IS NOT NULL") == 0

    # When: three workers start; their sweeper sends the wake-ups nobody sent
    started = time.monotonic()
    fleet.start(workers, MMOS_WORKER_THREADS=str(threads))

    async def all_done() -> bool:
        return (await run_counts(control)).get("completed", 0) == len(low) + len(critical)

    await wait_for(all_done, timeout=120)
    elapsed = time.monotonic() - started

    # Then: every CRITICAL run started before any LOW run
    rows = await control.rows("SELECT batch_id, started_at FROM source_processing"
                              " ORDER BY started_at")
    critical_starts = [r.started_at for r in rows if r.batch_id == critical_batch]
    low_starts = [r.started_at for r in rows if r.batch_id == low_batch]
    assert max(critical_starts) < min(low_starts), [r.batch_id for r in rows]
    claims = fleet.claims()
    assert sum(len(c) for c in claims.values()) == len(low) + len(critical), claims
    assert all(claims.values()), f"every worker should have claimed jobs: {claims}"
    assert_clean_logs(fleet)
    report("priority", runs=len(rows), total_s=round(elapsed, 1),
           critical_window_s=round((max(critical_starts) - min(critical_starts))
                                   .total_seconds(), 2),
           first_low_after_last_critical_s=round((min(low_starts) - max(critical_starts))
                                                 .total_seconds(), 2),
           claims_per_worker={k: len(v) for k, v in claims.items()})


# -- 3b. no idle worker while jobs wait -----------------------------------------------------------

SLOW_ANSWER_SECONDS = 30.0


async def test_an_idle_worker_claims_jobs_whose_wake_ups_a_busy_worker_has_buffered(
        control: Control, fleet: WorkerFleet, provider: FakeProvider,
        redis_url: str) -> None:
    import redis

    gql = control.gql
    # Given: a worker with one thread that prefetches four wake-ups (Dramatiq's buffering,
    # forced here: by default a worker fetches no more than its threads), busy on a slow job
    slow_marker = "Interview number 0."

    def respond(request: RecordedRequest) -> Scripted:
        slow = any(slow_marker in str(m.get("content") or "") for m in request.messages)
        latency = SLOW_ANSWER_SECONDS if slow else 0.2
        return Scripted(content=answer_json(grounded_fragments(request)), latency=latency)

    provider.set_default(respond)
    await register_fake_model(gql, provider)
    sources = await create_sources(gql, [short_text(i) for i in range(4)], "MEDIUM", "IDLE")
    busy = fleet.spawn("busy", MMOS_WORKER_THREADS="1", dramatiq_queue_prefetch="4")
    busy.wait_ready()
    batch_id = await process(control, sources)
    jobs = [r.id for r in await control.rows("SELECT id FROM processing_queue ORDER BY id")]
    queue = redis.Redis.from_url(redis_url)

    async def all_buffered_by_busy() -> bool:
        # Every wake-up left the Redis list (fetched by the busy worker), one job claimed.
        return queue.llen("mmos:mmos-jobs") == 0 and len(busy.claimed_job_ids()) == 1

    try:
        await wait_for(all_buffered_by_busy, timeout=30)
    finally:
        queue.close()
    assert busy.claimed_job_ids() == [jobs[0]]
    assert await job_counts(control) == {"claimed": 1, "waiting": 3}

    # When: a second worker starts; no message is left for it
    idle = fleet.spawn("idle")
    ready_after = idle.wait_ready()
    ready_at = time.monotonic()

    async def others_done() -> bool:
        rows = await control.rows("SELECT status FROM processing_queue WHERE id <> :slow",
                                  slow=jobs[0])
        return [r.status for r in rows] == ["done"] * 3

    await wait_for(others_done, timeout=SLOW_ANSWER_SECONDS - 5)
    others_after = time.monotonic() - ready_at

    # Then: the idle worker claimed the three waiting jobs by polling, while the busy one was
    # still on its first; the busy one's buffered wake-ups later found nothing; each job once
    assert idle.claimed_job_ids() == jobs[1:], fleet.logs()
    polled = [r for r in idle.log_records() if "(idle poll)" in str(r.get("event", ""))]
    assert len(polled) == 3, fleet.logs()

    async def all_done() -> bool:
        return (await run_counts(control)).get("completed", 0) == len(sources)

    await wait_for(all_done, timeout=SLOW_ANSWER_SECONDS + 30)
    assert busy.claimed_job_ids() == [jobs[0]], fleet.logs()
    assert await control.value("SELECT max(attempts) FROM processing_queue") == 1
    assert await control.value(
        "SELECT count(DISTINCT source_id) FROM fragments WHERE batch_id = :b", b=batch_id) == 4
    await assert_no_duplicate_fragments(control)
    assert_clean_logs(fleet)
    report("idle worker", idle_ready_s=round(ready_after, 1),
           three_jobs_done_after_ready_s=round(others_after, 2), claims=fleet.claims())


# -- 4. a graceful stop ---------------------------------------------------------------------------


async def test_a_worker_stopped_with_sigterm_finishes_its_run_then_exits_cleanly(
        control: Control, fleet: WorkerFleet, provider: FakeProvider) -> None:
    gql = control.gql
    # Given: one worker in the middle of a run of several chunks
    provider.set_default(echo_with(latency=0.5))
    await register_fake_model(gql, provider)
    [source] = await create_sources(gql, [long_text(4)], "HIGH", "TERM")
    worker = fleet.spawn("stopping", MMOS_LLM_CONCURRENCY="1")
    worker.wait_ready()
    batch_id = await process(control, [source])

    async def midway() -> bool:
        row = (await control.rows("SELECT status, chunks_done FROM source_processing"
                                  " WHERE batch_id = :b", b=batch_id))[0]
        return row.status == "processing" and row.chunks_done >= 1

    await wait_for(midway, timeout=60)

    # When: it is asked to stop
    asked = time.monotonic()
    worker.terminate()
    await asyncio.sleep(0.5)
    draining = await control.value("SELECT status FROM source_processing WHERE batch_id = :b",
                                   b=batch_id)
    seen_while_draining = await control.value("SELECT count(*) FROM workers")
    exit_code = worker.stop()
    stopped_after = time.monotonic() - asked

    # Then: the worker stayed registered (its runtime open) until the run in flight finished,
    # then left cleanly
    assert (draining, seen_while_draining) == ("processing", 1)
    assert exit_code == 0, worker.tail()
    run = (await control.rows("SELECT status, chunks_done, chunk_count, attempts FROM"
                              " source_processing WHERE batch_id = :b", b=batch_id))[0]
    assert (run.status, run.attempts) == ("completed", 1)
    assert run.chunks_done == run.chunk_count >= 3
    assert await control.value("SELECT status FROM processing_queue") == "done"
    assert await control.value("SELECT count(*) FROM workers") == 0
    assert len(provider.requests) == run.chunk_count
    assert_clean_logs(fleet)
    report("sigterm", chunks=run.chunk_count, stopped_after_s=round(stopped_after, 1))


async def test_a_worker_killed_while_polling_a_provider_batch_is_resumed_without_paying_twice(
        control: Control, fleet: WorkerFleet, provider: FakeProvider) -> None:
    from tests.support.fake_batches import BatchBehaviour

    gql = control.gql
    # Given: BATCH mode against the fake batch API, whose batch takes a while and whose every
    # look at it takes a second (so a worker can die in the middle of one)
    provider.batches.behaviour = BatchBehaviour(delay_s=4.0, retrieve_latency_s=1.0)
    await register_fake_model(gql, provider)
    [source] = await create_sources(gql, [long_text(4)], "HIGH", "POLL")
    polling = {"MMOS_BATCH_POLL_SECONDS": "0.3", "MMOS_JOB_LEASE_SECONDS": "5",
               "MMOS_RESERVATION_TTL_SECONDS": str(RESERVATION_TTL_SECONDS),
               "MMOS_LLM_TIMEOUT_SECONDS": "20"}
    doomed = fleet.spawn("doomed", **polling)
    doomed.wait_ready()
    from domain.services.processing import start_processing

    started = await start_processing(
        control.runtime.ports, source_ids=[parse_id(source, "Source", ("sourceIds",))],
        model_names=[MODEL], strategy=None, budget_usd=None, mode="batch")
    [batch_id] = started.batch_ids
    run_id = await control.value("SELECT id FROM source_processing WHERE batch_id = :b",
                                 b=batch_id)

    async def mid_poll() -> bool:
        rows = await control.rows(
            "SELECT q.status, p.status AS submission, p.polls FROM processing_queue q"
            " JOIN provider_batches p ON p.run_id = q.run_id WHERE q.run_id = :r", r=run_id)
        return bool(rows) and rows[0].submission == "submitted" and rows[0].polls >= 1 \
            and rows[0].status == "claimed"

    await wait_for(mid_poll, timeout=60, interval=0.05)
    # When: the worker dies in the middle of a look at the provider, and another starts
    doomed.kill()
    rescuer = fleet.spawn("rescuer", **polling)
    rescuer.wait_ready()
    await wait_completed(control, fleet, run_id)
    # Then: the same provider batch was collected; nothing was submitted twice
    assert len(provider.batches.created) == 1
    [submission] = await control.rows("SELECT status, provider_batch_id FROM provider_batches")
    assert submission.status == "collected"
    assert submission.provider_batch_id == provider.batches.created[0].id
    job = (await control.rows("SELECT id, status FROM processing_queue WHERE run_id = :r",
                              r=run_id))[0]
    assert job.status == "done" and job.id in rescuer.claimed_job_ids(), fleet.logs()
    # Then: each chunk stored once, settled once, at the batch price
    run = (await control.rows("SELECT chunk_count, chunks_done, cost_usd, input_tokens,"
                              " output_tokens FROM source_processing WHERE id = :r",
                              r=run_id))[0]
    assert run.chunks_done == run.chunk_count >= 2
    ledger = await control.rows("SELECT status, actual_usd FROM budget_ledger"
                                " WHERE run_id = :r", r=run_id)
    assert [r.status for r in ledger] == ["settled"] * run.chunk_count
    assert run.cost_usd == sum((r.actual_usd for r in ledger), Decimal(0)) > 0
    await assert_no_duplicate_fragments(control)
    assert_clean_logs(fleet, except_for=("doomed",))
