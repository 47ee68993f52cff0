"""People's reference fragments (imported MMOS v5 files) as GraphQL nodes and pages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import strawberry
from strawberry import relay

from api.errors import public
from api.ids import as_pk
from api.loaders import page_read
from api.pagination import CountedConnection, build_connection, wants_total
from api.types.enums import Category, FragmentType, Grounding, VerificationStatus
from db.keyset import validate_page
from db.reference import ReferenceRepository, first_reference_pages, reference_page
from domain import model as m
from domain.errors import DomainError
from domain.reference_import import ReferenceFormat as DomainReferenceFormat
from domain.services.reference import UngroundedReference as UngroundedValue

ReferenceFormat = strawberry.enum(DomainReferenceFormat, name="ReferenceFormat",
                                  description="MMOS_YAML: YAML documents, a list, or Markdown "
                                              "with ```yaml blocks; JSONL: a JSON object a line.")


@strawberry.type(description="A fragment a person made (imported from a file), grounded in its "
                             "source: verified reference when grounded, else needs review.")
class ReferenceFragment(relay.Node):
    id: relay.NodeID[int]
    external_id: str = strawberry.field(description="The fragment's id in its file.")
    content: str
    char_start: int | None
    char_end: int | None
    grounding: Grounding
    grounding_score: float
    closest_start: int | None = strawberry.field(
        description="Ungrounded: where the closest text starts (for review).")
    closest_end: int | None
    category: Category
    fragment_type: FragmentType
    relevance: int | None
    context: str | None
    insight: str | None
    tags: list[str]
    location: str | None
    source_label: str | None = strawberry.field(description="The file's `source` field.")
    metadata: strawberry.scalars.JSON
    verification_status: VerificationStatus
    reviewer: str
    provenance_file: str | None = strawberry.field(description="The imported file's name.")
    imported_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def from_row(cls, row: Any) -> ReferenceFragment:
        return cls(
            id=row.id or 0, external_id=row.external_id, content=row.content,
            char_start=row.char_start, char_end=row.char_end,
            grounding=m.Grounding(row.grounding), grounding_score=row.grounding_score,
            closest_start=row.closest_start, closest_end=row.closest_end,
            category=m.Category(row.category), fragment_type=m.FragmentType(row.fragment_type),
            relevance=row.relevance, context=row.context, insight=row.insight,
            tags=list(row.tags or []), location=row.location, source_label=row.source_label,
            metadata=dict(row.metadata_ or {}),
            verification_status=m.VerificationStatus(row.verification_status),
            reviewer=row.reviewer, provenance_file=row.provenance_file,
            imported_at=row.imported_at, updated_at=row.updated_at)

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str],
                            required: bool = False) -> list[ReferenceFragment | None]:
        ids = [as_pk(i) for i in node_ids]
        rows = await info.context.loaders.get(
            "reference_fragment", lambda s, keys: ReferenceRepository(s).get_many(keys),
            one_statement=True).load_many(ids)
        return [cls.from_row(row) if row is not None else None for row in rows]


@strawberry.type(name="ReferenceFragmentConnection")
class ReferenceFragmentConnection(CountedConnection[ReferenceFragment]):
    """Reference fragments, paged with keyset cursors (import order)."""


@strawberry.type(description="A fragment whose content was not found in the source; it was "
                             "stored for review with the closest span.")
class UngroundedReference:
    external_id: str
    content: str
    closest_start: int | None
    closest_end: int | None
    closest_text: str | None
    score: float = strawberry.field(description="Similarity of the closest span, 0-100.")
    line: int = strawberry.field(description="Where the fragment starts in the file.")

    @classmethod
    def of(cls, value: UngroundedValue) -> UngroundedReference:
        return cls(external_id=value.external_id, content=value.content,
                   closest_start=value.closest_start, closest_end=value.closest_end,
                   closest_text=value.closest_text, score=value.score, line=value.line)


async def reference_of_source(info: strawberry.Info, source_id: int, first: int | None,
                              after: str | None) -> ReferenceFragmentConnection:
    """Source.referenceFragments: first pages of every source in one statement; later pages
    one statement each."""
    try:
        page_request = validate_page(first, after, None, None)
        if after is not None:
            page_request = replace(page_request, count=wants_total(info))
            async with page_read(info.context.runtime, page_request.count) as session:
                page = await reference_page(session, source_id, page_request)
        else:
            limit = page_request.first or 0

            async def fetch(session: Any, ids: list[int]) -> dict[int, Any]:
                return await first_reference_pages(session, ids, limit)

            page = await info.context.loaders.get(
                f"source_reference:{limit}", fetch, one_statement=True).load(source_id)
    except DomainError as exc:
        raise public(exc) from None
    return build_connection(ReferenceFragmentConnection, page,  # type: ignore[no-any-return]
                            ReferenceFragment.from_row)
