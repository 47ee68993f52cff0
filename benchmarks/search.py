"""Full-text search: p50/p95 latency of `searchFragments` (page of 20 + total count, through
`db.search.search_fragments`) for selective and broad terms at 10,000 and 100,000 fragments,
with the query plans, in a throwaway database. Fragments are generated in SQL
(`INSERT … SELECT generate_series`): half English, half Portuguese, words drawn with a steep
skew from a small vocabulary (a few words are in most fragments, most words in few), and one
rare marker word in 2 of every 1,000 fragments.

    .venv/bin/python -m benchmarks.search [--sizes 10000 100000] [--repeat 40]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import time
import uuid
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

ADMIN_DSN = os.environ.get("MMOS_BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _words(text: str) -> list[str]:
    return text.split()


ENGLISH = _words("""people trust work family change learn team value time decide listen build fear
hope father mother school money friend teach write read think feel believe remember story
project idea problem answer question mistake failure success habit morning night city sea
river mountain book music travel career company leader market customer product design code
science history patience courage honesty respect kindness anger doubt pride shame joy grief
""")
PORTUGUESE = _words("""
pessoas confiança trabalho família mudança aprender equipe valor tempo decidir ouvir
construir medo esperança pai mãe escola dinheiro amigo ensinar escrever ler pensar sentir
acreditar lembrar história projeto ideia problema resposta pergunta erro fracasso sucesso
hábito manhã noite cidade mar rio montanha livro música viagem carreira empresa líder
mercado
""")
MARKER = "zephyrine"  # in 2 of every 1,000 fragments: the selective term

QUERIES = [
    ("selective", MARKER),
    ("selective phrase", f'"{MARKER} people"'),
    ("medium", "courage"),
    ("broad", "people"),
    ("broad, two words", "people trust"),
    ("broad or", "people or pessoas"),
    ("broad minus", "people -trust"),
]

GENERATE = """
INSERT INTO fragments (fragment_code, run_id, batch_id, source_id, model_name, chunk_index,
                       ordinal, content, quote, grounding, grounding_score, category,
                       fragment_type, relevance, confidence, is_complete, has_clean_boundaries,
                       search_config)
SELECT 'FRAG_BENCH_' || g, :run, :batch, :source, 'bench-model', g / 1000, g % 1000,
       body || CASE WHEN g % 1000 < 2 THEN ' {marker} ' || :first_word ELSE '' END,
       '', 'exact', 100,
       (ARRAY['biographical','cognitive','communicative','behavioral','values_beliefs',
              'social','emotional','meta_cognitive','general'])[1 + g % 9],
       (ARRAY['direct_quote','paraphrase','description','example','pattern','anecdote',
              'analysis','synthesis'])[1 + g % 8],
       1 + g % 10, (g % 100) / 100.0, true, true, CAST(:config AS regconfig)
