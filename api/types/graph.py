"""The fragment graph as GraphQL types: tags, relationships, verification events, search hits,
coverage and processing summaries. Every relation loads through a per-request DataLoader."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay

from api.ids import as_pk
from api.pagination import CountedConnection
from api.types.enums import Category, RelationshipType
from api.types.enums import VerificationStatus as VerificationStatusEnum
from api.types.nodes import node_class
from api.types.processing import Fragment
from db import graph
from db.tables import RelationshipRow, TagRow, VerificationEventRow
from domain import model as m

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

    @classmethod
    def from_row(cls, row: RelationshipRow, fragment_id: int) -> FragmentRelation:
        """The link `row` seen from the fragment `fragment_id`, one of its two ends."""
        outgoing = row.fragment_id == fragment_id
        return cls(direction=RelationshipDirection.OUTGOING if outgoing
                   else RelationshipDirection.INCOMING,
                   relationship=Relationship.from_row(row),
                   other_id=row.related_fragment_id if outgoing else row.fragment_id)

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
        row = await info.context.loaders.source.load(self.source_id)
        return node_class(info, "Source").from_row(row) if row is not None else None

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


# Resolver behind Source.processingSummary (see api/types/source.py)


async def summary_of(info: strawberry.Info, source_id: int) -> ProcessingSummary | None:
    """A source's row of v_source_processing_summary."""
    row = await info.context.loaders.get(
        "processing_summary", graph.processing_summaries).load(source_id)
    return ProcessingSummary.from_row(row) if row is not None else None
