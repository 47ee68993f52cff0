"""The fragment graph as GraphQL types: tags, relationships, verification events, search hits,
coverage and processing summaries. Every relation loads through a per-request DataLoader."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay

from api.errors import public
from api.ids import as_pk
from api.loaders import page_read
from api.pagination import CountedConnection, build_connection, wants_total
from api.types.enums import Category, RelationshipType
from api.types.enums import VerificationStatus as VerificationStatusEnum
from api.types.processing import (
    Fragment,
    FragmentConnection,
    FragmentFilter,
    FragmentOrder,
)
from db import graph
from db.fragments import FragmentFilterSpec, list_fragments
from db.keyset import validate_page
from db.tables import RelationshipRow, TagRow, VerificationEventRow
from domain import model as m
from domain.errors import DomainError

if TYPE_CHECKING:
    from api.types.source import Source


def _node_ids(node_ids: Iterable[str]) -> list[int]:
    return [as_pk(i) for i in node_ids]


@strawberry.enum(description="A reviewer's decision on a fragment.")
class VerificationDecision(enum.StrEnum):
    VERIFIED = "verified"
    REJECTED = "rejected"
    NEEDS_REVIEW = "needs_review"


@strawberry.enum(description="Which way a link points, seen from the fragment listing it.")
class RelationshipDirection(enum.StrEnum):
    OUTGOING = "outgoing"
    INCOMING = "incoming"


async def load_fragment(info: strawberry.Info, fragment_id: int) -> Fragment | None:
    """A fragment through the request's loader."""
    row = await info.context.loaders.get("fragment", graph.fragments_by_id).load(fragment_id)
    return Fragment.from_row(row) if row is not None else None


@strawberry.type(description="A label on fragments, created on first use.")
class Tag(relay.Node):
    id: relay.NodeID[int]
    name: str
    category: str | None
    created_at: dt.datetime
    usage: strawberry.Private[int | None] = None

    @classmethod
    def from_row(cls, row: TagRow, usage: int | None = None) -> Tag:
        return cls(id=row.id or 0, name=row.name, category=row.category,
                   created_at=row.created_at, usage=usage)  # type: ignore[arg-type]

    @strawberry.field(description="How many fragments carry this tag.")
    async def usage_count(self, info: strawberry.Info) -> int:
        if self.usage is not None:
            return self.usage
        count: int = await info.context.loaders.get("tag_usage", graph.tag_usage).load(self.id)
        return count

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str],
                            required: bool = False) -> list[Tag | None]:
        rows = await info.context.loaders.get("tag", graph.tags_by_id).load_many(
            _node_ids(node_ids))
        return [cls.from_row(row) if row is not None else None for row in rows]


@strawberry.type(description="A typed link from one fragment to another.")
class Relationship(relay.Node):
    id: relay.NodeID[int]
    relationship_type: RelationshipType
    confidence: float
    notes: str | None
    created_by: str | None
    created_at: dt.datetime
    fragment_id: strawberry.Private[int]
    related_fragment_id: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: RelationshipRow) -> Relationship:
        return cls(id=row.id or 0, relationship_type=m.RelationshipType(row.relationship_type),
                   confidence=row.confidence, notes=row.notes, created_by=row.created_by,
                   created_at=row.created_at,  # type: ignore[arg-type]
                   fragment_id=row.fragment_id, related_fragment_id=row.related_fragment_id)

    @strawberry.field(description="The fragment the link starts from.")
    async def fragment(self, info: strawberry.Info) -> Fragment | None:
        return await load_fragment(info, self.fragment_id)

    @strawberry.field(description="The fragment the link points to.")
    async def related_fragment(self, info: strawberry.Info) -> Fragment | None:
        return await load_fragment(info, self.related_fragment_id)

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str],
                            required: bool = False) -> list[Relationship | None]:
        rows = await info.context.loaders.get(
            "relationship", graph.relationships_by_id).load_many(_node_ids(node_ids))
        return [cls.from_row(row) if row is not None else None for row in rows]


