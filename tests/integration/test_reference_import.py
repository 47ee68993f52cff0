"""Importing a fragment file of near-verbatim quotes against a book-length source, on the real
PostgreSQL: placed at their true spans or left ungrounded, never misplaced; idempotent;
refusals write nothing."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from domain.errors import InvalidInput, NotFound
from domain.model import Span
from domain.services.reference import import_reference_fragments
from domain.services.sources import create_source
from tests.support.reference_data import Quote, book, mmos_yaml, quotes


async def stored_rows(runtime: Any) -> list[Any]:
    async with runtime.read() as session:
        result = await session.execute(sa.text(
            "SELECT id, external_id, char_start, char_end, verification_status, updated_at, "
            "imported_at FROM reference_fragments ORDER BY id"))
        return list(result)


@pytest.fixture
async def setting(db: Any) -> tuple[Any, int, str, list[Quote]]:
    text, marks = book()
    assert len(text) >= 150_000
    source = await create_source(db.ports, {"source_code": "BOOK_1", "title": "A book",
                                            "source_type": "book", "content": text})
    made = quotes(text, marks, count=38)
    # Two that are not in the book: a passage with most of its words changed.
    for number, (start, end, _) in enumerate(m for m in marks[200:202]):
        words = text[start:end].split(" ")
        changed = " ".join(w if i % 2 else "zebra" for i, w in enumerate(words))
        made.append(Quote(f"FRAG_REF_X{number}", changed, start, end, "altered"))
    return db, source.id, text, made


async def test_near_verbatim_quotes_land_on_their_true_spans_or_stay_ungrounded(
        setting: tuple[Any, int, str, list[Quote]]) -> None:
    runtime, source_id, text, made = setting
    # When
    result = await import_reference_fragments(runtime.ports, source_id, "mmos_yaml",
                                              mmos_yaml(made), "ana", "book.yaml")
    # Then: at least 90% grounded at their true span, none at a wrong place
    truth = {q.external_id: Span(q.start, q.end) for q in made}
    placed = {row.external_id: Span(row.char_start, row.char_end) for row in result.grounded}
    exact = [key for key, span in placed.items() if span.iou(truth[key]) >= 0.9]
    assert len(exact) >= 0.9 * len(made), sorted(set(truth) - set(exact))
    assert all(span.overlap(truth[key]) > 0 for key, span in placed.items())
    assert all(row.verification_status == "verified" for row in result.grounded)
    # the others come back with their closest span
    assert {item.external_id for item in result.ungrounded} | set(placed) == set(truth)
    for item in result.ungrounded:
        assert item.closest_start is not None and item.closest_end is not None
        assert Span(item.closest_start, item.closest_end).overlap(truth[item.external_id]) > 0
        assert item.closest_text == text[item.closest_start:item.closest_end]
    assert {"FRAG_REF_X0", "FRAG_REF_X1"} <= {i.external_id for i in result.ungrounded}
    assert result.created == len(made)
    rows = await stored_rows(runtime)
    assert len(rows) == len(made)
    review = [r for r in rows if r.verification_status == "needs_review"]
    assert all(r.char_start is None for r in review) and len(review) == len(result.ungrounded)


async def test_reimporting_the_same_file_changes_nothing(
        setting: tuple[Any, int, str, list[Quote]]) -> None:
    runtime, source_id, _, made = setting
    data = mmos_yaml(made)
    await import_reference_fragments(runtime.ports, source_id, "mmos_yaml", data, "ana",
                                     "book.yaml")
    before = await stored_rows(runtime)
    # When
    again = await import_reference_fragments(runtime.ports, source_id, "mmos_yaml", data,
                                             "ana", "book.yaml")
    # Then
    assert (again.created, again.updated, again.unchanged) == (0, 0, len(made))
    assert await stored_rows(runtime) == before
    # and one changed fragment is updated in place, keeping its id and first import time
    changed = data.replace('category: "Cognitive"', 'category: "EMO"', 1)
    third = await import_reference_fragments(runtime.ports, source_id, "mmos_yaml", changed,
                                             "ana", "book.yaml")
    assert (third.created, third.updated, third.unchanged) == (0, 1, len(made) - 1)
    after = await stored_rows(runtime)
    assert [r.id for r in after] == [r.id for r in before]
    assert after[0].imported_at == before[0].imported_at


@pytest.mark.parametrize("data, fmt, path, words", [
    ('id: "A"\ncontent: "x"\n---\nid: "B"\ncontent: [x\n', "mmos_yaml", "input.data",
     "line 6, column 1"),
    ('id: "A"\ncontent: "x"\ncategory: "Nonsense"\n', "mmos_yaml", "input.data.0.category",
     "line 3"),
    ('{"id": "A", "content": "x"\n', "jsonl", "input.data", "line 1, column 27"),
])
async def test_bad_files_are_refused_with_their_place_and_nothing_is_written(
        setting: tuple[Any, int, str, list[Quote]], data: str, fmt: str, path: str,
        words: str) -> None:
    runtime, source_id, _, _ = setting
    with pytest.raises(InvalidInput) as refused:
        await import_reference_fragments(runtime.ports, source_id, fmt, data, "ana")
    [issue] = refused.value.issues
    assert ".".join(issue.path) == path and words in issue.message
    assert await stored_rows(runtime) == []


async def test_an_unknown_source_and_an_oversize_file_write_nothing(
        setting: tuple[Any, int, str, list[Quote]]) -> None:
    runtime, source_id, _, made = setting
    with pytest.raises(NotFound) as missing:
        await import_reference_fragments(runtime.ports, source_id + 1000, "mmos_yaml",
                                         mmos_yaml(made), "ana")
    assert missing.value.path == ("input", "sourceId")
    big = "x" * (runtime.ports.settings.max_reference_import_bytes + 1)
    with pytest.raises(InvalidInput) as oversize:
        await import_reference_fragments(runtime.ports, source_id, "jsonl", big, "ana")
    assert "MMOS_MAX_REFERENCE_IMPORT_BYTES" in oversize.value.issues[0].message
    assert await stored_rows(runtime) == []
