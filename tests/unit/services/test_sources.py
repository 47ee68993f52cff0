"""Source use cases (domain/services/sources.py) against in-memory fakes."""

from __future__ import annotations

from typing import Any

import pytest

from domain.errors import Conflict, InvalidInput, NotFound
from domain.services import sources
from tests.support.fakes import fakes_of, make_ports


def raw(code: str = "INT-001", content: str = "I like tea. I never drink coffee.",
        **values: Any) -> dict[str, Any]:
    return {"source_code": code, "title": "An interview", "content": content, **values}


def paths(exc: InvalidInput) -> list[tuple[str, ...]]:
    return [issue.path for issue in exc.issues]


# --- create_source ----------------------------------------------------------------------------


async def test_create_source_stores_a_valid_source_and_commits() -> None:
    # Given
    ports = make_ports()
    # When
    row = await sources.create_source(ports, raw(source_type="podcast", language="pt"))
    # Then
    fake = fakes_of(ports)
    assert fake.state.sources[row.id] is row
    assert (row.source_code, row.source_type, row.language) == ("INT-001", "podcast", "pt")
    assert [u.committed for u in fake.units] == [True]


async def test_create_source_refuses_invalid_fields_naming_each_path_before_any_write() -> None:
    # Given
    ports = make_ports()
    # When
    with pytest.raises(InvalidInput) as caught:
        await sources.create_source(ports, {"source_code": "x", "url": "ftp://a"})
    # Then
    assert paths(caught.value) == [("input", "sourceCode"), ("input", "title"),
                                   ("input", "content"), ("input", "url")]
    assert fakes_of(ports).units == []


async def test_create_source_names_fields_under_the_given_prefix() -> None:
    # Given
    ports = make_ports()
    # When
    with pytest.raises(InvalidInput) as caught:
        await sources.create_source(ports, raw(title="  "), prefix=())
    # Then
    assert paths(caught.value) == [("title",)]


async def test_create_source_refuses_content_over_the_configured_limit() -> None:
    # Given
    ports = make_ports(max_content_bytes=10)
    # When
    with pytest.raises(InvalidInput) as caught:
        await sources.create_source(ports, raw(content="x" * 11))
    # Then
    assert paths(caught.value) == [("input", "content")]
    assert "limit is 10 bytes" in caught.value.issues[0].message


async def test_create_source_refuses_a_duplicate_code_and_rolls_back() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    existing = fake.add_source("INT-001")
    # When
    with pytest.raises(Conflict) as caught:
        await sources.create_source(ports, raw("INT-001"))
    # Then
    assert caught.value.path == ("input", "sourceCode")
    assert caught.value.existing_id == str(existing.id)
    assert list(fake.state.sources) == [existing.id]
    assert [u.rolled_back for u in fake.units] == [True]


async def test_create_source_refuses_duplicate_content_naming_the_content_field() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    fake.add_source("INT-001", content="Same words.")
    # When
    with pytest.raises(Conflict) as caught:
        await sources.create_source(ports, raw("INT-002", content="Same words."), prefix=())
    # Then
    assert caught.value.path == ("content",)
    assert len(fake.state.sources) == 1


# --- ensure_source ----------------------------------------------------------------------------


async def test_ensure_source_returns_the_source_with_that_code_without_adding_one() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    existing = fake.add_source("DEMO-1")
    # When
    row = await sources.ensure_source(ports, raw("DEMO-1", content="Other content."))
    # Then
    assert row.id == existing.id
    assert len(fake.state.sources) == 1
    assert "sources.add" not in fake.call_names()


async def test_ensure_source_stores_a_source_whose_code_is_new() -> None:
    # Given
    ports = make_ports()
    # When
    row = await sources.ensure_source(ports, raw("DEMO-2"))
    # Then
    fake = fakes_of(ports)
    assert fake.state.sources[row.id].source_code == "DEMO-2"
    assert [u.committed for u in fake.units] == [True]


async def test_ensure_source_refuses_invalid_input_with_unprefixed_paths() -> None:
    # Given
    ports = make_ports()
    # When
    with pytest.raises(InvalidInput) as caught:
        await sources.ensure_source(ports, raw(title=None))
    # Then
    assert paths(caught.value) == [("title",)]
    assert fakes_of(ports).units == []


# --- update_source ----------------------------------------------------------------------------


async def test_update_source_refuses_a_request_naming_no_field() -> None:
    # Given
    ports = make_ports()
    fakes_of(ports).add_source()
    # When
    with pytest.raises(InvalidInput) as caught:
        await sources.update_source(ports, 1, {})
    # Then
    assert paths(caught.value) == [("input",)]
    assert fakes_of(ports).units == []


async def test_update_source_changes_only_the_named_fields() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    row = fake.add_source("INT-001", title="Old", author="Ann")
    # When
    updated = await sources.update_source(ports, row.id or 0,
                                          {"title": " New ", "quality": "secondary"})
    # Then
    stored = fake.state.sources[row.id or 0]
    assert updated is stored
    assert (stored.title, stored.quality, stored.author) == ("New", "secondary", "Ann")
    assert [u.committed for u in fake.units] == [True]


@pytest.mark.parametrize(("change", "path"), [
    ({"title": None}, ("input", "title")),
    ({"source_code": "lower"}, ("input", "sourceCode")),
    ({"content": None}, ("input", "content")),
    ({"language": "english!"}, ("input", "language")),
    ({"url": "mailto:a@b"}, ("input", "url")),
    ({"source_type": None}, ("input", "sourceType")),
    ({"extraction_priority": None}, ("input", "extractionPriority")),
])
async def test_update_source_refuses_invalid_changes_naming_their_field(
        change: dict[str, Any], path: tuple[str, ...]) -> None:
    # Given
    ports = make_ports()
    row = fakes_of(ports).add_source()
    # When
    with pytest.raises(InvalidInput) as caught:
        await sources.update_source(ports, row.id or 0, change)
    # Then
    assert paths(caught.value) == [path]
    assert fakes_of(ports).units == []


