"""The Source node, its connection, filters and ordering."""

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
from api.types.enums import (
    ExtractionPriority,
    OrderDirection,
    SourceQuality,
    SourceStatus,
    SourceType,
)
from api.types.graph import summary_of
from api.types.optimization import source_comparison, source_sweet_spot
from api.types.processing import fragments_of_source
from api.types.reference import ReferenceFragmentConnection, reference_of_source
from api.types.review import FragmentSpan, ModelRuns, model_runs_of, spans_of_source
from api.types.segments import (
    ContentFormat,
    SegmentKind,
    SourceSegmentConnection,
    SpeakerSummary,
    Subject,
    segments_of_source,
    speakers_of_source,
    subject_of,
)
from db.sources import SourceFilter as SourceFilterSpec
from db.sources import SourceRepository
from db.tables import SourceRow
from domain import documents as d
from domain import model as m

if TYPE_CHECKING:
    from api.types.graph import ProcessingSummary
    from api.types.optimization import ModelComparison, SweetSpot
    from api.types.processing import FragmentConnection, FragmentFilter, FragmentOrder


async def _content(root: Any, info: strawberry.Info) -> str:
    """The source's text: carried by the row it was built from, else read on demand (pages
    read rows without it, since one source may hold megabytes)."""
    if root.loaded_content is not None:
        return str(root.loaded_content)
    text: str = await info.context.loaders.get(
        "source_content", lambda s, ids: SourceRepository(s).content_of(ids),
        one_statement=True).load(root.id)
    return text


@strawberry.type(description="One piece of material about the person: text plus metadata.")
class Source(relay.Node):
    id: relay.NodeID[int]
    source_code: str
    title: str
    source_type: SourceType
    quality: SourceQuality
    extraction_priority: ExtractionPriority
    status: SourceStatus
    content: str = strawberry.field(resolver=_content)
    content_sha256: str = strawberry.field(description="sha256 of the UTF-8 content.")
    word_count: int
    char_count: int = strawberry.field(description="Length in characters (code points).")
    language: str
    author: str | None
    url: str | None
    source_date: dt.date | None
    notes: str | None
    content_format: ContentFormat = strawberry.field(
        description="How the content arrived; `content` is always the normalised text every "
                    "offset refers to.")
    original_file_name: str | None = strawberry.field(description="The uploaded file's name.")
    original_sha256: str | None = strawberry.field(
        description="sha256 of the uploaded file's bytes.")
    original_bytes: int | None = strawberry.field(description="The uploaded file's size.")
    conversion_notes: list[str] = strawberry.field(
        description="What reading the file did: running headers dropped, words joined…")
    subject: Subject | None = strawberry.field(
        description="The person the clone is about; other speakers' turns are context.")
    created_at: dt.datetime
    updated_at: dt.datetime
    # The text when the row carried it (see _content).
    loaded_content: strawberry.Private[str | None] = None
    subject_speakers: strawberry.Private[tuple[str, ...]] = ()

    @classmethod
    def from_row(cls, row: SourceRow) -> Source:
        return cls(
            id=row.id or 0,
            source_code=row.source_code,
            title=row.title,
            source_type=m.SourceType(row.source_type),
            quality=m.SourceQuality(row.quality),
            extraction_priority=m.ExtractionPriority(row.extraction_priority),
            status=m.SourceStatus(row.status),
            loaded_content=SourceRepository.loaded_content(row),
            content_sha256=row.content_sha256,
            word_count=row.word_count,
            char_count=row.char_count,
            language=row.language,
            author=row.author,
            url=row.url,
            source_date=row.source_date,
            notes=row.notes,
            content_format=d.ContentFormat(row.content_format or "TEXT"),
            original_file_name=row.original_file_name,
            original_sha256=row.original_sha256,
            original_bytes=row.original_bytes,
            conversion_notes=list(row.conversion_notes or []),
            subject=subject_of(row),
            subject_speakers=tuple(row.subject_speakers or ()),
            created_at=row.created_at,  # type: ignore[arg-type]
            updated_at=row.updated_at,  # type: ignore[arg-type]
        )

    @strawberry.field(description="This source's fragments, filtered and ordered (first ≤ 100).")
    async def fragments(
        self, info: strawberry.Info, first: int | None = None, after: str | None = None,
        filter: Annotated[FragmentFilter, strawberry.lazy("api.types.processing")] | None = None,
        order_by: Annotated[FragmentOrder, strawberry.lazy("api.types.processing")] | None = None,
    ) -> Annotated[FragmentConnection, strawberry.lazy("api.types.processing")]:
        return await fragments_of_source(info, self.id, first, after, filter, order_by)

    @strawberry.field(description="Fragments people made for this source (imported files), "
                                  "in import order (first ≤ 100).")
    async def reference_fragments(self, info: strawberry.Info, first: int | None = None,
                                  after: str | None = None) -> ReferenceFragmentConnection:
        return await reference_of_source(info, self.id, first, after)

    @strawberry.field(description="Where this source's fragments sit, in text order, in one "
                                  "request (of `runIds` only, when given; at most 20,000): "
                                  "what a reader needs to draw every model's spans.")
    async def fragment_spans(self, info: strawberry.Info,
                             run_ids: list[relay.GlobalID] | None = None) -> list[FragmentSpan]:
        return await spans_of_source(info, self.id, run_ids)

    @strawberry.field(description="Where each character range of the text came from: pages, "
                                  "cues, turns, chapters, headings, in text order (first ≤ "
                                  "100; of `kinds` only, when given).")
    async def segments(self, info: strawberry.Info, first: int | None = None,
                       after: str | None = None,
                       kinds: list[SegmentKind] | None = None) -> SourceSegmentConnection:
        return await segments_of_source(info, self.id, await _content(self, info), first,
                                        after, kinds)

    @strawberry.field(description="Each speaker of the transcript, with turns and words, in "
                                  "order of appearance (empty without labelled speakers).")
    async def speakers(self, info: strawberry.Info) -> list[SpeakerSummary]:
        return await speakers_of_source(info, self.id, self.subject_speakers,
                                        await _content(self, info))

    @strawberry.field(description="Runs of this source per model, by model name.")
    async def runs_per_model(self, info: strawberry.Info) -> list[ModelRuns]:
        return await model_runs_of(info, self.id)

    @strawberry.field(description="Runs, fragments, tokens and cost over every batch.")
    async def processing_summary(self, info: strawberry.Info) -> Annotated[
            ProcessingSummary, strawberry.lazy("api.types.graph")] | None:
        return await summary_of(info, self.id)

    @strawberry.field(description="All measured runs of this source side by side.")
    async def comparison(self, info: strawberry.Info) -> Annotated[
            ModelComparison, strawberry.lazy("api.types.optimization")]:
        return await source_comparison(info, self.id, self.source_type.value)

    @strawberry.field(description="The cheapest measured model meeting the bar on this source.")
    async def sweet_spot(self, info: strawberry.Info, quality_threshold: float | None = None,
                         budget_per_fragment: Decimal | None = None) -> Annotated[
            SweetSpot, strawberry.lazy("api.types.optimization")]:
        return await source_sweet_spot(info, self.id, self.source_type.value,
                                       quality_threshold, budget_per_fragment)

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str],
                            required: bool = False) -> list[Source | None]:
        ids = [as_pk(i) for i in node_ids]
        rows = await info.context.loaders.source.load_many(ids)
        return [cls.from_row(row) if row is not None else None for row in rows]


