"""Fragment codes come from counter rows advanced atomically: concurrent writers never collide."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from db.processing import allocate_codes
from domain.model import Category


async def _allocate(runtime: Any, categories: list[Category]) -> list[str]:
    async with runtime.engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        return await allocate_codes(connection, categories)


async def test_codes_follow_each_category_counter_in_request_order(db: Any) -> None:
    # Given / When
    first = await _allocate(db, [Category.COGNITIVE, Category.VALUES_BELIEFS, Category.COGNITIVE])
    second = await _allocate(db, [Category.VALUES_BELIEFS, Category.BIOGRAPHICAL])
    # Then
    assert first == ["FRAG_COG_001", "FRAG_VAL_001", "FRAG_COG_002"]
    assert second == ["FRAG_VAL_002", "FRAG_BIO_001"]
    assert await _allocate(db, []) == []


async def test_concurrent_writers_of_overlapping_categories_never_collide_or_deadlock(
        db: Any) -> None:
    # Given: 40 writers, each wanting a random mix of the same few categories
    rng = random.Random(7)
    pool = [Category.COGNITIVE, Category.VALUES_BELIEFS, Category.EMOTIONAL, Category.SOCIAL,
            Category.BEHAVIORAL]
    wants = [[rng.choice(pool) for _ in range(rng.randint(1, 8))] for _ in range(40)]
    # When: they all allocate at once
    results = await asyncio.wait_for(
        asyncio.gather(*(_allocate(db, want) for want in wants)), timeout=60)
    # Then: every code is unique and each category's codes are exactly 1..n
    codes = [code for result in results for code in result]
    assert len(codes) == len(set(codes)) == sum(len(want) for want in wants)
    for category in pool:
        numbers = sorted(int(code.rsplit("_", 1)[1]) for code in codes
                         if code.startswith(f"FRAG_{category.code}_"))
        assert numbers == list(range(1, len(numbers) + 1)), category
