"""Models, batches, runs, fragments and the budget as GraphQL types."""

from __future__ import annotations

import datetime as dt
import enum
import operator
from collections.abc import Iterable
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay

from api.errors import public
from api.ids import as_pk, parse_id
from api.loaders import page_read
from api.pagination import CountedConnection, build_connection, selects, wants_total
from api.types.enums import (
    BatchStatus,
    Category,
    FragmentType,
    Grounding,
    OrderDirection,
    ProcessingMode,
    RunStatus,
    Strategy,
)
from api.types.enums import VerificationStatus as VerificationStatusEnum
from api.types.nodes import node_class, source_node
from api.types.segments import FragmentLocation, location_of
from db.answers import failed_chunks_of_run
from db.fragments import FRAGMENT_KEYS, FragmentFilterSpec, is_fragment_row, list_fragments
from db.graph import (
    first_fragments_of_sources,
    fragments_by_id,
    history_of_fragments,
    raw_records_of_fragments,
    relationships_of_fragments,
    tags_of_fragments,
)
from db.keyset import validate_page
from db.lookups import batches_by_id, models_by_name, runs_by_batch, runs_by_id
from db.provider_batches import ProviderBatchRepository
from db.tables import BatchRow, FragmentRow, ModelRow, RunRow
from domain import model as m
from domain.errors import DomainError, FieldIssue, InvalidInput
from domain.extraction import FRAGMENT_FIELDS
from domain.services import processing as processing_uc
from domain.text import is_valid_unicode

if TYPE_CHECKING:
    from api.types.graph import FragmentRelation, Tag, VerificationEvent
    from api.types.source import Source

MAX_FILTER_TAGS = 50


@strawberry.enum(description="Where a submission to a provider's batch API stands.")
class ProviderBatchStatus(enum.StrEnum):
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    COLLECTED = "collected"
    ABANDONED = "abandoned"


@strawberry.type(description="One submission of some of a run's chunks to a provider's batch "
                             "API; its worst case was reserved when it was written, each "
                             "result is settled at the batch price.")
class ProviderBatch:
    provider: str
    provider_batch_id: str | None = strawberry.field(description="The provider's own id.")
    status: ProviderBatchStatus
    provider_status: str | None = strawberry.field(
        description="The provider's state: validating, in_progress, completed, expired...")
    chunks: list[int] = strawberry.field(description="Indices of the chunks submitted.")
    polls: int
    error: str | None = strawberry.field(
        description="The chunks that did not come back, and why.")
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, row: Any) -> ProviderBatch:
        return cls(provider=row.provider, provider_batch_id=row.provider_batch_id,
                   status=ProviderBatchStatus(row.status), provider_status=row.provider_status,
                   chunks=[int(i) for i in row.chunks], polls=row.polls, error=row.error,
                   created_at=row.created_at, updated_at=row.updated_at)


async def _provider_batches(session: Any, run_ids: list[int]) -> dict[int, list[Any]]:
    return await ProviderBatchRepository(session).of_runs(run_ids)