@strawberry.type(description="A link seen from one of its fragments.")
class FragmentRelation:
    direction: RelationshipDirection
    relationship: Relationship
    other_id: strawberry.Private[int]

    @strawberry.field(description="The fragment at the other end.")
    async def other_fragment(self, info: strawberry.Info) -> Fragment | None:
        return await load_fragment(info, self.other_id)


@strawberry.type(description="One verification decision: who, when, from what, to what.")
class VerificationEvent:
    decision: VerificationStatusEnum
    previous_status: VerificationStatusEnum
    reviewer: str
    notes: str | None
    created_at: dt.datetime

    @classmethod
    def from_row(cls, row: VerificationEventRow) -> VerificationEvent:
        return cls(decision=m.VerificationStatus(row.decision),
                   previous_status=m.VerificationStatus(row.previous_status),
                   reviewer=row.reviewer, notes=row.notes,
                   created_at=row.created_at)  # type: ignore[arg-type]


@strawberry.type(description="A fragment matching a search, with its rank and snippet.")
class FragmentSearchHit:
    rank: float = strawberry.field(description="ts_rank_cd, normalised to 0..1; higher first.")
    snippet: str = strawberry.field(
        description="HTML-escaped excerpt of the content with matches in <mark>…</mark>.")
    fragment: Fragment


@strawberry.type(name="FragmentSearchConnection")
class FragmentSearchConnection(CountedConnection[FragmentSearchHit]):  # type: ignore[type-var]
    """Search hits, best first."""


@strawberry.type(description="A candidate link for a person to accept with relateFragments.")
class RelationshipSuggestion:
    fragment: Fragment = strawberry.field(description="The candidate, from another source.")
    relationship_type: RelationshipType
    score: float = strawberry.field(description="0..1, the order of suggestions.")
    similarity: float = strawberry.field(description="Lexical similarity, 0..100.")
    cues: list[str] = strawberry.field(
        description="Evidence for the type, e.g. negation, antonyms:always/never, change:used to.")


@strawberry.type(description="Runs, fragments, tokens and cost of one source over all batches.")
class ProcessingSummary:
    run_count: int
    completed_runs: int
    failed_runs: int
    active_runs: int = strawberry.field(description="Pending, processing or waiting for budget.")
    model_count: int
    fragment_count: int
    grounded_fragment_count: int
    total_cost_usd: Decimal
    input_tokens: int
    output_tokens: int
    last_processed_at: dt.datetime | None

    @classmethod
    def from_row(cls, row: Any) -> ProcessingSummary:
        return cls(run_count=row["run_count"], completed_runs=row["completed_runs"],
                   failed_runs=row["failed_runs"], active_runs=row["active_runs"],
                   model_count=row["model_count"], fragment_count=row["fragment_count"],
                   grounded_fragment_count=row["grounded_fragment_count"],
                   total_cost_usd=row["total_cost_usd"], input_tokens=row["input_tokens"],
                   output_tokens=row["output_tokens"],
                   last_processed_at=row["last_processed_at"])


@strawberry.type(description="Fragments of one category of a source.")
class CategoryCoverage:
    category: Category
    fragment_count: int
    grounded_count: int
    verified_count: int
    rejected_count: int
    miu_count: int = strawberry.field(description="Passing both MIU checks.")
    model_count: int = strawberry.field(description="Models that found fragments here.")
    mean_relevance: float | None
    mean_confidence: float | None


@strawberry.type(description="How a source's fragments spread over the categories.")
class FragmentCoverage:
    source_id: strawberry.Private[int]
    fragment_count: int
    grounded_count: int
    verified_count: int
    rejected_count: int
    miu_count: int
    categories: list[CategoryCoverage] = strawberry.field(
        description="Every category of the taxonomy, zero where nothing was found.")
    missing_categories: list[Category] = strawberry.field(
        description="Categories with no fragment yet.")

    @strawberry.field
    async def source(self, info: strawberry.Info) -> Annotated[
            Source, strawberry.lazy("api.types.source")] | None:
        from api.types.source import Source

        row = await info.context.loaders.source.load(self.source_id)
        return Source.from_row(row) if row is not None else None

    @classmethod
    def from_rows(cls, source_id: int, rows: list[Any]) -> FragmentCoverage:
        found = {row["category"]: row for row in rows}
        categories = [_category(category, found.get(category.value))
                      for category in m.Category]
        return cls(source_id=source_id,
                   fragment_count=sum(c.fragment_count for c in categories),
                   grounded_count=sum(c.grounded_count for c in categories),
                   verified_count=sum(c.verified_count for c in categories),
                   rejected_count=sum(c.rejected_count for c in categories),
                   miu_count=sum(c.miu_count for c in categories), categories=categories,
                   missing_categories=[c.category for c in categories if not c.fragment_count])