@strawberry.type(name="SourceConnection")
class SourceConnection(CountedConnection[Source]):
    """Sources, paged with keyset cursors."""


@strawberry.input(description="Filters on sources; each list means any of its values.")
class SourceFilter:
    source_types: list[SourceType] | None = None
    qualities: list[SourceQuality] | None = None
    priorities: list[ExtractionPriority] | None = None
    statuses: list[SourceStatus] | None = None
    languages: list[str] | None = None
    title_contains: str | None = strawberry.field(default=None,
                                                  description="Case-insensitive substring.")
    author_contains: str | None = None

    def to_spec(self) -> SourceFilterSpec:
        def values(items: list[Any] | None) -> list[str] | None:
            return [str(item) for item in items] if items else None

        return SourceFilterSpec(
            source_types=values(self.source_types),
            qualities=values(self.qualities),
            priorities=values(self.priorities),
            statuses=values(self.statuses),
            languages=self.languages or None,
            title_contains=(self.title_contains or "")[:200] or None,
            author_contains=(self.author_contains or "")[:200] or None,
        )


@strawberry.enum
class SourceOrderField(enum.StrEnum):
    CREATED_AT = "CREATED_AT"
    UPDATED_AT = "UPDATED_AT"
    TITLE = "TITLE"
    SOURCE_CODE = "SOURCE_CODE"
    PRIORITY = "PRIORITY"
    WORD_COUNT = "WORD_COUNT"


@strawberry.input(description="Sort order of sources (ties broken by id).")
class SourceOrder:
    field: SourceOrderField = SourceOrderField.CREATED_AT
    direction: OrderDirection = OrderDirection.DESC
