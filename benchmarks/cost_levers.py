"""Cost levers beyond model choice: the same corpus extracted four ways through the whole
pipeline against the loopback fake provider (OpenAI-style chat, Files and Batch API, prompt
cache), priced from LiteLLM's bundled map for `gpt-4o-mini` (input $0.15, cached input
$0.075, output $0.60 per million; batch at half price):

1. interactive, uncached: a call per chunk, no prompt cache;
2. interactive, cached: the provider caches the prompt's stable prefix;
3. batch: the provider's batch API, no cache;
4. batch and cached.

It prints the cost per 100k source characters of each way, its ratio to the first, and the
ledger's split (list price, what caching saved, what batch mode saved), all from one run; the
split must add up to the cost exactly. The fake caches a prefix from `--cache-min-tokens`
(default 256, as providers that cache short prefixes do; OpenAI's automatic caching starts at
1,024 tokens, above MMOS's own prompt prefix of about 430 tokens).

    .venv/bin/python -m benchmarks.cost_levers [--sources 3] [--sentences 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ADMIN_DSN = os.environ.get("MMOS_BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
WAYS = (("interactive, uncached", "interactive", False),
        ("interactive, cached", "interactive", True),
        ("batch, uncached", "batch", False), ("batch, cached", "batch", True))


async def _admin(statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(ADMIN_DSN)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def _drive(runtime: Any, pipeline: Any, batch_ids: list[int]) -> None:
    """Claim and run jobs until every run of the batches has finished (a BATCH-mode job comes
    back after its poll delay: wait for it)."""
    import sqlalchemy as sa

    from db.jobs import JobQueue

    while True:
        async with runtime.transaction() as session:
            job = await JobQueue(session).claim("bench", 600)
        if job is not None:
            await pipeline.run_job(job)
            continue
        async with runtime.read() as session:
            open_runs = (await session.execute(sa.text(
                "SELECT count(*) FROM source_processing WHERE batch_id = ANY(:b)"
                " AND status IN ('pending', 'processing')"), {"b": batch_ids})).scalar_one()
        if not open_runs:
            return
        await asyncio.sleep(0.02)


async def _measure(url: str, sources: int, sentences: int, cache_min: int
                   ) -> list[tuple[str, int, dict[str, Decimal]]]:
    import sqlalchemy as sa

    from api.container import build_container
    from api.settings import Settings
    from db.catalog import ModelRepository
    from db.sources import SourceRepository
    from domain.services.processing import start_processing
    from domain.sources import SourceLimits, validate_new_source
    from tests.support.fake_provider import FakeProvider
    from tests.support.processing import interview
    from workers.batch_api import batch_client_for
    from workers.gateway import LiteLLMClient
    from workers.pipeline import Pipeline

    settings = Settings(env="test", database_url=url, batch_poll_seconds=0.01,
                        _env_file=None)  # type: ignore[call-arg]
    runtime = await build_container(settings, database_url=url)
    provider = FakeProvider().start()
    results = []
    try:
        async with runtime.transaction() as session:
            await ModelRepository(session).register({
                "name": "bench-mini", "litellm_model": "openai/gpt-4o-mini",
                "api_base": provider.url, "price_source": "map", "context_window": 128000,
                "max_output_tokens": 4096})
        client = LiteLLMClient(batch_discounts=settings.batch_discount_map)
        pipeline = Pipeline(runtime, client, owner="bench",
                            batch_client=batch_client_for(client))
        for label, mode, cached in WAYS:
            provider.prompt_cache.reset()
            if cached:
                provider.prompt_cache.enable(min_tokens=cache_min)
            ids, chars = [], 0
            for number in range(sources):
                content = interview(f"{mode[:1]}{int(cached)}{number}", sentences)
                chars += len(content)
                async with runtime.transaction() as session:
                    row = await SourceRepository(session).add(validate_new_source({
                        "source_code": f"LEVER_{mode.upper()}_{int(cached)}_{number}",
                        "title": "lever", "source_type": "interview", "content": content,
                        "language": "en"}, SourceLimits()))
                ids.append(row.id or 0)
            started = await start_processing(runtime.ports, source_ids=ids,
                                             model_names=["bench-mini"], strategy=None,
                                             budget_usd=None, mode=mode)
            began = time.perf_counter()
            await _drive(runtime, pipeline, started.batch_ids)
            async with runtime.read() as session:
                row = (await session.execute(sa.text(
                    "SELECT sum(cost_usd) AS cost, sum(list_cost_usd) AS list,"
                    " sum(cache_saved_usd) AS cache, sum(batch_saved_usd) AS batch,"
                    " sum(cached_input_tokens) AS cached, sum(input_tokens) AS input,"
                    " count(*) FILTER (WHERE status <> 'completed') AS unfinished"
                    " FROM source_processing WHERE batch_id = ANY(:b)"),
                    {"b": started.batch_ids})).one()
            assert row.unfinished == 0, f"{label}: runs did not complete"
            results.append((label, chars, {
                "cost": row.cost, "list": row.list, "cache": row.cache, "batch": row.batch,
                "cached_tokens": Decimal(row.cached), "input_tokens": Decimal(row.input),
                "seconds": Decimal(str(round(time.perf_counter() - began, 2)))}))
        await client.aclose()
    finally:
        provider.stop()
        await runtime.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=3)
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--cache-min-tokens", type=int, default=256)
    args = parser.parse_args()
    name = f"mmos_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(f"CREATE DATABASE {name}"))
    url = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + "/" + name
    try:
        results = asyncio.run(_measure(url, args.sources, args.sentences, args.cache_min_tokens))
    finally:
        asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    chars = results[0][1]
    base = results[0][2]["cost"] * 100_000 / chars
    print(f"cost levers benchmark: {args.sources} sources, {chars} characters, gpt-4o-mini "
          f"prices (LiteLLM map), fake cache minimum {args.cache_min_tokens} tokens")
    print("  way                     USD/100k chars   ratio   list USD    cache saved  "
          "batch saved  cached/input tokens")
    for label, size, r in results:
        per = r["cost"] * 100_000 / size
        assert r["cost"] == r["list"] - r["cache"] - r["batch"], f"{label}: split does not add up"
        share = r["cached_tokens"] / r["input_tokens"] if r["input_tokens"] else Decimal(0)
        print(f"  {label:22s}  {per:14.8f}   {per / base:5.3f}   {r['list']:.8f}  "
              f"{r['cache']:.8f}   {r['batch']:.8f}   {share:.1%}")
    print("  every way's cost = list - cache saved - batch saved, exactly")


if __name__ == "__main__":
    main()
