"""Fragments written straight to PostgreSQL for graph tests (no model runs needed)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from db.tables import BatchRow, FragmentRow, RunRow, SourceRow
from domain.sources import search_config_for


@dataclass
class Seeded:
    """Ids of what `seed_source` wrote."""

    source_id: int
    batch_id: int
    run_id: int
    fragment_ids: list[int] = field(default_factory=list)


_COUNTER = {"n": 0}


def _next() -> int:
    _COUNTER["n"] += 1
    return _COUNTER["n"]


async def seed_source(runtime: Any, contents: list[str], *, language: str = "en",
                      model: str = "rules-fast", **fragment_fields: Any) -> Seeded:
    """One source with one completed run of `model` holding a fragment per content string.

    `fragment_fields` override columns of every fragment (category, relevance…); a value may
    be a list with one entry per fragment.
    """
    n = _next()
    text = " ".join(contents) + f" [{n}]"
    async with runtime.transaction() as session:
        source_id = (await session.execute(sa.insert(SourceRow).values(
            source_code=f"SRC_{n:05d}", title=f"Source {n}", source_type="interview",
            quality="primary", extraction_priority="medium", status="processed", content=text,
            content_sha256=hashlib.sha256(text.encode()).hexdigest(),
            word_count=len(text.split()), char_count=len(text), language=language,
        ).returning(SourceRow.__table__.c.id))).scalar_one()  # type: ignore[attr-defined]
        batch_id = (await session.execute(sa.insert(BatchRow).values(
            group_id=f"group-{n}", model_name=model, status="completed",
        ).returning(BatchRow.__table__.c.id))).scalar_one()  # type: ignore[attr-defined]
        run_id = (await session.execute(sa.insert(RunRow).values(
            batch_id=batch_id, source_id=source_id, model_name=model, status="completed",
            fragment_count=len(contents), grounded_count=len(contents),
        ).returning(RunRow.__table__.c.id))).scalar_one()  # type: ignore[attr-defined]
        rows = [_fragment(n, index, content, source_id, batch_id, run_id, model, language,
                          fragment_fields) for index, content in enumerate(contents)]
        ids = []
        if rows:
            ids = list((await session.execute(sa.insert(FragmentRow).values(rows).returning(
                FragmentRow.__table__.c.id))).scalars())  # type: ignore[attr-defined]
    return Seeded(source_id, batch_id, run_id, ids)


def _fragment(n: int, index: int, content: str, source_id: int, batch_id: int, run_id: int,
              model: str, language: str, overrides: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "fragment_code": f"FRAG_T{n:05d}_{index:04d}", "run_id": run_id, "batch_id": batch_id,
        "source_id": source_id, "model_name": model, "chunk_index": 0, "ordinal": index,
        "content": content, "quote": content, "char_start": index * 10,
        "char_end": index * 10 + 5, "grounding": "exact", "grounding_score": 100.0,
        "category": "cognitive", "fragment_type": "direct_quote", "relevance": 5,
        "confidence": 0.5, "is_complete": True, "has_clean_boundaries": True,
        "search_config": search_config_for(language),
    }
    for key, value in overrides.items():
        row[key] = value[index] if isinstance(value, list) else value
    return row


async def count_rows(runtime: Any, table: str) -> int:
    """Rows in a table (to show that nothing was written)."""
    async with runtime.read() as session:
        return int((await session.execute(sa.text(f"SELECT count(*) FROM {table}"))).scalar_one())