FROM (
  SELECT g, (SELECT string_agg(
                 (CAST(:words AS text[]))[1 + floor(power(random(), 3)
                                                  * cardinality(CAST(:words AS text[])))::int],
                 ' ')
             FROM generate_series(1, 12 + g % 12) AS w WHERE g IS NOT NULL) AS body
  FROM generate_series(CAST(:start AS integer), CAST(:stop AS integer)) AS g
) AS generated
"""


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


async def create_owners(connection: Any) -> dict[str, dict[str, int]]:
    """A model, two sources (en, pt), one batch, one run each; ids by language."""
    await connection.execute(sa.text(
        "INSERT INTO models (name, litellm_model, price_source) "
        "VALUES ('bench-model', 'mmos/rules-fast', 'none')"))
    batch = (await connection.execute(sa.text(
        "INSERT INTO processing_batches (group_id, model_name, status) "
        "VALUES ('bench', 'bench-model', 'completed') RETURNING id"))).scalar_one()
    ids = {}
    for language in ("en", "pt"):
        code = f"BENCH_{language}"
        source = (await connection.execute(sa.text(
            "INSERT INTO sources (source_code, title, source_type, quality, extraction_priority,"
            " content, content_sha256, word_count, char_count, language) VALUES "
            "(:code, 'Benchmark', 'interview', 'primary', 'medium', 'x', :sha, 1, 1, :language)"
            " RETURNING id"),
            {"code": code, "sha": hashlib.sha256(code.encode()).hexdigest(),
             "language": language})).scalar_one()
        run = (await connection.execute(sa.text(
            "INSERT INTO source_processing (batch_id, source_id, model_name, status) "
            "VALUES (:batch, :source, 'bench-model', 'completed') RETURNING id"),
            {"batch": batch, "source": source})).scalar_one()
        ids[language] = {"batch": batch, "source": source, "run": run}
    return ids


async def generate(connection: Any, ids: dict[str, dict[str, int]], start: int,
                   stop: int) -> None:
    """Fragments start..stop (inclusive), the odd ones English, the even ones Portuguese."""
    for language, words, config in (("en", ENGLISH, "english"), ("pt", PORTUGUESE,
                                                                  "portuguese")):
        await connection.execute(
            sa.text(GENERATE.format(marker=MARKER)
                    + (" WHERE g % 2 = 1" if language == "en" else " WHERE g % 2 = 0")),
            {**ids[language], "words": words, "first_word": words[0], "config": config,
             "start": start, "stop": stop})


async def settle(engine: Any) -> None:
    """VACUUM ANALYZE: statistics, and the GIN pending list merged into the index (what
    autovacuum does after bulk inserts; until then the planner prices the index high)."""
    async with engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(sa.text("VACUUM ANALYZE fragments"))


async def _measure(runtime: Any, text: str, repeat: int) -> tuple[list[float], int]:
    from db.search import search_fragments

    timings, total = [], 0
    for _ in range(repeat):
        async with runtime.read() as session:
            started = time.perf_counter()
            page = await search_fragments(session, text, None, 20, None)
            timings.append((time.perf_counter() - started) * 1000)
            total = page.total_count
    return timings, total


async def explain(session: Any, text: str, analyze: bool = False) -> list[str]:
    """The plan of the page query of a search for `text`."""
    from sqlalchemy.dialects import postgresql

    from db.search import search_statement

    sql = str(search_statement(text, None, 21).compile(
        dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    prefix = "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " if analyze else "EXPLAIN (COSTS OFF) "
    rows = await session.execute(sa.text(prefix + sql.replace(":", r"\:")))
    return [row[0] for row in rows]


async def _run(url: str, sizes: Iterable[int], repeat: int) -> None:
    from api.container import build_container
    from api.settings import Settings

    runtime = await build_container(Settings(env="test", _env_file=None),  # type: ignore[call-arg]
                                    database_url=url, migrate=False)
    try:
        async with runtime.engine.begin() as connection:
            ids = await create_owners(connection)
        done = 0
        results: dict[int, dict[str, tuple[float, float, int]]] = {}
        for size in sorted(sizes):
            started = time.perf_counter()
            async with runtime.engine.begin() as connection:
                await generate(connection, ids, done + 1, size)
            await settle(runtime.engine)
            done = size
            print(f"\n{size:,} fragments generated in {time.perf_counter() - started:.1f} s")
            results[size] = {}
            for label, text in QUERIES:
                await _measure(runtime, text, 3)  # warm the cache and the plan
                timings, total = await _measure(runtime, text, repeat)
                results[size][label] = (statistics.median(timings),
                                        _percentile(timings, 0.95), total)
            async with runtime.read() as session:
                for label, text in (("selective", MARKER), ("broad", "people")):
                    print(f"  plan, {label} ({text}):")
                    for line in await explain(session, text, analyze=True):
                        print("    " + line)
        _report(results)
    finally:
        await runtime.close()


def _report(results: dict[int, dict[str, tuple[float, float, int]]]) -> None:
    sizes = sorted(results)
    print("\nsearchFragments: page of 20 with total count (ms)")
    header = f"{'query':<18}" + "".join(f"{f'{s:,} p50':>12}{'p95':>8}{'hits':>8}" for s in sizes)
    print(header)
    for label, text in QUERIES:
        cells = "".join(f"{results[s][label][0]:>12.1f}{results[s][label][1]:>8.1f}"
                        f"{results[s][label][2]:>8}" for s in sizes)
        print(f"{label:<18}{cells}   {text}")
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        print(f"\nratio p50 {large:,}/{small:,} rows (data grew {large / small:.0f}x):")
        for label, _ in QUERIES:
            ratio = results[large][label][0] / max(results[small][label][0], 1e-6)
            print(f"  {label:<18}{ratio:6.1f}x")


async def _admin(statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(ADMIN_DSN)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def main() -> None:
    """Create a throwaway database, measure, drop it."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args()
    from db.migrate import upgrade_sync

    name = f"mmos_bench_{uuid.uuid4().hex[:10]}"
    base = ADMIN_DSN.rsplit("/", 1)[0]
    url = f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)
    asyncio.run(_admin(f"CREATE DATABASE {name}"))
    try:
        upgrade_sync(url)
        asyncio.run(_run(url, args.sizes, args.repeat))
    finally:
        asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


if __name__ == "__main__":
    main()
