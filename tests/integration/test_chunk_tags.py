"""Storing a chunk tags its fragments, creating tags on first use, even under a race."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa

from db.engine import sqlstate_of
from db.processing import (
    CHUNK_RUN_INACTIVE,
    CHUNK_STORED_BEFORE,
    CHUNK_TAG_RACE,
    ChunkUsage,
    ProcessingRepository,
    RunNotActive,
    store_chunk,
)
from domain.extraction import PreparedFragment
from domain.model import Category, FragmentType, Grounding
from tests.support.graph_data import seed_source


def _fragment(ordinal: int, tags: tuple[str, ...]) -> PreparedFragment:
    return PreparedFragment(
        ordinal=ordinal, content=f"claim {ordinal}", quote=f"claim {ordinal}", char_start=0,
        char_end=5, grounding=Grounding.EXACT, grounding_score=100.0,
        category=Category.COGNITIVE, subcategory=None, fragment_type=FragmentType.DIRECT_QUOTE,
        context=None, insight=None, relevance=5, confidence=0.5, is_complete=True,
        has_clean_boundaries=True, tags=tags)


async def _save(runtime: Any, run_id: int, fragments: list[PreparedFragment]) -> None:
    async with runtime.transaction() as session:
        repository = ProcessingRepository(session)
        ctx = await repository.run_context(run_id)
        assert ctx is not None
        await repository.save_chunk(
            ctx, chunk_index=7, char_start=0, char_end=50, fragments=fragments,
            usage=ChunkUsage(1, 1, Decimal(0), 1, 1),
            codes=[f"FRAG_COG_9{f.ordinal:02d}" for f in fragments])


async def _tags_of(runtime: Any, run_id: int) -> dict[int, list[str]]:
    async with runtime.read() as session:
        rows = await session.execute(sa.text(
            "SELECT f.ordinal, t.name FROM fragments f JOIN fragment_tags ft"
            " ON ft.fragment_id = f.id JOIN tags t ON t.id = ft.tag_id"
            " WHERE f.run_id = :r AND f.chunk_index = 7 ORDER BY 1, 2"), {"r": run_id})
        tagged: dict[int, list[str]] = {}
        for row in rows:
            tagged.setdefault(row.ordinal, []).append(row.name)
        return tagged


async def test_new_and_known_tags_are_linked_and_a_redo_replaces_them(db: Any) -> None:
    # Given: a run, and one tag that already exists
    seeded = await seed_source(db, [])
    async with db.transaction() as session:
        await session.execute(sa.text("INSERT INTO tags (name) VALUES ('family')"))
    # When
    await _save(db, seeded.run_id, [_fragment(0, ("family", "work")), _fragment(1, ()),
                                    _fragment(2, ("work",))])
    # Then
    assert await _tags_of(db, seeded.run_id) == {0: ["family", "work"], 2: ["work"]}
    # When: the chunk is stored again (a redelivered job) with other tags
    await _save(db, seeded.run_id, [_fragment(0, ("values",))])
    # Then: its fragments are replaced, tags and all; tags themselves are kept
    assert await _tags_of(db, seeded.run_id) == {0: ["values"]}
    async with db.read() as session:
        names = (await session.execute(sa.text("SELECT name FROM tags ORDER BY 1"))).scalars()
        assert list(names) == ["family", "values", "work"]


async def _while_a_writer_creates(database_url: str, tag: str, store: Any) -> BaseException | None:
    """Run `store()` while another connection creates `tag`: uncommitted when the store
    starts, committed half a second later. Returns what the store raised, if anything."""
    other = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        transaction = other.transaction()
        await transaction.start()
        await other.execute("INSERT INTO tags (name) VALUES ($1)", tag)
        storing = asyncio.create_task(store())
        await asyncio.sleep(0.5)
        assert not storing.done()  # it waits on the other writer's tag row
        await transaction.commit()
        try:
            await asyncio.wait_for(storing, 10)
        except Exception as exc:
            return exc
        return None
    finally:
        await other.close()


async def test_a_tag_created_concurrently_by_another_writer_is_still_linked(
        db: Any, database_url: str) -> None:
    # Given: a run
    seeded = await seed_source(db, [])
    # When: the chunk is stored while another writer creates its tag
    raised = await _while_a_writer_creates(
        database_url, "courage", lambda: _save(db, seeded.run_id, [_fragment(0, ("courage",))]))
    # Then: the fragment carries the tag the other writer created
    assert raised is None
    assert await _tags_of(db, seeded.run_id) == {0: ["courage"]}


async def _store_new(runtime: Any, run_id: int, fragments: list[PreparedFragment]) -> int:
    """The pipeline's fast path: one autocommit statement for a chunk never stored before."""
    async with runtime.read() as session:
        ctx = await ProcessingRepository(session).run_context(run_id)
    assert ctx is not None
    async with runtime.engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        return await store_chunk(
            connection, ctx, chunk_index=7, char_start=0, char_end=50, fragments=fragments,
            usage=ChunkUsage(1, 1, Decimal(0), 1, 1),
            codes=[f"FRAG_COG_8{f.ordinal:02d}" for f in fragments], replacing=False)


