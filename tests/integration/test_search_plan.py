"""The search query is answered from the GIN index on the stored tsvector, not a table scan."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from benchmarks.search import MARKER, create_owners, explain, generate, settle


async def _fragments(runtime: Any, count: int) -> None:
    async with runtime.engine.begin() as connection:
        ids = await create_owners(connection)
        await generate(connection, ids, 1, count)


async def test_search_uses_the_gin_index_when_scans_are_priced_out(db: Any) -> None:
    # Given
    await _fragments(db, 2000)
    # When
    async with db.transaction() as session:
        await session.execute(sa.text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(await explain(session, MARKER))
    # Then
    assert "Bitmap Index Scan on ix_fragments_search" in plan
    assert "Index Cond: (search_vector @@" in plan
    assert "Seq Scan on fragments" not in plan


async def test_planner_picks_the_gin_index_for_a_selective_term(db: Any) -> None:
    # Given: enough rows, with statistics and the index's pending list merged
    await _fragments(db, 6000)
    await settle(db.engine)
    # When
    async with db.read() as session:
        plan = "\n".join(await explain(session, MARKER, analyze=True))
    # Then
    assert "Bitmap Index Scan on ix_fragments_search" in plan
    assert "Seq Scan on fragments" not in plan
