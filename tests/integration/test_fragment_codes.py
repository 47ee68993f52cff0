"""Fragment codes come from counter rows advanced atomically: concurrent writers never collide."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from db.processing import ChunkUsage, ProcessingRepository, store_chunk
from domain.extraction import PreparedFragment
from domain.model import Category, FragmentType, Grounding
from tests.support.graph_data import seed_source


def _fragment(ordinal: int, category: Category) -> PreparedFragment:
    return PreparedFragment(
        ordinal=ordinal, content=f"claim {ordinal}", quote=f"claim {ordinal}", char_start=0,
        char_end=5, grounding=Grounding.EXACT, grounding_score=100.0, category=category,
        subcategory=None, fragment_type=FragmentType.DIRECT_QUOTE, context=None, insight=None,
        relevance=5, confidence=0.5, is_complete=True, has_clean_boundaries=True, tags=())


async def _store(runtime: Any, run_id: int, chunk: int, categories: list[Category]) -> None:
    """The pipeline's path for a new chunk: one autocommit statement, codes taken inside."""
    async with runtime.read() as session:
        ctx = await ProcessingRepository(session).run_context(run_id)
    assert ctx is not None
    async with runtime.engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await store_chunk(connection, ctx, chunk_index=chunk, char_start=0, char_end=5,
                          fragments=[_fragment(i, c) for i, c in enumerate(categories)],
                          usage=ChunkUsage(1, 1, Decimal(0), 1, 1), codes=None,
                          replacing=False)


async def _codes(runtime: Any, run_id: int | None = None) -> list[str]:
    async with runtime.read() as session:
        rows = await session.execute(sa.text(
            "SELECT fragment_code FROM fragments"
            " WHERE CAST(:r AS bigint) IS NULL OR run_id = :r"
            " ORDER BY chunk_index, ordinal"), {"r": run_id})
        return list(rows.scalars())


async def test_codes_follow_each_category_counter_in_fragment_order(db: Any) -> None:
    # Given
    seeded = await seed_source(db, [])
    # When
    await _store(db, seeded.run_id, 0, [Category.COGNITIVE, Category.VALUES_BELIEFS,
                                        Category.COGNITIVE])
    await _store(db, seeded.run_id, 1, [Category.VALUES_BELIEFS, Category.GENERAL])
    # Then
    assert await _codes(db, seeded.run_id) == [
        "FRAG_COG_001", "FRAG_VAL_001", "FRAG_COG_002", "FRAG_VAL_002", "FRAG_GEN_001"]


async def test_codes_past_nine_hundred_ninety_nine_keep_every_digit(db: Any) -> None:
    # Given: a counter far along
    seeded = await seed_source(db, [])
    async with db.transaction() as session:
        await session.execute(sa.text(
            "UPDATE fragment_code_counters SET last_value = 998 WHERE category_code = 'EMO'"))
    # When
    await _store(db, seeded.run_id, 0, [Category.EMOTIONAL] * 3)
    # Then
    assert await _codes(db, seeded.run_id) == ["FRAG_EMO_999", "FRAG_EMO_1000", "FRAG_EMO_1001"]


async def test_concurrent_writers_of_overlapping_categories_never_collide_or_deadlock(
        db: Any) -> None:
    # Given: 30 runs, each storing two chunks of a random mix of the same few categories
    rng = random.Random(7)
    pool = [Category.COGNITIVE, Category.VALUES_BELIEFS, Category.EMOTIONAL, Category.SOCIAL,
            Category.BEHAVIORAL]
    runs = [(await seed_source(db, [])).run_id for _ in range(30)]
    wants = [(run, chunk, [rng.choice(pool) for _ in range(rng.randint(1, 8))])
             for run in runs for chunk in range(2)]
    # When: they all store at once
    await asyncio.wait_for(asyncio.gather(*(_store(db, run, chunk, categories)
                                            for run, chunk, categories in wants)), timeout=60)
    # Then: every code is unique and each category's codes are exactly 1..n
    codes = await _codes(db)
    assert len(codes) == len(set(codes)) == sum(len(c) for _, _, c in wants)
    for category in pool:
        numbers = sorted(int(code.rsplit("_", 1)[1]) for code in codes
                         if code.startswith(f"FRAG_{category.code}_"))
        assert numbers == list(range(1, len(numbers) + 1)), category
