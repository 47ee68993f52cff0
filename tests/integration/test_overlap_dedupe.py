"""End-of-run deduplication: a fragment found again in a later, overlapping chunk is dropped."""

from __future__ import annotations

import random
from typing import Any

import sqlalchemy as sa

from db.processing import ProcessingRepository
from tests.support.graph_data import seed_source


async def _dedupe_and_keep(runtime: Any, run_id: int) -> set[int]:
    async with runtime.transaction() as session:
        await ProcessingRepository(session)._drop_overlap_duplicates(run_id)
    async with runtime.read() as session:
        rows = await session.execute(sa.text("SELECT ordinal, chunk_index FROM fragments"
                                             " WHERE run_id = :r"), {"r": run_id})
        return {row.chunk_index * 1000 + row.ordinal for row in rows}


def _survivors(spans: list[tuple[int, int, int | None, int | None]]) -> set[int]:
    """The rule by brute force: drop a grounded fragment when an earlier one of another chunk
    covers it with span IoU >= 0.8."""
    kept = set()
    for chunk, ordinal, start, end in spans:
        duplicate = start is not None and end is not None and any(
            s is not None and e is not None and c != chunk and (c, o) < (chunk, ordinal)
            and min(end, e) - max(start, s) >= 0.8 * (max(end, e) - min(start, s))
            for c, o, s, e in spans)
        if not duplicate:
            kept.add(chunk * 1000 + ordinal)
    return kept


async def _seed(runtime: Any, spans: list[tuple[int, int, int | None, int | None]]) -> int:
    seeded = await seed_source(
        runtime, [f"fragment {i}" for i in range(len(spans))],
        chunk_index=[s[0] for s in spans], ordinal=[s[1] for s in spans],
        char_start=[s[2] for s in spans], char_end=[s[3] for s in spans],
        grounding=["ungrounded" if s[2] is None else "exact" for s in spans])
    return seeded.run_id


async def test_repeats_from_later_chunks_go_and_distinct_spans_stay(db: Any) -> None:
    # Given: (chunk, ordinal, start, end)
    spans: list[tuple[int, int, int | None, int | None]] = [
        (0, 0, 0, 100),     # the first finding
        (0, 1, 0, 100),     # the same chunk said it twice: not an overlap repeat, kept
        (1, 0, 0, 100),     # found again in the next chunk: dropped
        (1, 1, 20, 100),    # IoU exactly 0.8 with the first: dropped
        (1, 2, 21, 100),    # IoU 0.79: kept
        (2, 0, 200, 300),   # new text
        (3, 0, 205, 300),   # its repeat (IoU 0.95): dropped
        (3, 1, None, None),  # ungrounded: never a span duplicate
        (4, 0, None, None),
    ]
    run_id = await _seed(db, spans)
    # When / Then
    assert await _dedupe_and_keep(db, run_id) == {0, 1, 1002, 2000, 3001, 4000}
    assert _survivors(spans) == {0, 1, 1002, 2000, 3001, 4000}


async def test_random_overlapping_runs_keep_exactly_what_the_rule_keeps(db: Any) -> None:
    rng = random.Random(11)
    for _ in range(5):
        # Given: chunks that overlap their neighbours, fragments repeated with jitter
        spans: list[tuple[int, int, int | None, int | None]] = []
        for chunk in range(12):
            for ordinal in range(rng.randint(2, 9)):
                if rng.random() < 0.1:
                    spans.append((chunk, ordinal, None, None))
                    continue
                start = chunk * 300 + rng.randint(-150, 300)
                length = rng.choice([rng.randint(5, 40), rng.randint(40, 400)])
                spans.append((chunk, ordinal, max(0, start), max(0, start) + length))
        for chunk, ordinal, start, end in list(spans):
            if start is not None and end is not None and rng.random() < 0.3:
                jitter = rng.randint(0, max(1, (end - start) // 6))
                spans.append((chunk + 1, 100 + ordinal, start + jitter, end))
        run_id = await _seed(db, spans)
        # When / Then
        assert await _dedupe_and_keep(db, run_id) == _survivors(spans)