@strawberry.type(description="A catalog entry: a LiteLLM model string with pricing and limits.")
class Model:
    name: str
    litellm_model: str
    api_base: str | None
    api_key_env: str | None = strawberry.field(
        description="The environment variable on the workers that holds this model's own key "
                    "(its name only; keys are never stored or returned).")
    input_cost_per_million: Decimal | None = strawberry.field(
        description="USD per million input tokens; null when unknown (refused under budgets).")
    output_cost_per_million: Decimal | None
    price_source: str = strawberry.field(
        description="litellm (bundled map), catalog (seed), override (operator) or none.")
    context_window: int
    max_output_tokens: int
    enabled: bool
    is_local: bool = strawberry.field(description="Runs offline, free (rule-based extractor).")
    notes: str | None
    rpm: int | None = strawberry.field(
        default=None, description="Requests per minute, shared by every worker; null: none.")
    tpm: int | None = strawberry.field(
        default=None, description="Input plus output tokens per minute, shared by every "
                                  "worker; null: none.")
    max_concurrency: int | None = strawberry.field(
        default=None, description="Calls in flight at once across every worker; null: none.")
    cache_read_cost_per_million_override: strawberry.Private[Decimal | None] = None
    cache_write_cost_per_million_override: strawberry.Private[Decimal | None] = None
    batch_discount_override: strawberry.Private[Decimal | None] = None

    def _levers(self, info: strawberry.Info) -> Any:
        from api.model_prices import levers_of

        return levers_of(self, info.context.limits.batch_discount_map)

    @strawberry.field(description="USD per million input tokens read from the provider's "
                                  "prompt cache: the model's override, else LiteLLM's map, "
                                  "else the input price (no discount known).")
    def cache_read_cost_per_million(self, info: strawberry.Info) -> Decimal | None:
        return self._levers(info).cache_read

    @strawberry.field(description="USD per million input tokens written to the prompt cache "
                                  "(Anthropic bills writes above the input price).")
    def cache_write_cost_per_million(self, info: strawberry.Info) -> Decimal | None:
        return self._levers(info).cache_write

    @strawberry.field(description="USD per million input tokens in batch mode: LiteLLM's "
                                  "batch price, else the input price less batchDiscount.")
    def batch_input_cost_per_million(self, info: strawberry.Info) -> Decimal | None:
        return self._levers(info).batch_input

    @strawberry.field(description="USD per million output tokens in batch mode.")
    def batch_output_cost_per_million(self, info: strawberry.Info) -> Decimal | None:
        return self._levers(info).batch_output

    @strawberry.field(description="Share batch mode takes off the input price (0..1): the "
                                  "model's own, else what LiteLLM's batch price implies, else "
                                  "its provider's MMOS_BATCH_DISCOUNTS default; null when no "
                                  "batch price is known.")
    def batch_discount(self, info: strawberry.Info) -> Decimal | None:
        return self._levers(info).discount

    @classmethod
    def from_row(cls, row: ModelRow) -> Model:
        return cls(name=row.name, litellm_model=row.litellm_model, api_base=row.api_base,
                   api_key_env=row.api_key_env,
                   input_cost_per_million=row.input_cost_per_million,
                   output_cost_per_million=row.output_cost_per_million,
                   price_source=row.price_source, context_window=row.context_window,
                   max_output_tokens=row.max_output_tokens, enabled=row.enabled,
                   is_local=row.is_local, notes=row.notes,
                   rpm=row.rpm, tpm=row.tpm, max_concurrency=row.max_concurrency,
                   cache_read_cost_per_million_override=row.cache_read_cost_per_million,
                   cache_write_cost_per_million_override=row.cache_write_cost_per_million,
                   batch_discount_override=row.batch_discount)


