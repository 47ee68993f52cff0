"""Scale-out: one `mmos worker` process against four, on one PostgreSQL and one Redis, over a
call-bound corpus (16 sources, 136 chunks, one provider call of 2 s each, by default) served by
the fake provider in its own process. Both rounds process the same sources in one invocation
(one worker first, then four), their fragments are compared, and the speed-up is printed.

    .venv/bin/python -m benchmarks.scale_out [--sources 16] [--calls 136] [--latency 2]
        [--threads 4] [--llm-concurrency 8] [--workers 4]

Times run from the batch's dispatch to its last run finishing (workers are ready before).
Extra worker environment (e.g. `dramatiq_queue_prefetch=8 MMOS_WORKER_IDLE_POLL_SECONDS=0`,
Dramatiq's default prefetch without the idle poll) can be passed with `--env K=V`.

The default LLM concurrency (3 calls at once per job) gives every source, of 8 or 9 chunks,
three waves of calls: the ideal speed-up is then exactly 4 (printed as "ideal"). At
`MMOS_LLM_CONCURRENCY=8` a 9-chunk source takes two waves and an 8-chunk one a single wave, so
four workers wait for the longest jobs (ideal 3.0x), and 4 x 4 x 8 chunks in flight need more
connections than a default PostgreSQL allows (100; a worker's pool is 2 x 8 + 4, overflow as
many again).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from benchmarks.pipeline_overhead import (
    ADMIN_DSN,
    _admin,
    _paragraphs,
    _start_provider,
)

MODEL = "scale-mini"


def _ideal_seconds(counts: list[int], slots: int, concurrency: int, latency: float) -> float:
    """The makespan with no overhead: jobs in claim order on the first free slot, each taking
    ceil(chunks / concurrency) waves of `latency`."""
    free = [0.0] * slots
    for count in counts:
        slot = free.index(min(free))
        free[slot] += -(-count // concurrency) * latency
    return max(free)


def _chunk_counts(sources: int, calls: int) -> list[int]:
    """`calls` chunks spread over `sources` as evenly as possible (16 and 136: 8 of 9, 8 of 8)."""
    base, extra = divmod(calls, sources)
    return [base + (1 if index < extra else 0) for index in range(sources)]


async def _round(url: str, redis_url: str, env: dict[str, str], workers: int,
                 source_ids: list[int], log_dir: Path) -> tuple[float, int, dict[str, list[int]]]:
    """Start `workers` processes, dispatch one batch over the sources, wait for it to end.
    Returns (seconds from dispatch to the last run finished, batch id, claims per worker)."""
    import sqlalchemy as sa

    from api.container import build_container
    from api.settings import Settings
    from domain.services.processing import start_processing
    from tests.support.workers import RedisWakeups, WorkerFleet, flush_redis

    flush_redis(redis_url)
    settings = Settings(env="test", database_url=url, _env_file=None)  # type: ignore[call-arg]
    runtime = await build_container(settings, database_url=url, migrate=False, pool_size=4)
    wakeups = RedisWakeups(runtime, redis_url)
    view = runtime.with_dispatcher(wakeups)
    fleet = WorkerFleet(env, log_dir)
    try:
        fleet.start(workers)
        started = time.perf_counter()
        result = await start_processing(view.ports, source_ids=source_ids, model_names=[MODEL],
                                        strategy=None, budget_usd=None)
        [batch_id] = result.batch_ids
        while True:
            async with runtime.read() as session:
                open_runs = (await session.execute(sa.text(
                    "SELECT count(*) FROM source_processing WHERE batch_id = :b AND status NOT IN"
                    " ('completed', 'failed', 'skipped', 'stopped_cost_limit')"),
                    {"b": batch_id})).scalar_one()
            if open_runs == 0:
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        async with runtime.read() as session:
            spans = (await session.execute(sa.text(
                "SELECT extract(epoch FROM min(r.started_at) - b.created_at),"
                " avg(extract(epoch FROM r.completed_at - r.started_at)),"
                " max(extract(epoch FROM r.completed_at - r.started_at))"
                " FROM source_processing r JOIN processing_batches b ON b.id = r.batch_id"
                " WHERE r.batch_id = :b GROUP BY b.created_at"), {"b": batch_id})).one()
        print(f"  [{workers} worker(s)] first run started {float(spans[0]):.2f} s after the"
              f" batch; run durations mean {float(spans[1]):.2f} s, max {float(spans[2]):.2f} s",
              flush=True)
        return elapsed, batch_id, fleet.claims()
    finally:
        fleet.close()
        wakeups.close()
        await runtime.close()


async def _fragments(url: str, batch_id: int) -> tuple[list[tuple[Any, ...]], dict[str, int]]:
    """The batch's fragments as (source, chunk, ordinal, content, quote, start, end), and its
    run states."""
    import sqlalchemy as sa

    from api.container import build_container
    from api.settings import Settings

    settings = Settings(env="test", database_url=url, _env_file=None)  # type: ignore[call-arg]
    runtime = await build_container(settings, database_url=url, migrate=False, pool_size=2)
    try:
        async with runtime.read() as session:
            rows = (await session.execute(sa.text(
                "SELECT f.source_id, f.chunk_index, f.ordinal, f.content, f.quote, f.char_start,"
                " f.char_end"
                " FROM fragments f"
                " WHERE f.batch_id = :b ORDER BY 1, 2, 3"), {"b": batch_id})).all()
            states = (await session.execute(sa.text(
                "SELECT status, count(*) FROM source_processing WHERE batch_id = :b GROUP BY 1"),
                {"b": batch_id})).all()
        return [tuple(row) for row in rows], {row[0]: row[1] for row in states}
    finally:
        await runtime.close()


async def _prepare(url: str, api_base: str, counts: list[int]) -> list[int]:
    """Migrate, register the model, add the sources (each paragraph is one chunk)."""
    from api.container import build_container
    from api.settings import Settings
    from db.catalog import ModelRepository
    from db.sources import SourceRepository
    from domain.sources import SourceLimits, validate_new_source

    settings = Settings(env="test", database_url=url, _env_file=None)  # type: ignore[call-arg]
    runtime = await build_container(settings, database_url=url, pool_size=2)
    try:
        async with runtime.transaction() as session:
            await ModelRepository(session).register({
                "name": MODEL, "litellm_model": "openai/gpt-4o-mini", "api_base": api_base,
                "input_cost_per_million": Decimal("0.15"),
                "output_cost_per_million": Decimal("0.6"), "price_source": "override",
                "context_window": 128000, "max_output_tokens": 1024})
        ids = []
        async with runtime.transaction() as session:
            for index, count in enumerate(counts):
                code = f"SCALE_{index:02d}"
                source = await SourceRepository(session).add(validate_new_source({
                    "source_code": code, "title": f"scale {index}", "source_type": "interview",
                    "content": "\n\n".join(_paragraphs(code, count)), "language": "en"},
                    SourceLimits()))
                ids.append(source.id or 0)
        return ids
    finally:
        await runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=16)
    parser.add_argument("--calls", type=int, default=136)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=4, help="MMOS_WORKER_THREADS")
    parser.add_argument("--llm-concurrency", type=int, default=3, help="MMOS_LLM_CONCURRENCY")
    parser.add_argument("--workers", type=int, default=4, help="workers of the second round")
    parser.add_argument("--redis", default=os.environ.get("MMOS_BENCH_REDIS_URL"),
                        help="a Redis database to flush and use (default: a claimed test one)")
    parser.add_argument("--log-dir", default=None, help="keep the worker logs there")
    parser.add_argument("--env", action="append", default=[], metavar="K=V",
                        help="extra worker environment")
    args = parser.parse_args()
    counts = _chunk_counts(args.sources, args.calls)
    name = f"mmos_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(f"CREATE DATABASE {name}"))
    url = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + "/" + name
    provider, api_base = _start_provider(args.latency)
    from tests.support.workers import claimed_redis_database, worker_env

    try:
        with claimed_redis_database() as claimed:
            redis_url = args.redis or claimed
            source_ids = asyncio.run(_prepare(url, api_base, counts))
            env = worker_env(url, redis_url, MMOS_WORKER_THREADS=str(args.threads),
                             MMOS_LLM_CONCURRENCY=str(args.llm_concurrency),
                             MMOS_CHUNK_MAX_TOKENS="150", MMOS_CHUNK_OVERLAP_TOKENS="0",
                             MMOS_MAX_OUTPUT_TOKENS="1024", MMOS_JOB_LEASE_SECONDS="60",
                             MMOS_SWEEP_INTERVAL_SECONDS="5", MMOS_LOG_LEVEL="INFO")
            env.update(dict(item.split("=", 1) for item in args.env))
            rounds = []
            with tempfile.TemporaryDirectory(prefix="mmos-scale-") as scratch:
                logs = args.log_dir or scratch
                for workers in (1, args.workers):
                    log_dir = Path(logs) / f"w{workers}"
                    log_dir.mkdir(parents=True, exist_ok=True)
                    rounds.append((workers, *asyncio.run(
                        _round(url, redis_url, env, workers, source_ids, log_dir))))
                fragments = [asyncio.run(_fragments(url, batch)) for _, _, batch, _ in rounds]
    finally:
        provider.terminate()
        asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))

    print(f"scale-out benchmark: {args.sources} sources, {sum(counts)} calls of "
          f"{args.latency:g} s, {args.threads} threads and LLM concurrency "
          f"{args.llm_concurrency} per worker" + (f", env {args.env}" if args.env else ""))
    for (workers, seconds, _batch, claims), (rows, states) in zip(rounds, fragments, strict=True):
        spread = ", ".join(f"{len(ids)}" for ids in claims.values())
        print(f"  {workers} worker(s): {seconds:7.2f} s  runs {states}  fragments {len(rows)}"
              f"  jobs claimed per worker [{spread}]")
    one, many = rounds[0][1], rounds[1][1]
    identical = fragments[0][0] == fragments[1][0] and bool(fragments[0][0])
    ideal = [_ideal_seconds(counts, workers * args.threads, args.llm_concurrency, args.latency)
             for workers in (1, args.workers)]
    print(f"  ideal (no overhead): {ideal[0]:.1f} s and {ideal[1]:.1f} s, "
          f"{ideal[0] / ideal[1]:.2f}x")
    print(f"  speed-up {args.workers} vs 1: {one / many:.2f}x  (target >= 3.5x)")
    print(f"  fragments identical: {identical}")
    if not identical:
        sys.exit(1)


if __name__ == "__main__":
    main()
