"""Shared rate limits: three `mmos worker` processes (one PostgreSQL, one Redis) against a fake
provider (its own process) that allows N tokens per minute per model, the way providers do
(a bucket of 10 s of the rate, a 429 with Retry-After and x-ratelimit-* headers beyond it).

Two runs in one invocation over the same corpus, each with a model of its own on the fake:

- **limited**: the model has `tpm = N` in the catalog: the workers share one limiter in Redis
  (workers/limits.py), reserve each call's worst case before sending it, correct it after;
- **unlimited**: the same model without limits: every worker sends as fast as it can.

For each run it prints the tokens per minute the fake admitted (over the whole run, and
sustained: after the first bucket's worth), their share of N, and the 429s (count and share of
calls). Target for the limited run: sustained >= 90% of N, 429s <= 1% of calls.

    .venv/bin/python -m benchmarks.rate_limits [--tpm 60000] [--sources 12] [--calls 120]
        [--latency 0.5] [--workers 3] [--threads 2] [--llm-concurrency 4] [--max-seconds 120]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from benchmarks.pipeline_overhead import ADMIN_DSN, _admin, _paragraphs

LIMITED, UNLIMITED = "rl-limited", "rl-unlimited"
BURST_SECONDS = 10.0  # the fake's bucket, as the limiter's (workers/limits.py BURST_SECONDS)


def _chunk_counts(sources: int, calls: int) -> list[int]:
    """`calls` chunks spread over `sources` as evenly as possible."""
    base, extra = divmod(calls, sources)
    return [base + (1 if index < extra else 0) for index in range(sources)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_provider(latency: float, tpm: int) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fake_provider", "--port", str(port),
         "--latency", str(latency), "--tpm", str(tpm), "--burst-seconds", str(BURST_SECONDS),
         "--model", LIMITED, "--model", UNLIMITED],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return process, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the fake provider did not start")


def _stats(api_base: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{api_base}/limits", timeout=10) as answer:
        return dict(json.loads(answer.read()))


async def _prepare(url: str, api_base: str, counts: list[int], tpm: int) -> list[int]:
    """Migrate, register both models (one with tpm = N), add the sources."""
    from api.container import build_container
    from api.settings import Settings
    from db.catalog import ModelRepository
    from db.sources import SourceRepository
    from domain.sources import SourceLimits, validate_new_source

    settings = Settings(env="test", database_url=url, _env_file=None)  # type: ignore[call-arg]
    runtime = await build_container(settings, database_url=url, pool_size=2)
    try:
        async with runtime.transaction() as session:
            for name, limit in ((LIMITED, tpm), (UNLIMITED, None)):
                await ModelRepository(session).register({
                    "name": name, "litellm_model": f"openai/{name}", "api_base": api_base,
                    "input_cost_per_million": Decimal("0.15"),
                    "output_cost_per_million": Decimal("0.6"), "price_source": "override",
                    "context_window": 128000, "max_output_tokens": 1024, "tpm": limit})
        ids = []
        async with runtime.transaction() as session:
            for index, count in enumerate(counts):
                code = f"RATE_{index:02d}"
                source = await SourceRepository(session).add(validate_new_source({
                    "source_code": code, "title": f"rate {index}", "source_type": "interview",
                    "content": "\n\n".join(_paragraphs(code, count)), "language": "en"},
                    SourceLimits()))
                ids.append(source.id or 0)
        return ids
    finally:
        await runtime.close()


async def _round(url: str, redis_url: str, env: dict[str, str], workers: int, model: str,
                 source_ids: list[int], log_dir: Path,
                 max_seconds: float) -> tuple[float, dict[str, int]]:
    """Start the workers, dispatch one batch of `model` over the sources, wait for its end
    (or `max_seconds`). Returns (seconds, run states)."""
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
        for worker in fleet.start(workers):
            worker.wait_ready()
        started = time.perf_counter()
        result = await start_processing(view.ports, source_ids=source_ids, model_names=[model],
                                        strategy=None, budget_usd=None)
        [batch_id] = result.batch_ids
        query = sa.text("SELECT status, count(*) FROM source_processing WHERE batch_id = :b "
                        "GROUP BY 1")
        while True:
            async with runtime.read() as session:
                states = {row[0]: row[1] for row in
                          (await session.execute(query, {"b": batch_id})).all()}
            finished = sum(n for s, n in states.items()
                           if s in ("completed", "completed_with_errors", "failed", "skipped"))
            if finished == len(source_ids) or time.perf_counter() - started > max_seconds:
                break
            await asyncio.sleep(0.2)
        return time.perf_counter() - started, states
    finally:
        fleet.close()
        wakeups.close()
        await runtime.close()


def _figures(stats: dict[str, Any], tpm: int) -> dict[str, float]:
    log = [(float(t), int(n)) for t, n in stats.get("log", [])]
    admitted, refused = int(stats.get("admitted", 0)), int(stats.get("refused", 0))
    tokens = sum(n for _, n in log)
    if len(log) < 2:
        return {"calls": admitted + refused, "admitted": admitted, "refused": refused,
                "tokens": tokens, "per_minute": 0.0, "sustained": 0.0}
    first, last = log[0][0], log[-1][0]
    span = max(last - first, 1e-9)
    # Sustained: after the first bucket's worth of seconds (what any run gets at once).
    after = [n for t, n in log if t >= first + BURST_SECONDS]
    sustained = sum(after[1:]) * 60 / max(last - (first + BURST_SECONDS), 1e-9)
    return {"calls": admitted + refused, "admitted": admitted, "refused": refused,
            "tokens": tokens, "per_minute": tokens * 60 / span, "sustained": sustained,
            "seconds": span}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tpm", type=int, default=60_000, help="N: the fake's tokens/minute")
    parser.add_argument("--sources", type=int, default=12)
    parser.add_argument("--calls", type=int, default=120)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="MMOS_WORKER_THREADS")
    parser.add_argument("--llm-concurrency", type=int, default=4, help="MMOS_LLM_CONCURRENCY")
    parser.add_argument("--max-seconds", type=float, default=120.0,
                        help="a run stops waiting for its batch after this long")
    parser.add_argument("--log-dir", default=None, help="keep the worker logs there")
    args = parser.parse_args()
    counts = _chunk_counts(args.sources, args.calls)
    name = f"mmos_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(f"CREATE DATABASE {name}"))
    url = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + "/" + name
    provider, api_base = _start_provider(args.latency, args.tpm)
    from tests.support.workers import claimed_redis_database, worker_env

    results = []
    try:
        with claimed_redis_database() as redis_url:
            source_ids = asyncio.run(_prepare(url, api_base, counts, args.tpm))
            env = worker_env(url, redis_url, MMOS_WORKER_THREADS=str(args.threads),
                             MMOS_LLM_CONCURRENCY=str(args.llm_concurrency),
                             MMOS_CHUNK_MAX_TOKENS="150", MMOS_CHUNK_OVERLAP_TOKENS="0",
                             MMOS_MAX_OUTPUT_TOKENS="1024", MMOS_JOB_LEASE_SECONDS="60",
                             MMOS_SWEEP_INTERVAL_SECONDS="5", MMOS_LOG_LEVEL="INFO")
            with tempfile.TemporaryDirectory(prefix="mmos-rates-") as scratch:
                for model in (LIMITED, UNLIMITED):
                    log_dir = Path(args.log_dir or scratch) / model
                    log_dir.mkdir(parents=True, exist_ok=True)
                    seconds, states = asyncio.run(_round(
                        url, redis_url, env, args.workers, model, source_ids, log_dir,
                        args.max_seconds))
                    results.append((model, seconds, states,
                                    _figures(_stats(api_base).get(model, {}), args.tpm)))
    finally:
        provider.terminate()
        asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))

    print(f"rate-limit benchmark: N = {args.tpm:,} tokens/minute on the fake provider "
          f"(bucket of {BURST_SECONDS:g} s), {args.workers} worker processes x {args.threads} "
          f"threads x LLM concurrency {args.llm_concurrency}, {args.sources} sources, "
          f"{sum(counts)} chunks, {args.latency:g} s per answer")
    ok = True
    for model, seconds, states, f in results:
        share_429 = f["refused"] / f["calls"] if f["calls"] else 0.0
        label = "limits set (tpm = N)" if model == LIMITED else "limits unset"
        print(f"  {label:21s} batch {seconds:6.1f} s  runs {states}")
        print(f"      calls {f['calls']:5d}  admitted {f['admitted']:5d}  tokens {f['tokens']:,}"
              f"  429s {f['refused']:5d} ({share_429:.1%} of calls)")
        print(f"      tokens/minute: whole run {f['per_minute']:,.0f} "
              f"({f['per_minute'] / args.tpm:.1%} of N), sustained after the first "
              f"{BURST_SECONDS:g} s {f['sustained']:,.0f} ({f['sustained'] / args.tpm:.1%} of N)")
        if model == LIMITED:
            ok = f["sustained"] >= 0.9 * args.tpm and share_429 <= 0.01
    print(f"  limited run meets the target (sustained >= 90% of N, 429s <= 1%): {ok}")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