@strawberry.type(description="One source inside one batch: tokens, cost, timings, outcome.")
class Run(relay.Node):
    id: relay.NodeID[int]
    status: RunStatus
    model: str
    attempts: int
    chunk_count: int
    chunks_done: int
    fragment_count: int
    grounded_fragment_count: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    llm_calls: int
    latency_ms: int = strawberry.field(description="Sum of provider call latencies.")
    chunks_failed: int = strawberry.field(
        description="Chunks whose answers stayed unreadable after one repair call; the run "
                    "completes with errors (retryRun with failedChunksOnly calls them again).")
    repair_calls: int = strawberry.field(
        description="Paid repair calls: an answer could not be read and the model was asked "
                    "again. They are in costUsd and llmCalls too.")
    repair_cost_usd: Decimal = strawberry.field(description="What the repair calls cost.")
    cached_input_tokens: int = strawberry.field(
        description="Input tokens read from the provider's prompt cache (in inputTokens too), "
                    "billed at the cache-read price.")
    cache_write_tokens: int = strawberry.field(
        description="Input tokens written to the provider's prompt cache (Anthropic; in "
                    "inputTokens too), billed at the cache-write price.")
    list_cost_usd: Decimal = strawberry.field(
        description="What the same usage would have cost interactive and uncached: costUsd = "
                    "listCostUsd − cacheSavedUsd − batchSavedUsd, exactly.")
    cache_saved_usd: Decimal = strawberry.field(
        description="What prompt caching saved against listCostUsd (negative when cache "
                    "writes cost more than the reads saved).")
    batch_saved_usd: Decimal = strawberry.field(
        description="What batch mode saved against the interactive price.")
    format_adherence: float | None = strawberry.field(
        description="Share of the model's answers read strictly as asked (JSON of the "
                    "requested shape, nothing coerced), 0..1; null before any answer. Shown "
                    "beside quality, never part of it.")
    version: int = strawberry.field(
        description="1 for a run that called the model; reprocessRun makes version + 1.")
    error_message: str | None
    started_at: dt.datetime | None
    completed_at: dt.datetime | None
    source_id: strawberry.Private[int]
    batch_id: strawberry.Private[int]
    reprocessed_from_id: strawberry.Private[int | None]

    @classmethod
    def from_row(cls, row: RunRow) -> Run:
        return cls(id=row.id or 0, status=m.RunStatus(row.status), model=row.model_name,
                   attempts=row.attempts, chunk_count=row.chunk_count,
                   chunks_done=row.chunks_done, fragment_count=row.fragment_count,
                   grounded_fragment_count=row.grounded_count, input_tokens=row.input_tokens,
                   output_tokens=row.output_tokens, cost_usd=row.cost_usd,
                   llm_calls=row.llm_calls, latency_ms=row.latency_ms,
                   chunks_failed=row.chunks_failed, repair_calls=row.repair_calls,
                   repair_cost_usd=row.repair_cost_usd,
                   cached_input_tokens=row.cached_input_tokens,
                   cache_write_tokens=row.cache_write_tokens, list_cost_usd=row.list_cost_usd,
                   cache_saved_usd=row.cache_saved_usd, batch_saved_usd=row.batch_saved_usd,
                   format_adherence=(round(row.answers_strict / row.answers_read, 4)
                                     if row.answers_read else None),
                   version=row.version,
                   error_message=row.error_message, started_at=row.started_at,
                   completed_at=row.completed_at, source_id=row.source_id,
                   batch_id=row.batch_id, reprocessed_from_id=row.reprocessed_from_id)

    @strawberry.field(description="The run this one read again (reprocessRun), if any.")
    async def reprocessed_from(self, info: strawberry.Info) -> Run | None:
        if self.reprocessed_from_id is None:
            return None
        row = await info.context.loaders.get("run", runs_by_id).load(self.reprocessed_from_id)
        return Run.from_row(row) if row is not None else None

    @strawberry.field(description="The chunks that failed, with the error and the model's "
                                  "raw answers to them.")
    async def failed_chunks(self, info: strawberry.Info) -> list[FailedChunk]:
        if not self.chunks_failed and self.status is not m.RunStatus.FAILED:
            return []
        async with info.context.runtime.read() as session:
            chunks = await failed_chunks_of_run(session, self.id)
        return [FailedChunk(index=c.chunk_index, char_start=c.char_start, char_end=c.char_end,
                            error=c.error or "",
                            answers=[RawAnswer(kind=a.call_kind, finish_reason=a.finish_reason,
                                               problem=a.problem, content=a.content)
                                     for a in c.answers])
                for c in chunks]

    @strawberry.field(description="BATCH mode: the run's submissions to the provider's batch "
                                  "API, oldest first (a chunk that did not come back is "
                                  "submitted again, at most three times).")
    async def provider_batches(self, info: strawberry.Info) -> list[ProviderBatch]:
        rows = await info.context.loaders.get("provider_batches", _provider_batches).load(
            self.id)
        return [ProviderBatch.of(row) for row in rows]

    @strawberry.field
    async def source(self, info: strawberry.Info) -> Annotated[
            Source, strawberry.lazy("api.types.source")] | None:
        row = await info.context.loaders.source.load(self.source_id)
        return node_class(info, "Source").from_row(row) if row is not None else None

    @strawberry.field
    async def batch(self, info: strawberry.Info) -> Batch | None:
        row = await info.context.loaders.get("batch", batches_by_id).load(self.batch_id)
        return Batch.from_row(row) if row is not None else None

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str],
                            required: bool = False) -> list[Run | None]:
        ids = [as_pk(i) for i in node_ids]
        rows = await info.context.loaders.get("run", runs_by_id).load_many(ids)
        return [cls.from_row(row) if row else None for row in rows]