async def test_update_source_refuses_content_over_the_configured_limit() -> None:
    # Given
    ports = make_ports(max_content_bytes=8)
    row = fakes_of(ports).add_source()
    # When
    with pytest.raises(InvalidInput) as caught:
        await sources.update_source(ports, row.id or 0, {"content": "123456789"})
    # Then
    assert paths(caught.value) == [("input", "content")]


async def test_update_source_refuses_an_unknown_source() -> None:
    # Given
    ports = make_ports()
    # When
    with pytest.raises(NotFound) as caught:
        await sources.update_source(ports, 42, {"title": "New"})
    # Then
    assert (caught.value.kind, caught.value.key, caught.value.path) == \
        ("Source", "42", ("input", "id"))
    assert [u.rolled_back for u in fakes_of(ports).units] == [True]


async def test_update_source_refusing_a_clash_writes_nothing() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    fake.add_source("INT-001")
    row = fake.add_source("INT-002", title="Keep")
    # When
    with pytest.raises(Conflict) as caught:
        await sources.update_source(ports, row.id or 0,
                                    {"title": "Changed", "source_code": "INT-001"})
    # Then
    assert caught.value.path == ("input", "sourceCode")
    assert fake.state.sources[row.id or 0].title == "Keep"


# --- delete_source ----------------------------------------------------------------------------


async def test_delete_source_deletes_and_returns_the_row() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    row = fake.add_source()
    fake.add_run(1, row.id or 0, status="completed")
    # When
    deleted = await sources.delete_source(ports, row.id or 0)
    # Then
    assert deleted.source_code == row.source_code
    assert fake.state.sources == {}
    assert fake.state.runs == {}


async def test_delete_source_refuses_an_unknown_source() -> None:
    # Given
    ports = make_ports()
    # When
    with pytest.raises(NotFound) as caught:
        await sources.delete_source(ports, 7)
    # Then
    assert caught.value.path == ("input", "id")


async def test_delete_source_refuses_while_runs_are_active_and_keeps_it() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    row = fake.add_source()
    fake.add_run(1, row.id or 0, status="processing")
    # When
    with pytest.raises(Conflict) as caught:
        await sources.delete_source(ports, row.id or 0)
    # Then
    assert caught.value.path == ("input", "id")
    assert list(fake.state.sources) == [row.id]
    assert [u.rolled_back for u in fake.units] == [True]


# --- import_sources ---------------------------------------------------------------------------


async def test_import_sources_refuses_an_empty_list() -> None:
    # Given
    ports = make_ports()
    # When
    with pytest.raises(InvalidInput) as caught:
        await sources.import_sources(ports, [])
    # Then
    assert paths(caught.value) == [("input", "sources")]
    assert fakes_of(ports).units == []


async def test_import_sources_refuses_more_items_than_the_configured_limit() -> None:
    # Given
    ports = make_ports(max_import_items=2)
    items = [raw(f"INT-00{i}", content=f"text {i}") for i in range(3)]
    # When
    with pytest.raises(InvalidInput) as caught:
        await sources.import_sources(ports, items)
    # Then
    assert paths(caught.value) == [("input", "sources")]
    assert "has 3 items; the limit is 2" in caught.value.message
    assert fakes_of(ports).units == []


async def test_import_sources_stores_every_item_in_one_committed_unit_of_work() -> None:
    # Given
    ports = make_ports(max_import_items=2)
    items = [raw("INT-001", content="one"), raw("INT-002", content="two")]
    # When
    rows = await sources.import_sources(ports, items)
    # Then
    fake = fakes_of(ports)
    assert [r.source_code for r in rows] == ["INT-001", "INT-002"]
    assert len(fake.state.sources) == 2
    assert [u.committed for u in fake.units] == [True]


async def test_import_sources_reports_every_invalid_item_by_index_and_stores_none() -> None:
    # Given
    ports = make_ports()
    items = [raw("INT-001", content="fine"), raw("INT-002", title=None, content="two"),
             raw("bad code", content="three")]
    # When
    with pytest.raises(InvalidInput) as caught:
        await sources.import_sources(ports, items)
    # Then
    assert paths(caught.value) == [("input", "sources", "1", "title"),
                                   ("input", "sources", "2", "sourceCode")]
    fake = fakes_of(ports)
    assert fake.state.sources == {}
    assert [u.rolled_back for u in fake.units] == [True]


async def test_import_sources_sorts_validation_and_clash_issues_by_item() -> None:
    # Given
    ports = make_ports(max_content_bytes=20)
    fakes_of(ports).add_source("INT-009", content="stored text")
    items = [raw("INT-009", content="new text"),          # code clashes with a stored source
             raw("INT-002", content="x" * 21),            # over the configured limit
             raw("INT-003", content="stored text"),       # content already stored
             raw("INT-003", content="other")]             # code of item 2 again
    # When
    with pytest.raises(InvalidInput) as caught:
        await sources.import_sources(ports, items)
    # Then
    assert paths(caught.value) == [("input", "sources", "0", "sourceCode"),
                                   ("input", "sources", "1", "content"),
                                   ("input", "sources", "2", "content"),
                                   ("input", "sources", "3", "sourceCode")]
    assert len(fakes_of(ports).state.sources) == 1
