"""The one list of a fragment's fields (domain.extraction.FRAGMENT_FIELDS) and its users."""

from __future__ import annotations

from dataclasses import fields

from api.types.processing import Fragment
from db.tables import FragmentRow
from domain.extraction import FRAGMENT_FIELDS, PreparedFragment
from domain.parsing import FRAGMENTS_JSON_SCHEMA, ExtractedFragment


def test_the_list_is_the_prepared_fragment_fields_but_those_stored_apart() -> None:
    names = [field.name for field in fields(PreparedFragment)]
    apart = {"ordinal", "tags", "raw_record"}

    assert tuple(name for name in names if name not in apart) == FRAGMENT_FIELDS
    assert {"grounding_score", "has_clean_boundaries", "insight"} <= set(FRAGMENT_FIELDS)


def test_every_field_is_a_stored_column_and_a_graphql_field() -> None:
    columns = set(FragmentRow.__table__.c.keys())  # type: ignore[attr-defined]
    graphql = set(Fragment.__annotations__)

    assert set(FRAGMENT_FIELDS) <= columns
    assert set(FRAGMENT_FIELDS) <= graphql


def test_the_answer_schema_requires_every_answer_field() -> None:
    items = FRAGMENTS_JSON_SCHEMA["properties"]["fragments"]["items"]

    answer_fields = [f.name for f in fields(ExtractedFragment) if f.name not in {"notes", "raw"}]
    assert items["required"] == list(items["properties"]) == answer_fields