@strawberry.type(description="A model's answer to one call, kept as it came back.")
class RawAnswer:
    kind: str = strawberry.field(description="extract, or repair (the model asked again).")
    finish_reason: str | None
    problem: str | None = strawberry.field(description="Why it could not be read.")
    content: str


@strawberry.type(description="A chunk of a run whose answers could not be read.")
class FailedChunk:
    index: int
    char_start: int
    char_end: int
    error: str
    answers: list[RawAnswer]


@strawberry.type(description="One model's processing of one or more sources, frozen config.")
class Batch(relay.Node):
    id: relay.NodeID[int]
    group_id: str = strawberry.field(description="Shared by the batches started together.")
    model: str
    status: BatchStatus
    strategy: Strategy | None
    mode: ProcessingMode = strawberry.field(
        description="INTERACTIVE (a call per chunk) or BATCH (the provider's batch API).")
    config: strawberry.scalars.JSON = strawberry.field(
        description="Snapshot: prompt version and hash, temperature, token limits, strategy.")
    decisions: strawberry.scalars.JSON = strawberry.field(
        description="What the strategy tried and why it escalated or stopped.")
    budget_usd: Decimal | None
    reserved_usd: Decimal = strawberry.field(
        description="Worst case of calls in flight (tracked for batches with a budget).")
    error_message: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    completed_at: dt.datetime | None

    @classmethod
    def from_row(cls, row: BatchRow) -> Batch:
        return cls(id=row.id or 0, group_id=row.group_id, model=row.model_name,
                   status=m.BatchStatus(row.status),
                   strategy=m.Strategy(row.strategy) if row.strategy else None,
                   mode=ProcessingMode(getattr(row, "mode", "interactive")),
                   config=row.config, decisions=row.decisions, budget_usd=row.budget_usd,
                   reserved_usd=row.reserved_usd,
                   error_message=row.error_message,
                   created_at=row.created_at,  # type: ignore[arg-type]
                   started_at=row.started_at, completed_at=row.completed_at)

    @strawberry.field
    async def runs(self, info: strawberry.Info) -> list[Run]:
        rows = await info.context.loaders.get("batch_runs", runs_by_batch).load(self.id)
        return [Run.from_row(row) for row in rows or []]

    @strawberry.field(description="Settled spend of every provider call of the batch's runs "
                                  "(retries and repairs included); 0 for a batch that read "
                                  "stored answers again (reprocessRun).")
    async def cost_usd(self, info: strawberry.Info) -> Decimal:
        rows = await info.context.loaders.get("batch_runs", runs_by_batch).load(self.id)
        return sum((row.cost_usd for row in rows or [] if row.reprocessed_from_id is None),
                   Decimal(0))

    @strawberry.field(description="Share of chunks done over all runs, 0..1.")
    async def progress(self, info: strawberry.Info) -> float:
        rows = await info.context.loaders.get("batch_runs", runs_by_batch).load(self.id)
        total = sum(max(r.chunk_count, 1) for r in rows or [])
        done = sum(r.chunk_count if r.status in (*m.FINISHED_RUN, "stopped_cost_limit",
                                                  "failed", "skipped")
                   else r.chunks_done + r.chunks_failed
                   for r in rows or [])
        return round(done / total, 4) if total else 0.0

    @strawberry.field(description="The catalog entry of this batch's model.")
    async def model_info(self, info: strawberry.Info) -> Model | None:
        row = await info.context.loaders.get("model", models_by_name).load(self.model)
        return Model.from_row(row) if row is not None else None

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str],
                            required: bool = False) -> list[Batch | None]:
        ids = [as_pk(i) for i in node_ids]
        rows = await info.context.loaders.get("batch", batches_by_id).load_many(ids)
        return [cls.from_row(row) if row else None for row in rows]


@strawberry.type(name="BatchConnection")
class BatchConnection(CountedConnection[Batch]):
    """Batches, newest first."""


# The columns Fragment.from_row reads: the extracted fields and the row's own.
_FRAGMENT_READ = ("id", "fragment_code", *FRAGMENT_FIELDS, "verification_status",
                  "verified_by", "verified_at", "model_name", "chunk_index", "created_at",
                  "source_id", "batch_id", "run_id")
