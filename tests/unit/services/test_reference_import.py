"""The import use case against the fakes: every refusal writes nothing, a re-import is
idempotent, ungrounded fragments are kept for review (domain/services/reference.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from domain.errors import InvalidInput, NotFound
from domain.services.reference import import_reference_fragments, reference_fragments
from tests.support.fakes import fakes_of, make_ports

TEXT = ("The harbour was quiet that morning. “Where were you?” she asked, without looking "
        "up. “At the mill, with Tom,” he said. I never trusted a plan I couldn’t explain "
        "to my grandmother. The rest of the day was spent counting crates.")


def line(external_id: str, content: str, **fields: Any) -> str:
    return json.dumps({"id": external_id, "content": content, "category": "COG", **fields})


FILE = "\n".join([
    line("A", "I never trusted a plan I couldn't explain to my grandmother."),
    line("B", '"Where were you?" "At the mill, with Tom,"'),
    line("C", "The lighthouse keeper sold his boat to a stranger from the north."),
])


async def run(ports: Any, data: str = FILE, **overrides: Any) -> Any:
    values: dict[str, Any] = {"format": "jsonl", "data": data, "reviewer": "ana",
                              "file_name": "notes.jsonl"}
    values.update(overrides)
    source_id = values.pop("source_id", 1)
    return await import_reference_fragments(ports, source_id, values.pop("format"),
                                            values.pop("data"), values.pop("reviewer"),
                                            values.pop("file_name"))


@pytest.fixture
def ports() -> Any:
    ports = make_ports()
    fakes_of(ports).add_source("S1", content=TEXT)
    return ports


async def test_grounded_fragments_are_verified_and_the_others_kept_for_review(ports: Any
                                                                              ) -> None:
    # When
    result = await run(ports)
    # Then
    assert (result.created, result.updated, result.unchanged) == (3, 0, 0)
    assert [row.external_id for row in result.grounded] == ["B", "A"]  # source order
    a = next(row for row in result.grounded if row.external_id == "A")
    assert TEXT[a.char_start:a.char_end].startswith("I never trusted")
    assert (a.verification_status, a.reviewer, a.provenance_file) == (
        "verified", "ana", "notes.jsonl")
    [missing] = result.ungrounded
    assert (missing.external_id, missing.line) == ("C", 3)
    assert missing.closest_start is not None and missing.closest_text
    stored = {row.external_id: row for row in await reference_fragments(ports, 1)}
    assert stored["C"].verification_status == "needs_review"
    assert stored["C"].grounding == "ungrounded" and stored["C"].char_start is None
    assert stored["C"].closest_start == missing.closest_start


async def test_a_change_measures_the_source_again_after_the_commit(ports: Any) -> None:
    await run(ports)
    fake = fakes_of(ports)
    assert fake.state.measurements.get(1) == 1
    measure = fake.calls.index(next(c for c in fake.calls if c[0] == "performance.measure"))
    upsert = fake.calls.index(next(c for c in fake.calls if c[0] == "reference.upsert"))
    assert upsert < measure


async def test_reimporting_the_same_file_changes_nothing(ports: Any) -> None:
    first = await run(ports)
    before = {key: (row.id, dict(row.values)) for key, row in
              fakes_of(ports).state.reference.items()}
    # When
    again = await run(ports)
    # Then
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    after = {key: (row.id, dict(row.values)) for key, row in
             fakes_of(ports).state.reference.items()}
    assert after == before
    assert [r.id for r in again.grounded] == [r.id for r in first.grounded]
    assert fakes_of(ports).state.measurements.get(1) == 1  # not measured again


async def test_reimporting_a_changed_fragment_updates_it_in_place(ports: Any) -> None:
    await run(ports)
    changed = FILE.replace('"category": "COG"}', '"category": "EMO"}', 1)
    result = await run(ports, changed)
    assert (result.created, result.updated, result.unchanged) == (0, 1, 2)
    assert len(fakes_of(ports).state.reference) == 3
    assert fakes_of(ports).state.reference[(1, "A")].category == "emotional"


@pytest.mark.parametrize("overrides, path", [
    ({"reviewer": "  "}, "input.reviewer"),
    ({"reviewer": "x" * 201}, "input.reviewer"),
    ({"format": "csv"}, "input.format"),
    ({"file_name": "f" * 501}, "input.fileName"),
    ({"data": FILE + "\n" + line("D", "x", category="nonsense")}, "input.data.3.category"),
    ({"data": FILE + "\n{broken"}, "input.data"),
    ({"data": FILE + "\n" + line("A", "again")}, "input.data.3.id"),
])
async def test_every_refusal_writes_nothing(ports: Any, overrides: dict[str, Any],
                                            path: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        await run(ports, **overrides)
    assert path in [".".join(issue.path) for issue in refused.value.issues]
    assert fakes_of(ports).state.reference == {}
    assert not fakes_of(ports).committed_units


async def test_an_unknown_source_is_not_found_on_source_id(ports: Any) -> None:
    with pytest.raises(NotFound) as refused:
        await run(ports, source_id=99)
    assert refused.value.path == ("input", "sourceId")
    assert fakes_of(ports).state.reference == {}


async def test_an_oversize_file_is_refused_before_it_is_read() -> None:
    ports = make_ports(max_reference_import_bytes=1024)
    fakes_of(ports).add_source("S1", content=TEXT)
    with pytest.raises(InvalidInput) as refused:
        await run(ports, FILE * 10)
    [issue] = refused.value.issues
    assert issue.path == ("input", "data") and "the limit is 1024" in issue.message
    assert "MMOS_MAX_REFERENCE_IMPORT_BYTES" in issue.message
    assert fakes_of(ports).called("reference.upsert") == []


async def test_a_failure_while_writing_rolls_everything_back(ports: Any) -> None:
    fakes_of(ports).fail_next_commit = RuntimeError("disk full")
    with pytest.raises(RuntimeError):
        await run(ports)
    assert fakes_of(ports).state.reference == {}