def _category(category: m.Category, row: Any) -> CategoryCoverage:
    if row is None:
        return CategoryCoverage(category=category, fragment_count=0, grounded_count=0,
                                verified_count=0, rejected_count=0, miu_count=0, model_count=0,
                                mean_relevance=None, mean_confidence=None)
    return CategoryCoverage(category=category, fragment_count=row["fragment_count"],
                            grounded_count=row["grounded_count"],
                            verified_count=row["verified_count"],
                            rejected_count=row["rejected_count"], miu_count=row["miu_count"],
                            model_count=row["model_count"],
                            mean_relevance=row["mean_relevance"],
                            mean_confidence=row["mean_confidence"])


# Resolvers behind Fragment's and Source's graph fields (see api/types/processing.py, source.py)


async def tags_of(info: strawberry.Info, fragment_id: int) -> list[Tag]:
    """A fragment's tags."""
    rows = await info.context.loaders.get("fragment_tags", graph.tags_of_fragments).load(
        fragment_id)
    return [Tag.from_row(row) for row in rows]


async def relations_of(info: strawberry.Info, fragment_id: int) -> list[FragmentRelation]:
    """A fragment's links in both directions."""
    rows = await info.context.loaders.get(
        "fragment_relationships", graph.relationships_of_fragments).load(fragment_id)
    relations = []
    for row in rows:
        outgoing = row.fragment_id == fragment_id
        relations.append(FragmentRelation(
            direction=RelationshipDirection.OUTGOING if outgoing
            else RelationshipDirection.INCOMING,
            relationship=Relationship.from_row(row),
            other_id=row.related_fragment_id if outgoing else row.fragment_id))
    return relations


async def history_of(info: strawberry.Info, fragment_id: int) -> list[VerificationEvent]:
    """A fragment's verification decisions."""
    rows = await info.context.loaders.get(
        "verification_history", graph.history_of_fragments).load(fragment_id)
    return [VerificationEvent.from_row(row) for row in rows]


async def summary_of(info: strawberry.Info, source_id: int) -> ProcessingSummary | None:
    """A source's row of v_source_processing_summary."""
    row = await info.context.loaders.get(
        "processing_summary", graph.processing_summaries).load(source_id)
    return ProcessingSummary.from_row(row) if row is not None else None


async def fragments_of_source(info: strawberry.Info, source_id: int, first: int | None,
                              after: str | None, flt: FragmentFilter | None,
                              order_by: FragmentOrder | None) -> FragmentConnection:
    """A source's fragments: first pages of every source in one statement; later pages
    (with a cursor) one statement each."""
    order = order_by or FragmentOrder()
    sort, descending = str(order.field), str(order.direction) == "desc"
    try:
        page_request = validate_page(first, after, None, None)
        spec = flt.to_spec() if flt else FragmentFilterSpec()
        if after is not None:
            spec.source_id = source_id
            # A later page counts its fragments only when totalCount is selected.
            page_request = replace(page_request, count=wants_total(info))
            async with page_read(info.context.runtime, page_request.count) as session:
                page = await list_fragments(session, spec, sort, descending, page_request)
        else:
            spec.source_id = None  # the window query partitions by source itself
            limit = page_request.first or 0

            async def fetch(session: Any, ids: list[int]) -> dict[int, Any]:
                return await graph.first_fragments_of_sources(session, ids, spec, sort,
                                                              descending, limit)

            name = f"source_fragments:{sort}:{descending}:{limit}:{spec!r}"
            page = await info.context.loaders.get(name, fetch, one_statement=True).load(
                source_id)
    except DomainError as exc:
        raise public(exc) from None
    return build_connection(FragmentConnection, page, Fragment.from_row)  # type: ignore[no-any-return]