_FRAGMENT_ATTRIBUTES = operator.attrgetter(*_FRAGMENT_READ)
_FRAGMENT_POSITIONS = operator.itemgetter(*(FRAGMENT_KEYS.index(name) for name in _FRAGMENT_READ))
_GROUNDINGS = {item.value: item for item in m.Grounding}
_CATEGORIES = {item.value: item for item in m.Category}
_FRAGMENT_TYPES = {item.value: item for item in m.FragmentType}
_VERIFICATION_STATUSES = {item.value: item for item in m.VerificationStatus}
_FRAGMENT_ENUMS = (("grounding", _GROUNDINGS), ("category", _CATEGORIES),
                   ("fragment_type", _FRAGMENT_TYPES),
                   ("verification_status", _VERIFICATION_STATUSES))


def _fragment_values(row: Any) -> tuple[Any, ...]:
    # Attribute access on a plain row looks each name up; by position is one C call.
    if is_fragment_row(row):
        return _FRAGMENT_POSITIONS(row)  # type: ignore[no-any-return]
    return _FRAGMENT_ATTRIBUTES(row)  # type: ignore[no-any-return]


@strawberry.type(description="One Minimal Interpretable Unit with its exact span in the source.")
class Fragment(relay.Node):
    id: relay.NodeID[int]
    fragment_code: str
    content: str
    quote: str = strawberry.field(description="The model's verbatim evidence.")
    char_start: int | None = strawberry.field(
        description="Start offset (code points) of the grounded span; null when ungrounded.")
    char_end: int | None
    grounding: Grounding
    grounding_score: float = strawberry.field(description="100 for exact, the fuzzy score else.")
    category: Category
    subcategory: str | None
    fragment_type: FragmentType
    context: str | None
    insight: str | None
    relevance: int
    confidence: float
    is_complete: bool = strawberry.field(description="Our MIU lint, not the model's claim.")
    has_clean_boundaries: bool
    parse_notes: list[str] = strawberry.field(
        description="What was coerced to read this fragment from the model's answer (a "
                    "fenced block, a number given as text, a Portuguese category, a missing "
                    "quote…); empty when the answer was read as asked.")
    speaker: str | None = strawberry.field(
        description="Who speaks where the span starts (transcripts with labelled speakers).")
    mixes_speakers: bool = strawberry.field(
        description="The span runs over turns of two or more speakers (MIU lint).")
    page_first: strawberry.Private[int | None]
    page_last: strawberry.Private[int | None]
    time_start_ms: strawberry.Private[int | None]
    time_end_ms: strawberry.Private[int | None]
    chapter: strawberry.Private[str | None]
    verification_status: VerificationStatusEnum
    verified_by: str | None = strawberry.field(description="Who made the last verification "
                                                           "decision.")
    verified_at: dt.datetime | None
    model: str
    chunk_index: int
    created_at: dt.datetime
    source_id: strawberry.Private[int]
    batch_id: strawberry.Private[int]
    run_id: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: FragmentRow | Any) -> Fragment:
        """From a FragmentRow, or from a plain row selecting db.fragments.FRAGMENT_COLUMNS
        first (read by position: a page is a hundred rows of twenty-six columns)."""
        values = dict(zip(_FRAGMENT_READ, _fragment_values(row), strict=True))
        values["id"] = values["id"] or 0
        values["model"] = values.pop("model_name")
        values["parse_notes"] = list(values["parse_notes"] or ())
        for name, members in _FRAGMENT_ENUMS:
            values[name] = members[values[name]]
        return cls(**values)

    @strawberry.field(description="Where the span came from: pages, time range, speaker, "
                                  "chapter (null when the source has no segments there).")
    def location(self) -> FragmentLocation | None:
        return location_of(self)

    @strawberry.field(description="The fragment as the model sent it, unknown fields and raw "
                                  "labels included, when something of it was coerced (see "
                                  "parseNotes); null when it was read as asked (its fields "
                                  "are the record).")
    async def raw_record(self, info: strawberry.Info) -> strawberry.scalars.JSON | None:
        return await info.context.loaders.get("fragment_raw", raw_records_of_fragments).load(
            self.id)

    @strawberry.field
    def source(self, info: strawberry.Info) -> Annotated[
            Source, strawberry.lazy("api.types.source")]:
        # Not async: when the page prefetched its sources (prefetch_sources) the answer is
        # immediate, otherwise it is an awaitable from the request's loader.
        return source_node(info, self.source_id)  # type: ignore[no-any-return]

    @strawberry.field
    async def batch(self, info: strawberry.Info) -> Batch:
        return Batch.from_row(await info.context.loaders.get("batch", batches_by_id)
                              .load(self.batch_id))

    @strawberry.field
    async def run(self, info: strawberry.Info) -> Run | None:
        nodes = await Run.resolve_nodes(info=info, node_ids=[str(self.run_id)])
        return nodes[0]

    @strawberry.field(description="Tags, by name.")
    async def tags(self, info: strawberry.Info) -> list[Annotated[
            Tag, strawberry.lazy("api.types.graph")]]:
        rows = await info.context.loaders.get("fragment_tags", tags_of_fragments).load(
            self.id)
        tag = node_class(info, "Tag")
        return [tag.from_row(row) for row in rows]

    @strawberry.field(description="Links to other fragments, outgoing and incoming.")
    async def relationships(self, info: strawberry.Info) -> list[Annotated[
            FragmentRelation, strawberry.lazy("api.types.graph")]]:
        rows = await info.context.loaders.get(
            "fragment_relationships", relationships_of_fragments).load(self.id)
        relation = node_class(info, "FragmentRelation")
        return [relation.from_row(row, self.id) for row in rows]

    @strawberry.field(description="Every verification decision on this fragment, oldest first.")
    async def verification_history(self, info: strawberry.Info) -> list[Annotated[
            VerificationEvent, strawberry.lazy("api.types.graph")]]:
        rows = await info.context.loaders.get(
            "verification_history", history_of_fragments).load(self.id)
        event = node_class(info, "VerificationEvent")
        return [event.from_row(row) for row in rows]

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str],
                            required: bool = False) -> list[Fragment | None]:
        ids = [as_pk(i) for i in node_ids]
        rows = await info.context.loaders.get("fragment", fragments_by_id).load_many(ids)
        return [cls.from_row(row) if row else None for row in rows]