async def _written(runtime: Any, run_id: int) -> tuple[int, int, int]:
    async with runtime.read() as session:
        row = (await session.execute(sa.text(
            "SELECT (SELECT count(*) FROM fragments WHERE run_id = :r),"
            " (SELECT count(*) FROM run_chunks WHERE run_id = :r),"
            " (SELECT count(*) FROM batch_events e JOIN source_processing p"
            "  ON p.batch_id = e.batch_id WHERE p.id = :r)"), {"r": run_id})).one()
        return int(row[0]), int(row[1]), int(row[2])


async def test_the_one_statement_path_stores_a_new_chunk_and_counts_it(db: Any) -> None:
    seeded = await seed_source(db, [])
    # When
    seq = await _store_new(db, seeded.run_id, [_fragment(0, ("work",)), _fragment(1, ())])
    # Then
    assert seq == 1
    assert await _written(db, seeded.run_id) == (2, 1, 1)
    assert await _tags_of(db, seeded.run_id) == {0: ["work"]}
    async with db.read() as session:
        done = (await session.execute(sa.text(
            "SELECT chunks_done FROM source_processing WHERE id = :r"),
            {"r": seeded.run_id})).scalar_one()
    assert done == 1


async def test_the_one_statement_path_refuses_a_stored_chunk_and_writes_nothing(db: Any) -> None:
    # Given: the chunk is already stored
    seeded = await seed_source(db, [])
    await _store_new(db, seeded.run_id, [_fragment(0, ())])
    # When / Then: storing it again as new aborts as a whole
    with pytest.raises(sa.exc.DBAPIError) as raised:
        await _store_new(db, seeded.run_id, [_fragment(0, ()), _fragment(1, ("new",))])
    assert sqlstate_of(raised.value) in (CHUNK_STORED_BEFORE, "23505")
    assert await _written(db, seeded.run_id) == (1, 1, 1)
    async with db.read() as session:
        assert (await session.execute(sa.text("SELECT count(*) FROM tags"))).scalar_one() == 0


async def test_a_skipped_run_gets_nothing_stored_on_either_path(db: Any) -> None:
    # Given: cancelBatch has skipped the run
    seeded = await seed_source(db, [])
    async with db.transaction() as session:
        await session.execute(sa.text("UPDATE source_processing SET status = 'skipped'"
                                      " WHERE id = :r"), {"r": seeded.run_id})
    # When / Then
    with pytest.raises(sa.exc.DBAPIError) as raised:
        await _store_new(db, seeded.run_id, [_fragment(0, ("work",))])
    assert sqlstate_of(raised.value) == CHUNK_RUN_INACTIVE
    with pytest.raises(RunNotActive):
        await _save(db, seeded.run_id, [_fragment(0, ("work",))])
    assert await _written(db, seeded.run_id) == (0, 0, 0)


async def test_a_tag_race_aborts_the_one_statement_path_with_nothing_written(
        db: Any, database_url: str) -> None:
    # Given: a run
    seeded = await seed_source(db, [])
    # When: the fast path stores the chunk while another writer creates its tag
    raised = await _while_a_writer_creates(
        database_url, "courage",
        lambda: _store_new(db, seeded.run_id, [_fragment(0, ("courage",))]))
    # Then: the statement aborted whole (the pipeline then replaces in a transaction)
    assert isinstance(raised, sa.exc.DBAPIError)
    assert sqlstate_of(raised) == CHUNK_TAG_RACE
    assert await _written(db, seeded.run_id) == (0, 0, 0)