@strawberry.type(name="FragmentConnection")
class FragmentConnection(CountedConnection[Fragment]):
    """Fragments, paged with keyset cursors."""


async def prefetch_sources(info: strawberry.Info, rows: Iterable[Any], *path: str) -> None:
    """Load the sources of a page of fragments before the page resolves, when the selection
    under `path` asks for `source`: every `Fragment.source` then answers straight from the
    request's loader (the same one statement for the page, no coroutine per fragment)."""
    source_ids = list(dict.fromkeys(row.source_id for row in rows))
    if source_ids and selects(info, *path, "source"):
        await info.context.loaders.source.load_many(source_ids)


@strawberry.input(description="Filters on fragments.")
class FragmentFilter:
    source_id: strawberry.ID | None = None
    batch_id: strawberry.ID | None = None
    run_id: strawberry.ID | None = None
    model: str | None = None
    grounding: list[Grounding] | None = None
    categories: list[Category] | None = None
    fragment_types: list[FragmentType] | None = None
    verification_statuses: list[VerificationStatusEnum] | None = None
    is_complete: bool | None = None
    has_clean_boundaries: bool | None = None
    min_relevance: int | None = None
    max_relevance: int | None = None
    min_confidence: float | None = None
    max_confidence: float | None = None
    tags: list[str] | None = strawberry.field(default=None,
                                              description="Fragments carrying any of these tags.")
    speakers: list[str] | None = strawberry.field(
        default=None, description="Fragments whose span starts in a turn of any of these "
                                  "speakers (labels as in Source.speakers).")
    subject_only: bool = strawberry.field(
        default=False, description="Only fragments wholly in the subject's own turns (none "
                                   "for a source without a subject or labelled speakers).")

    def to_spec(self) -> FragmentFilterSpec:
        """The validated filter; bad IDs and out-of-range bounds are field errors."""
        def ids(value: strawberry.ID | None, kind: str, field: str) -> int | None:
            return None if value is None else parse_id(value, kind, ("filter", field))

        def values(items: list[enum.StrEnum] | None) -> list[str] | None:
            return [str(item) for item in items] if items else None

        issues = []
        for name, low, high in (("min_relevance", 1, 10), ("max_relevance", 1, 10),
                                ("min_confidence", 0, 1), ("max_confidence", 0, 1)):
            value = getattr(self, name)
            if value is not None and not low <= value <= high:
                issues.append(FieldIssue(("filter", name), f"must be between {low} and {high}"))
        tags = [" ".join(tag.split()).lower()[:100] for tag in self.tags or []]
        if len(tags) > MAX_FILTER_TAGS:
            issues.append(FieldIssue(("filter", "tags"), f"may name at most {MAX_FILTER_TAGS}"))
        if any("\x00" in tag or not is_valid_unicode(tag) for tag in tags):
            issues.append(FieldIssue(("filter", "tags"), "must be valid text without NUL"))
        speakers = [" ".join(name.split())[:200] for name in self.speakers or []]
        if len(speakers) > MAX_FILTER_TAGS:
            issues.append(FieldIssue(("filter", "speakers"),
                                     f"may name at most {MAX_FILTER_TAGS}"))
        if any("\x00" in name or not is_valid_unicode(name) for name in speakers):
            issues.append(FieldIssue(("filter", "speakers"), "must be valid text without NUL"))
        if issues:
            raise InvalidInput(issues)
        return FragmentFilterSpec(
            source_id=ids(self.source_id, "Source", "sourceId"),
            batch_id=ids(self.batch_id, "Batch", "batchId"),
            run_id=ids(self.run_id, "Run", "runId"),
            model=self.model[:100] if self.model else None,
            grounding=values(self.grounding), categories=values(self.categories),
            fragment_types=values(self.fragment_types),
            verification_statuses=values(self.verification_statuses),
            is_complete=self.is_complete, has_clean_boundaries=self.has_clean_boundaries,
            min_relevance=self.min_relevance, max_relevance=self.max_relevance,
            min_confidence=self.min_confidence, max_confidence=self.max_confidence,
            tags=tags or None, speakers=speakers or None, subject_only=self.subject_only)


@strawberry.enum
class FragmentOrderField(enum.StrEnum):
    CREATED_AT = "CREATED_AT"
    POSITION = "POSITION"
    RELEVANCE = "RELEVANCE"
    FRAGMENT_CODE = "FRAGMENT_CODE"


@strawberry.input(description="Sort order of fragments (ties broken by id).")
class FragmentOrder:
    field: FragmentOrderField = FragmentOrderField.POSITION
    direction: OrderDirection = OrderDirection.ASC


async def fragments_of_source(info: strawberry.Info, source_id: int, first: int | None,
                              after: str | None, flt: FragmentFilter | None,
                              order_by: FragmentOrder | None) -> FragmentConnection:
    """A source's fragments (Source.fragments): first pages of every source in one statement;
    later pages (with a cursor) one statement each."""
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
                return await first_fragments_of_sources(session, ids, spec, sort, descending,
                                                        limit)

            name = f"source_fragments:{sort}:{descending}:{limit}:{spec!r}"
            page = await info.context.loaders.get(name, fetch, one_statement=True).load(
                source_id)
    except DomainError as exc:
        raise public(exc) from None
    return build_connection(FragmentConnection, page, Fragment.from_row)  # type: ignore[no-any-return]


@strawberry.type(description="Today's (UTC) spend against the daily budget.")
class Budget:
    day: dt.date
    limit_usd: Decimal | None = strawberry.field(description="Null when there is no limit.")
    spent_usd: Decimal
    reserved_usd: Decimal = strawberry.field(description="Worst case of calls in flight.")
    remaining_usd: Decimal | None
    fragment_cost_limit_usd: Decimal | None = strawberry.field(
        description="Per grounded fragment: a sweet-spot constraint and a run guard.")


async def read_budget(info: strawberry.Info) -> Budget:
    summary = await processing_uc.budget(info.context.runtime.ports)
    return Budget(day=summary.day, limit_usd=summary.limit_usd, spent_usd=summary.spent_usd,
                  reserved_usd=summary.reserved_usd, remaining_usd=summary.remaining_usd,
                  fragment_cost_limit_usd=summary.fragment_cost_limit_usd)
