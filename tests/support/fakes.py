"""In-memory fakes of the ports of `domain/ports.py`, for the use-case unit tests.

No I/O: every repository keeps its rows in the dicts of one `FakeState`, shared by the units
of work of one `FakeUnitOfWorkFactory`. A unit of work mirrors `db/uow.py`:

- entering it takes a deep copy of the state; leaving it without an error commits (the
  state stays), leaving it with an error rolls back (the copy is put back), and a read-only
  one never commits (its writes are dropped too);
- the job ids handed to `dispatch` are "sent" (appended to `factory.dispatched`) only after
  a commit, and the factory's `timeline` shows the order of begin/commit/rollback/dispatch;
- repositories refuse to be used outside the `async with` block, and a unit of work opened
  inside another is refused (the use cases never nest transactions).

After a rollback the state holds copies: look rows up again through `factory.state`, not
through references taken before the use case ran. Ids come from counters that a rollback does
not reset, like PostgreSQL sequences.

Fault injection: `factory.fail("performance.measure", RuntimeError("down"), when=...)` makes a
repository method raise; `factory.fail_next_commit = exc` makes the next commit fail (the unit
of work rolls back and raises it); `factory.retry_conflicts = n` makes the first `n` attempts of
`retrying` fail at commit with a serialisation failure, as `db.retry.retry_conflicts` retries.
Every repository call is logged in `factory.calls` as `(repository.method, args, kwargs)`.

Seeding: `factory.add_source/add_model/add_batch/add_run/add_fragment/...` insert rows;
`factory.add_chunks(run_id, done=[0, 1], failed=[2], answers=2)` stores chunk records (the
`run_chunks` rows: `state.chunks[run][index]` is "done" or "failed") with their model answers
(`state.answers`, `answers` per chunk) as the worker leaves them, and `factory.add_answers`
stores answers alone (superseded or old ones, for `answers.sweep`).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import TracebackType
from typing import Any, TypeVar, cast

from domain.api_bases import DEVELOPMENT_ALLOW_LIST
from domain.errors import Conflict, FieldIssue, InvalidInput, NotFound
from domain.evaluation import PolicyDefaults, QualityPolicy, price_key
from domain.forecast import History, Pricing
from domain.forecast import Usage as ForecastUsage
from domain.llm import ModelSpec
from domain.model import ExtractionPriority, RelationshipType
from domain.optimizer import Candidate
from domain.performance import PerformanceRecord
from domain.ports import Ports, UnitOfWorkFactory
from domain.preflight import WorkerReach
from domain.quality import QualityWeights
from domain.relationships import SYMMETRIC_TYPES
from domain.settings_keys import (
    DAILY_BUDGET,
    FRAGMENT_COST_LIMIT,
    MIN_VERIFIED,
    QUALITY_THRESHOLDS,
    QUALITY_WEIGHTS,
    REFERENCE_MODEL,
)
from domain.sources import SourceData, content_hash, count_words
from domain.strategy import Plan

T = TypeVar("T")

ACTIVE_RUN = ("pending", "processing", "waiting_budget")
TERMINAL_BATCH = ("completed", "failed", "cancelled")
NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
_ABSENT: Any = object()


# --- rows -----------------------------------------------------------------------------------------


@dataclass
class SourceRow:
    id: int | None
    source_code: str
    title: str = "A source"
    source_type: str = "interview"
    quality: str = "primary"
    extraction_priority: str = "medium"
    content: str = ""
    language: str = "en"
    author: str | None = None
    url: str | None = None
    source_date: date | None = None
    notes: str | None = None
    status: str = "pending"
    content_sha256: str = ""
    word_count: int = 0
    char_count: int = 0
    content_format: str = "TEXT"
    original_file_name: str | None = None
    original_sha256: str | None = None
    original_bytes: int | None = None
    conversion_notes: list[str] = field(default_factory=list)
    subject_name: str | None = None
    subject_aliases: list[str] = field(default_factory=list)
    subject_speakers: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.content:
            self.content = f"Content of {self.source_code}. It is what it is."
        if not self.content_sha256:
            self.content_sha256 = content_hash(self.content)
            self.word_count = count_words(self.content)
            self.char_count = len(self.content)


@dataclass
class ModelRow:
    name: str
    litellm_model: str = ""
    api_base: str | None = None
    api_key_env: str | None = None
    input_cost_per_million: Decimal | None = None
    output_cost_per_million: Decimal | None = None
    price_source: str = "none"
    context_window: int = 8192
    max_output_tokens: int = 4096
    enabled: bool = True
    is_local: bool = False
    notes: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None

    def __post_init__(self) -> None:
        self.litellm_model = self.litellm_model or self.name


@dataclass
class BatchRow:
    id: int | None
    group_id: str
    model_name: str
    status: str = "queued"
    strategy: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    budget_usd: Decimal | None = None
    decisions: list[Any] = field(default_factory=list)
    error_message: str | None = None
    mode: str = "interactive"
    forecast: dict[str, Any] | None = None


@dataclass
class RunRow:
    id: int | None
    batch_id: int
    source_id: int
    model_name: str
    status: str = "pending"
    error_message: str | None = None
    chunk_count: int = 0
    chunks_done: int = 0
    chunks_failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    llm_calls: int = 0
    latency_ms: int = 0
    repair_calls: int = 0
    repair_cost_usd: Decimal = Decimal(0)
    answers_read: int = 0
    answers_strict: int = 0
    version: int = 1
    reprocessed_from_id: int | None = None


# The usage a reprocessed run carries over from the run it reads again (db/processing.py).
RUN_USAGE = ("input_tokens", "output_tokens", "cost_usd", "llm_calls", "latency_ms",
             "repair_calls", "repair_cost_usd")


@dataclass
class AnswerRow:
    """One stored model answer (`run_answers`) of one chunk of a run; the body is not kept."""

    id: int
    run_id: int
    chunk_index: int
    superseded: bool = False
    created_at: datetime = NOW


@dataclass
class JobRow:
    id: int
    kind: str
    priority: int
    run_id: int | None
    batch_id: int | None
    max_attempts: int
    payload: dict[str, Any]
    status: str = "waiting"


@dataclass
class NewBatch:
    batch_id: int
    model_name: str
    run_ids: list[int]
    job_ids: list[int]


@dataclass(frozen=True)
class EventRow:
    batch_id: int
    seq: int
    kind: str
    run_id: int | None
    data: dict[str, Any]


@dataclass
class BudgetState:
    day: date
    limit_usd: Decimal | None
    spent_usd: Decimal
    reserved_usd: Decimal
    remaining_usd: Decimal | None = field(init=False)

    def __post_init__(self) -> None:
        self.remaining_usd = None if self.limit_usd is None else max(
            Decimal(0), self.limit_usd - self.spent_usd - self.reserved_usd)


@dataclass
class FragmentRow:
    id: int
    source_id: int
    text: str = "a fragment"
    verification_status: str = "pending"
    verified_by: str | None = None
    run_id: int | None = None
    chunk_index: int | None = None


@dataclass
class TagRow:
    id: int
    name: str
    category: str | None = None


@dataclass
class RelationshipRow:
    id: int
    fragment_id: int
    related_fragment_id: int
    relationship_type: str
    confidence: float | None = None
    notes: str | None = None
    created_by: str | None = None


@dataclass(frozen=True)
class VerificationEvent:
    fragment_id: int
    decision: str
    previous_status: str
    reviewer: str
    notes: str | None


@dataclass
class KeyRow:
    id: int
    name: str
    prefix: str
    role: str
    secret: str
    revoked: bool = False


@dataclass(frozen=True)
class IssuedKey:
    id: int
    name: str
    role: str
    secret: str


@dataclass(frozen=True)
class KeyInfo:
    id: int
    name: str
    prefix: str
    role: str
    revoked: bool


# --- the state --------------------------------------------------------------------------------


@dataclass
class FakeState:
    """Everything the repositories hold; a unit of work snapshots and restores it whole."""

    sources: dict[int, SourceRow] = field(default_factory=dict)
    models: dict[str, ModelRow] = field(default_factory=dict)
    batches: dict[int, BatchRow] = field(default_factory=dict)
    runs: dict[int, RunRow] = field(default_factory=dict)
    # the stored chunks of each run (run → chunk index → "done" or "failed") and the model
    # answers they were read from
    chunks: dict[int, dict[int, str]] = field(default_factory=dict)
    answers: list[AnswerRow] = field(default_factory=list)
    jobs: dict[int, JobRow] = field(default_factory=dict)
    events: list[EventRow] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    settings_by: dict[str, str | None] = field(default_factory=dict)
    budget_days: dict[date, tuple[Decimal, Decimal]] = field(default_factory=dict)
    # measured quality
    measured_sources: list[int] = field(default_factory=list)
    unmeasured_sources: list[int] = field(default_factory=list)
    measurements: dict[int, int] = field(default_factory=dict)  # committed measures per source
    runs_per_source: dict[int, int] = field(default_factory=dict)  # what `measure` returns
    records: dict[int, list[PerformanceRecord]] = field(default_factory=dict)
    pooled_by_source: dict[int, list[Candidate]] = field(default_factory=dict)
    pooled_by_type: dict[str, list[Candidate]] = field(default_factory=dict)
    # strategy plans
    unmeasured_samples: set[int] = field(default_factory=set)
    plan_samples: dict[tuple[str, str], tuple[list[Candidate], dict[str, frozenset[int]]]] = \
        field(default_factory=dict)
    # each source's segment map
    segments: dict[int, list[Any]] = field(default_factory=dict)
    # the fragment graph
    fragments: dict[int, FragmentRow] = field(default_factory=dict)
    tags: dict[str, TagRow] = field(default_factory=dict)
    fragment_tags: set[tuple[int, int]] = field(default_factory=set)
    relationships: dict[int, RelationshipRow] = field(default_factory=dict)
    verification_events: list[VerificationEvent] = field(default_factory=list)
    # API keys
    keys: dict[int, KeyRow] = field(default_factory=dict)
    # people's reference fragments, by (source id, external id)
    reference: dict[tuple[int, str], ReferenceRow] = field(default_factory=dict)
    # calibration: (source type, pair) of runs scored before and after a human reference
    calibration_pairs: list[tuple[str, Any]] = field(default_factory=list)
    # worker heartbeats: what each worker reported it can call, and seconds since seen
    worker_reach: dict[str, tuple[WorkerReach, float]] = field(default_factory=dict)
    # forecasts: completed runs' usage per (model, source type), live workers
    forecast_usage: dict[tuple[str, str], ForecastUsage] = field(default_factory=dict)
    live_workers: int = 0

    def restore(self, snapshot: FakeState) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(snapshot, f.name))


class SerializationFailure(Exception):
    """What the fake raises at commit for `retry_conflicts` (PostgreSQL's 40001)."""


# --- repositories -------------------------------------------------------------------------------


class _Repository:
    name = "repository"

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    @property
    def _factory(self) -> FakeUnitOfWorkFactory:
        return self._uow.factory

    @property
    def _state(self) -> FakeState:
        return self._uow.factory.state

    def _call(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Log the call, refuse use outside the block, raise an injected failure."""
        if not self._uow.active:
            raise RuntimeError("the unit of work is used outside its `async with` block")
        name = f"{self.name}.{method}"
        self._factory.calls.append((name, args, kwargs))
        for wanted, exc, when in self._factory.failures:
            if wanted == name and when(*args, **kwargs):
                raise exc


class FakeSourceRepository(_Repository):
    name = "sources"

    async def get(self, source_id: int) -> SourceRow | None:
        self._call("get", source_id)
        return self._state.sources.get(source_id)

    async def require(self, source_id: int, path: tuple[str, ...] = ("id",)) -> SourceRow:
        self._call("require", source_id, path)
        row = self._state.sources.get(source_id)
        if row is None:
            raise NotFound("Source", source_id, path)
        return row

    async def get_many(self, ids: list[int], *, with_content: bool = True
                       ) -> dict[int, SourceRow]:
        self._call("get_many", list(ids), with_content=with_content)
        return {i: self._state.sources[i] for i in ids if i in self._state.sources}

    async def get_by_code(self, code: str) -> SourceRow | None:
        self._call("get_by_code", code)
        return next((s for s in self._state.sources.values() if s.source_code == code), None)

    def _conflicts(self, codes: Iterable[str], hashes: Iterable[str]
                   ) -> tuple[dict[str, int], dict[str, int]]:
        codes, hashes = set(codes), set(hashes)
        by_code = {s.source_code: s.id or 0 for s in self._state.sources.values()
                   if s.source_code in codes}
        by_hash = {s.content_sha256: s.id or 0 for s in self._state.sources.values()
                   if s.content_sha256 in hashes}
        return by_code, by_hash

    async def add(self, data: SourceData, prefix: tuple[str, ...] = ("input",)) -> SourceRow:
        self._call("add", data, prefix)
        by_code, by_hash = self._conflicts([data.source_code], [data.content_sha256])
        if data.source_code in by_code:
            raise Conflict(f"source code {data.source_code!r} already exists",
                           (*prefix, "sourceCode"), str(by_code[data.source_code]))
        if data.content_sha256 in by_hash:
            existing = by_hash[data.content_sha256]
            raise Conflict(f"the same content is already stored as source {existing}",
                           (*prefix, "content"), str(existing))
        return self._insert(data)

    async def import_issues(self, items: list[tuple[int, SourceData]]) -> list[FieldIssue]:
        self._call("import_issues", list(items))
        issues: list[FieldIssue] = []
        seen_codes: dict[str, int] = {}
        seen_hashes: dict[str, int] = {}
        for index, item in items:
            path = ("input", "sources", str(index))
            if item.source_code in seen_codes:
                issues.append(FieldIssue((*path, "sourceCode"),
                                         f"duplicates item {seen_codes[item.source_code]}"))
            seen_codes.setdefault(item.source_code, index)
            if item.content_sha256 in seen_hashes:
                issues.append(FieldIssue((*path, "content"), "has the same content as item "
                                         f"{seen_hashes[item.content_sha256]}"))
            seen_hashes.setdefault(item.content_sha256, index)
        by_code, by_hash = self._conflicts(seen_codes, seen_hashes)
        for index, item in items:
            path = ("input", "sources", str(index))
            if item.source_code in by_code:
                issues.append(FieldIssue((*path, "sourceCode"), "already exists"))
            if item.content_sha256 in by_hash:
                issues.append(FieldIssue((*path, "content"), "is already stored"))
        return issues

    async def add_all(self, items: list[SourceData]) -> list[SourceRow]:
        self._call("add_all", list(items))
        issues = await self.import_issues(list(enumerate(items)))
        if issues:
            raise InvalidInput(issues)
        return [self._insert(item) for item in items]

    def _insert(self, data: SourceData) -> SourceRow:
        row = SourceRow(
            id=self._factory.next_id("sources"), source_code=data.source_code,
            title=data.title, source_type=data.source_type.value, quality=data.quality.value,
            extraction_priority=data.extraction_priority.value, content=data.content,
            language=data.language, author=data.author, url=data.url,
            source_date=data.source_date, notes=data.notes,
            content_format=data.content_format.value,
            original_file_name=data.original_file_name, original_sha256=data.original_sha256,
            original_bytes=data.original_bytes, conversion_notes=list(data.conversion_notes),
            subject_name=data.subject.name if data.subject else None,
            subject_aliases=list(data.subject.aliases) if data.subject else [],
            subject_speakers=list(data.subject_speakers))
        self._state.sources[row.id or 0] = row
        if data.segments:
            self._state.segments[row.id or 0] = list(data.segments)
        return row

    async def get_by_original(self, sha256: str) -> SourceRow | None:
        self._call("get_by_original", sha256)
        found = [row for row in self._state.sources.values() if row.original_sha256 == sha256]
        return min(found, key=lambda row: row.id or 0) if found else None

    async def update(self, source_id: int, changes: dict[str, Any],
                     prefix: tuple[str, ...] = ("input",)) -> SourceRow:
        self._call("update", source_id, dict(changes), prefix)
        row = self._state.sources.get(source_id)
        if row is None:
            raise NotFound("Source", source_id, (*prefix, "id"))
        by_code, by_hash = self._conflicts(
            [changes["source_code"]] if changes.get("source_code") else [],
            [changes["content_sha256"]] if changes.get("content_sha256") else [])
        if any(i != source_id for i in by_code.values()):
            raise Conflict(f"source code {changes['source_code']!r} already exists",
                           (*prefix, "sourceCode"))
        if any(i != source_id for i in by_hash.values()):
            raise Conflict("the same content is already stored", (*prefix, "content"))
        if "content" in changes and any(r.source_id == source_id
                                        for r in self._state.runs.values()):
            raise Conflict("content cannot change once the source has been processed",
                           (*prefix, "content"))
        for key, value in changes.items():
            setattr(row, key, value)
        return row

    async def delete(self, source_id: int, prefix: tuple[str, ...] = ("input",)) -> SourceRow:
        self._call("delete", source_id, prefix)
        row = self._state.sources.get(source_id)
        if row is None:
            raise NotFound("Source", source_id, (*prefix, "id"))
        runs = [r for r in self._state.runs.values() if r.source_id == source_id]
        if any(r.status in ACTIVE_RUN for r in runs):
            raise Conflict("the source has runs in progress; cancel their batches first",
                           (*prefix, "id"))
        del self._state.sources[source_id]
        for run in runs:  # ON DELETE CASCADE
            del self._state.runs[run.id or 0]
        return row


# The seed line-up the fake catalog inserts: (name, litellm model, fallback price).
SEED_MODELS: tuple[tuple[str, str, tuple[str, str] | None], ...] = (
    ("gpt-4o-mini", "gpt-4o-mini", None),
    ("claude-3-opus", "anthropic/claude-3-opus-20240229", ("15", "75")),
    ("rules-fast", "mmos/rules-fast", ("0", "0")),
)


class FakeCatalogRepository(_Repository):
    name = "catalog"

    async def seed(self, prices: Any) -> None:
        self._call("seed", prices)
        for name, litellm, fallback in SEED_MODELS:
            if name in self._state.models:
                continue
            price = prices.price_of(litellm)
            source = "litellm"
            if price is None and fallback is not None:
                price, source = (Decimal(fallback[0]), Decimal(fallback[1])), "catalog"
            window, output = prices.limits_of(litellm)
            self._state.models[name] = ModelRow(
                name, litellm, input_cost_per_million=price[0] if price else None,
                output_cost_per_million=price[1] if price else None,
                price_source=source if price else "none", context_window=window or 8192,
                max_output_tokens=output or 4096)

    async def get(self, name: str) -> ModelRow | None:
        self._call("get", name)
        return self._state.models.get(name)

    async def require(self, name: str, path: tuple[str, ...]) -> ModelRow:
        self._call("require", name, path)
        row = self._state.models.get(name)
        if row is None:
            raise NotFound("Model", name, path)
        return row

    async def get_many(self, names: list[str]) -> dict[str, ModelRow]:
        self._call("get_many", list(names))
        return {n: self._state.models[n] for n in names if n in self._state.models}

    async def register(self, values: dict[str, Any]) -> ModelRow:
        self._call("register", dict(values))
        if values["name"] in self._state.models:
            raise Conflict(f"model {values['name']!r} is already registered",
                           ("input", "name"), values["name"])
        row = ModelRow(**values)
        self._state.models[row.name] = row
        return row

    async def update(self, name: str, changes: dict[str, Any]) -> ModelRow:
        self._call("update", name, dict(changes))
        row = self._state.models.get(name)
        if row is None:
            raise NotFound("Model", name, ("input", "name"))
        for key, value in changes.items():
            setattr(row, key, value)
        return row

    def spec_of(self, row: ModelRow) -> ModelSpec:
        return ModelSpec(name=row.name, litellm_model=row.litellm_model, api_base=row.api_base,
                         api_key_env=row.api_key_env,
                         input_cost_per_million=row.input_cost_per_million,
                         output_cost_per_million=row.output_cost_per_million,
                         context_window=row.context_window,
                         max_output_tokens=row.max_output_tokens,
                         cache_read_cost_per_million=getattr(
                             row, "cache_read_cost_per_million", None),
                         cache_write_cost_per_million=getattr(
                             row, "cache_write_cost_per_million", None),
                         batch_discount=getattr(row, "batch_discount", None),
                         rpm=row.rpm, tpm=row.tpm, max_concurrency=row.max_concurrency)


class FakeProcessingRepository(_Repository):
    name = "processing"

    async def create_batch(self, *, group_id: str, model: ModelRow, sources: list[SourceRow],
                           strategy: str | None, config: dict[str, Any],
                           budget_usd: Decimal | None, max_attempts: int,
                           decisions: list[Any] | None = None,
                           mode: str = "interactive") -> NewBatch:
        self._call("create_batch", group_id=group_id, model=model.name,
                   sources=[s.id for s in sources], strategy=strategy, config=config,
                   budget_usd=budget_usd, max_attempts=max_attempts, decisions=decisions)
        batch = BatchRow(self._factory.next_id("batches"), group_id, model.name,
                         strategy=strategy, config=copy.deepcopy(config),
                         budget_usd=budget_usd, decisions=copy.deepcopy(decisions or []),
                         mode=mode)
        self._state.batches[batch.id or 0] = batch
        run_ids, job_ids = [], []
        for source in sources:
            run = RunRow(self._factory.next_id("runs"), batch.id or 0, source.id or 0,
                         model.name)
            self._state.runs[run.id or 0] = run
            run_ids.append(run.id or 0)
            job_ids.append(self._factory.new_job(
                kind="extract_run", run_id=run.id, batch_id=batch.id,
                priority=ExtractionPriority(source.extraction_priority).rank,
                max_attempts=max_attempts))
            self._state.sources[source.id or 0].status = "processing"
        self._event(batch.id or 0, "QUEUED", None, {"model": model.name, "runs": len(run_ids)})
        return NewBatch(batch.id or 0, model.name, run_ids, job_ids)

    async def busy_pair(self, source_ids: Sequence[int],
                        model_names: Sequence[str]) -> tuple[int, str] | None:
        self._call("busy_pair", list(source_ids), list(model_names))
        for run in sorted(self._state.runs.values(), key=lambda r: r.id or 0):
            if run.source_id in source_ids and run.model_name in model_names \
                    and run.status in ACTIVE_RUN:
                return run.source_id, run.model_name
        return None

    async def batch(self, batch_id: int, *, lock: bool = False) -> BatchRow | None:
        self._call("batch", batch_id, lock=lock)
        return self._state.batches.get(batch_id)

    async def batches(self, batch_ids: Sequence[int]) -> list[BatchRow]:
        self._call("batches", list(batch_ids))
        return [self._state.batches[i] for i in batch_ids if i in self._state.batches]

    async def run(self, run_id: int, *, lock: bool = False) -> RunRow | None:
        self._call("run", run_id, lock=lock)
        return self._state.runs.get(run_id)

    async def run_origin(self, run_id: int) -> tuple[int, int] | None:
        self._call("run_origin", run_id)
        run = self._state.runs.get(run_id)
        return None if run is None else (run.source_id, run.batch_id)

    async def lock_runs_of_batch(self, batch_id: int) -> None:
        self._call("lock_runs_of_batch", batch_id)

    async def cancel_batch(self, batch: BatchRow) -> BatchRow:
        self._call("cancel_batch", batch.id)
        for run in self._state.runs.values():
            if run.batch_id == batch.id and run.status in ACTIVE_RUN:
                run.status, run.error_message = "skipped", "cancelled"
        batch.status, batch.error_message = "cancelled", "cancelled by request"
        self._event(batch.id or 0, "CANCELLED", None, {"message": "cancelled"})
        return batch


    async def abandon_provider_batches(self, batch_id: int, max_attempts: int) -> list[int]:
        self._call("abandon_provider_batches", batch_id=batch_id)
        return []
    async def reopen_run(self, run: RunRow, batch: BatchRow, *, max_attempts: int) -> int:
        self._call("reopen_run", run.id, batch.id, max_attempts=max_attempts)
        source = self._state.sources[run.source_id]
        run.status, run.error_message = "pending", None
        batch.status, batch.error_message = "running", None
        job_id = self._factory.new_job(
            kind="extract_run", run_id=run.id, batch_id=batch.id, max_attempts=max_attempts,
            priority=ExtractionPriority(source.extraction_priority).rank)
        self._event(batch.id or 0, "QUEUED", run.id, {"retry": True})
        return job_id

    async def reprocess(self, run: RunRow, *, group_id: str, max_attempts: int) -> NewBatch:
        self._call("reprocess", run.id, group_id=group_id, max_attempts=max_attempts)
        batch = self._state.batches.get(run.batch_id)
        model = self._state.models.get(run.model_name)
        source = self._state.sources.get(run.source_id)
        assert batch is not None and model is not None and source is not None, \
            "seed the run's batch, model and source"
        config = {**copy.deepcopy(batch.config), "reprocessOf": run.id}
        for key in ("plan", "step", "final"):
            config.pop(key, None)
        created = await self.create_batch(group_id=group_id, model=model, sources=[source],
                                          strategy=None, config=config, budget_usd=None,
                                          max_attempts=max_attempts)
        new_run = self._state.runs[created.run_ids[0]]
        new_run.reprocessed_from_id, new_run.version = run.id, run.version + 1
        for name in RUN_USAGE:
            setattr(new_run, name, getattr(run, name))
        return created

    async def append_event(self, batch_id: int, kind: str, run_id: int | None,
                           data: dict[str, Any]) -> int:
        self._call("append_event", batch_id, kind, run_id, data)
        return self._event(batch_id, kind, run_id, data)

    def _event(self, batch_id: int, kind: str, run_id: int | None,
               data: dict[str, Any]) -> int:
        seq = 1 + sum(1 for e in self._state.events if e.batch_id == batch_id)
        self._state.events.append(EventRow(batch_id, seq, kind, run_id, dict(data)))
        return seq

    async def pending_runs(self, source_ids: Sequence[int]) -> dict[int, int]:
        self._call("pending_runs", list(source_ids))
        counts: dict[int, int] = {}
        for run in self._state.runs.values():
            if run.source_id in source_ids and run.status in ACTIVE_RUN:
                counts[run.source_id] = counts.get(run.source_id, 0) + 1
        return counts


class FakeJobRepository(_Repository):
    name = "jobs"

    async def enqueue(self, *, kind: str, priority: int, run_id: int | None = None,
                      batch_id: int | None = None, max_attempts: int = 3,
                      payload: dict[str, Any] | None = None) -> int:
        self._call("enqueue", kind=kind, priority=priority, run_id=run_id, batch_id=batch_id)
        return self._factory.new_job(kind=kind, priority=priority, run_id=run_id,
                                     batch_id=batch_id, max_attempts=max_attempts,
                                     payload=payload)

    async def cancel_for_batch(self, batch_id: int) -> list[int]:
        self._call("cancel_for_batch", batch_id)
        cancelled = []
        for job in self._state.jobs.values():
            if job.batch_id == batch_id and job.status in ("waiting", "claimed",
                                                           "waiting_budget"):
                job.status = "cancelled"
                cancelled.append(job.id)
        return cancelled

    async def resume_budget_waiters(self, remaining: Decimal | None) -> list[int]:
        self._call("resume_budget_waiters", remaining)
        resumed = []
        for job in self._state.jobs.values():
            needed = Decimal(str(job.payload.get("needed_usd", 0)))
            if job.status == "waiting_budget" and (remaining is None or needed <= remaining):
                job.status = "waiting"
                resumed.append(job.id)
                run = self._state.runs.get(job.run_id or 0)
                if run is not None and run.status == "waiting_budget":
                    run.status, run.error_message = "pending", None
        return resumed


class FakeAnswerRepository(_Repository):
    name = "answers"

    async def count_of_run(self, run_id: int) -> int:
        self._call("count_of_run", run_id)
        return sum(1 for a in self._state.answers if a.run_id == run_id and not a.superseded)

    async def supersede_failed(self, run_id: int) -> list[int]:
        self._call("supersede_failed", run_id)
        chunks = self._state.chunks.get(run_id, {})
        failed = sorted(index for index, status in chunks.items() if status == "failed")
        if not failed:
            return []
        for index in failed:
            del chunks[index]
        for answer in self._state.answers:
            if answer.run_id == run_id and answer.chunk_index in failed:
                answer.superseded = True
        gone = {f.id for f in self._state.fragments.values()
                if f.run_id == run_id and f.chunk_index in failed}
        for fragment_id in gone:  # ON DELETE CASCADE: tags, links, reviews
            del self._state.fragments[fragment_id]
        self._state.fragment_tags = {(f, t) for f, t in self._state.fragment_tags
                                     if f not in gone}
        self._state.relationships = {
            i: r for i, r in self._state.relationships.items()
            if r.fragment_id not in gone and r.related_fragment_id not in gone}
        self._state.verification_events = [e for e in self._state.verification_events
                                           if e.fragment_id not in gone]
        run = self._state.runs.get(run_id)
        if run is not None:
            run.chunks_failed = 0
        return failed

    async def sweep(self, retention_days: int, limit: int = 5000) -> int:
        self._call("sweep", retention_days, limit)
        if retention_days <= 0:
            return 0
        cutoff = self._factory.clock.now() - timedelta(days=retention_days)
        expired = sorted((a for a in self._state.answers if a.created_at < cutoff),
                         key=lambda a: a.id)[:limit]
        ids = {a.id for a in expired}
        self._state.answers = [a for a in self._state.answers if a.id not in ids]
        return len(ids)


class FakeBudgetRepository(_Repository):
    name = "budget"

    def _setting(self, key: str, default: Decimal | None) -> Decimal | None:
        value = self._state.settings.get(key, _ABSENT)
        if value is _ABSENT:
            return default
        return None if value is None else Decimal(str(value))

    async def daily_limit(self) -> Decimal | None:
        self._call("daily_limit")
        return self._setting(DAILY_BUDGET, self._factory.daily_budget_usd)

    async def fragment_cost_limit(self) -> Decimal | None:
        self._call("fragment_cost_limit")
        return self._setting(FRAGMENT_COST_LIMIT, self._factory.fragment_cost_limit_usd)

    async def state(self, day: date | None = None) -> BudgetState:
        self._call("state", day)
        day = day or self._factory.today()
        spent, reserved = self._state.budget_days.get(day, (Decimal(0), Decimal(0)))
        return BudgetState(day, self._setting(DAILY_BUDGET, self._factory.daily_budget_usd),
                           spent, reserved)


class FakePerformanceRepository(_Repository):
    name = "performance"

    async def policy(self, defaults: PolicyDefaults) -> QualityPolicy:
        self._call("policy", defaults)
        settings = self._state.settings
        raw = settings.get(QUALITY_WEIGHTS)
        weights = QualityWeights(**raw) if isinstance(raw, dict) else QualityWeights()
        minimum = settings.get(MIN_VERIFIED, _ABSENT)
        reference = settings.get(REFERENCE_MODEL, _ABSENT)
        return QualityPolicy(
            weights=weights,
            min_verified=(defaults.min_verified if not isinstance(minimum, int) or minimum < 1
                          else minimum),
            reference_model=(defaults.reference_model if reference is _ABSENT
                             else (str(reference) if reference else None)))

    async def thresholds(self) -> dict[str, float]:
        self._call("thresholds")
        raw = self._state.settings.get(QUALITY_THRESHOLDS)
        return {str(k): float(v) for k, v in raw.items()} if isinstance(raw, dict) else {}

    async def merge_thresholds(self, changes: Mapping[str, float | None],
                               updated_by: str | None) -> None:
        self._call("merge_thresholds", dict(changes), updated_by)
        stored = dict(self._state.settings.get(QUALITY_THRESHOLDS) or {})
        for key, value in changes.items():
            if value is None:
                stored.pop(key, None)
            else:
                stored[key] = value
        self._state.settings[QUALITY_THRESHOLDS] = stored
        self._state.settings_by[QUALITY_THRESHOLDS] = updated_by

    async def measure(self, source_id: int, defaults: PolicyDefaults) -> int:
        self._call("measure", source_id, defaults)
        self._state.measurements[source_id] = self._state.measurements.get(source_id, 0) + 1
        if source_id in self._state.unmeasured_sources:
            self._state.unmeasured_sources.remove(source_id)
        self._state.unmeasured_samples.discard(source_id)
        return self._state.runs_per_source.get(source_id, 1)

    async def unmeasured_sources(self, limit: int = 100) -> list[int]:
        self._call("unmeasured_sources", limit)
        return list(self._state.unmeasured_sources[:limit])

    async def measured_sources(self) -> list[int]:
        self._call("measured_sources")
        return sorted(self._state.measured_sources)

    async def records(self, source_ids: Iterable[int]) -> dict[int, list[PerformanceRecord]]:
        ids = list(dict.fromkeys(source_ids))
        self._call("records", ids)
        return {i: list(self._state.records.get(i, [])) for i in ids}

    async def pooled(self, *, source_id: int | None = None, source_type: str | None = None,
                     models: Iterable[str] | None = None) -> list[Candidate]:
        wanted = None if models is None else list(models)
        self._call("pooled", source_id=source_id, source_type=source_type, models=wanted)
        if source_id is not None:
            found = self._state.pooled_by_source.get(source_id, [])
        else:
            found = self._state.pooled_by_type.get(source_type or "", [])
        return [c for c in found if wanted is None or c.model in wanted]

    async def source_types_measured(self) -> list[str]:
        self._call("source_types_measured")
        return sorted(self._state.pooled_by_type)

    async def model_prices(self, names: Iterable[str] | None = None
                           ) -> dict[str, Decimal | None]:
        wanted = None if names is None else list(names)
        self._call("model_prices", wanted)
        return {m.name: price_key(m.input_cost_per_million, m.output_cost_per_million)
                for m in self._state.models.values() if wanted is None or m.name in wanted}


def _plan_key(batch: BatchRow) -> tuple[str, str, int] | None:
    plan = batch.config.get("plan")
    if not isinstance(plan, dict):
        return None
    return batch.group_id, str(plan["sourceType"]), int(batch.config.get("step", 0))


class FakeStrategyRepository(_Repository):
    name = "strategies"

    async def lock_plan(self, group_id: str, source_type: str) -> None:
        self._call("lock_plan", group_id, source_type)

    async def step_siblings(self, group_id: str, source_type: str, step: int) -> list[BatchRow]:
        self._call("step_siblings", group_id, source_type, step)
        return sorted((b for b in self._state.batches.values()
                       if _plan_key(b) == (group_id, source_type, step)),
                      key=lambda b: b.id or 0)

    async def record_decision(self, batch_ids: Sequence[int], record: dict[str, Any]) -> None:
        self._call("record_decision", list(batch_ids), record)
        for batch_id in batch_ids:
            self._state.batches[batch_id].decisions.append(copy.deepcopy(record))

    async def stalled_steps(self, limit: int) -> list[int]:
        self._call("stalled_steps", limit)
        steps: dict[tuple[str, str, int], list[BatchRow]] = {}
        for batch in self._state.batches.values():
            key = _plan_key(batch)
            if key is not None:
                steps.setdefault(key, []).append(batch)
        found = []
        for key, batches in steps.items():
            decided = any(d.get("afterStep") == key[2] for b in batches for d in b.decisions)
            ended = [b for b in batches if b.strategy is not None
                     and not b.config.get("final") and b.status in TERMINAL_BATCH]
            if ended and not decided:
                found.append(min(b.id or 0 for b in ended))
        return sorted(found)[:limit]

    async def unmeasured_samples(self, source_ids: Sequence[int]) -> list[int]:
        self._call("unmeasured_samples", list(source_ids))
        return [i for i in source_ids if i in self._state.unmeasured_samples]

    async def plan_samples(self, group_id: str, source_type: str, sample_ids: Sequence[int]
                           ) -> tuple[list[Candidate], dict[str, frozenset[int]]]:
        self._call("plan_samples", group_id, source_type, list(sample_ids))
        pooled, done = self._state.plan_samples.get((group_id, source_type), ([], {}))
        return list(pooled), dict(done)


def _pair_matches(row: RelationshipRow, fragment_id: int, related_id: int,
                  kind: RelationshipType | None) -> bool:
    forward = (row.fragment_id, row.related_fragment_id) == (fragment_id, related_id)
    backward = (row.fragment_id, row.related_fragment_id) == (related_id, fragment_id)
    symmetric = {t.value for t in SYMMETRIC_TYPES}
    if kind is None:
        return forward or (backward and row.relationship_type in symmetric)
    if row.relationship_type != kind.value:
        return False
    return forward or (backward and kind in SYMMETRIC_TYPES)


class FakeGraphRepository(_Repository):
    name = "graph"

    async def require_fragments(self, wanted: dict[int, tuple[str, ...]], *,
                                lock: bool = False) -> dict[int, FragmentRow]:
        self._call("require_fragments", dict(wanted), lock=lock)
        for fragment_id, path in wanted.items():
            if fragment_id not in self._state.fragments:
                raise NotFound("Fragment", fragment_id, path)
        return {i: self._state.fragments[i] for i in sorted(wanted)}

    async def ensure_tags(self, names: Sequence[str], category: str | None) -> list[TagRow]:
        self._call("ensure_tags", list(names), category)
        for name in names:
            if name not in self._state.tags:
                self._state.tags[name] = TagRow(self._factory.next_id("tags"), name, category)
        return [self._state.tags[n] for n in sorted(set(names))]

    async def link_tags(self, fragment_ids: Sequence[int], tag_ids: Sequence[int]) -> int:
        self._call("link_tags", list(fragment_ids), list(tag_ids))
        new = {(f, t) for f in fragment_ids for t in tag_ids} - self._state.fragment_tags
        self._state.fragment_tags |= new
        return len(new)

    async def unlink_tags(self, fragment_ids: Sequence[int], names: Sequence[str]) -> int:
        self._call("unlink_tags", list(fragment_ids), list(names))
        tag_ids = {self._state.tags[n].id for n in names if n in self._state.tags}
        gone = {(f, t) for f, t in self._state.fragment_tags
                if f in fragment_ids and t in tag_ids}
        self._state.fragment_tags -= gone
        return len(gone)

    async def add_relationship(self, *, fragment_id: int, related_id: int,
                               kind: RelationshipType, confidence: float | None,
                               notes: str | None, created_by: str | None) -> RelationshipRow:
        self._call("add_relationship", fragment_id=fragment_id, related_id=related_id,
                   kind=kind, confidence=confidence, notes=notes, created_by=created_by)
        for row in self._state.relationships.values():
            if _pair_matches(row, fragment_id, related_id, kind):
                raise Conflict(f"these fragments are already linked as {kind.value} "
                               f"(relationship {row.id})", ("input", "relationshipType"),
                               str(row.id))
        row = RelationshipRow(self._factory.next_id("relationships"), fragment_id, related_id,
                              kind.value, confidence, notes, created_by)
        self._state.relationships[row.id] = row
        return row

    async def delete_relationship(self, relationship_id: int,
                                  path: tuple[str, ...]) -> list[RelationshipRow]:
        self._call("delete_relationship", relationship_id, path)
        row = self._state.relationships.pop(relationship_id, None)
        if row is None:
            raise NotFound("Relationship", relationship_id, path)
        return [row]

    async def delete_links(self, fragment_id: int, related_id: int,
                           kind: RelationshipType | None) -> list[RelationshipRow]:
        self._call("delete_links", fragment_id, related_id, kind)
        gone = [r for r in self._state.relationships.values()
                if _pair_matches(r, fragment_id, related_id, kind)]
        for row in gone:
            del self._state.relationships[row.id]
        return gone

    async def record_decision(self, locked: dict[int, FragmentRow], decision: str,
                              reviewer: str, notes: str | None) -> list[FragmentRow]:
        self._call("record_decision", list(locked), decision, reviewer, notes)
        rows = []
        for fragment_id in locked:
            row = self._state.fragments[fragment_id]
            self._state.verification_events.append(VerificationEvent(
                fragment_id, decision, row.verification_status, reviewer, notes))
            row.verification_status, row.verified_by = decision, reviewer
            rows.append(row)
        return rows


class FakeSettingsRepository(_Repository):
    name = "settings_store"

    async def get(self, key: str, default: Any = None) -> Any:
        self._call("get", key, default)
        return copy.deepcopy(self._state.settings.get(key, default))

    async def put(self, key: str, value: Any, updated_by: str | None = None) -> None:
        self._call("put", key, value, updated_by)
        self._state.settings[key] = copy.deepcopy(value)
        self._state.settings_by[key] = updated_by


class FakeKeyRepository(_Repository):
    name = "keys"

    async def create(self, name: str, role: str) -> IssuedKey:
        self._call("create", name, role)
        if role not in ("viewer", "editor", "operator"):
            raise ValueError(f"unknown role {role!r}")
        key_id = self._factory.next_id("keys")
        prefix = f"{key_id:08x}"
        secret = f"mmos_{prefix}_{hashlib.sha256(str(key_id).encode()).hexdigest()}"
        self._state.keys[key_id] = KeyRow(key_id, name[:100], prefix, role, secret)
        return IssuedKey(key_id, name[:100], role, secret)

    async def revoke(self, ident: str) -> int:
        self._call("revoke", ident)
        revoked = 0
        for row in self._state.keys.values():
            if not row.revoked and ident in (row.name, row.prefix, str(row.id), row.secret):
                row.revoked = True
                revoked += 1
        return revoked

    async def list(self) -> list[KeyInfo]:
        self._call("list")
        return [KeyInfo(r.id, r.name, r.prefix, r.role, r.revoked)
                for r in sorted(self._state.keys.values(), key=lambda r: r.id)]


# --- unit of work -------------------------------------------------------------------------------


class FakeUnitOfWork:
    """One "transaction" over the factory's state (see the module docstring)."""

    def __init__(self, factory: FakeUnitOfWorkFactory, *, read_only: bool = False) -> None:
        self.factory = factory
        self.read_only = read_only
        self.number = len(factory.units)
        self.active = False
        self.committed = False
        self.rolled_back = False
        self.handed: list[int] = []  # every id given to `dispatch`
        self._snapshot: FakeState | None = None
        self.fail_commit: BaseException | None = None
        self.sources = FakeSourceRepository(self)
        self.catalog = FakeCatalogRepository(self)
        self.processing = FakeProcessingRepository(self)
        self.jobs = FakeJobRepository(self)
        self.answers = FakeAnswerRepository(self)
        self.budget = FakeBudgetRepository(self)
        self.performance = FakePerformanceRepository(self)
        self.strategies = FakeStrategyRepository(self)
        self.graph = FakeGraphRepository(self)
        self.settings_store = FakeSettingsRepository(self)
        self.keys = FakeKeyRepository(self)
        self.reference = FakeReferenceRepository(self)
        self.segments = FakeSegmentRepository(self)
        self.calibration = FakeCalibrationRepository(self)
        self.workers = FakeWorkerRepository(self)
        self.forecasts = FakeForecastRepository(self)

    @property
    def dispatched_after_commit(self) -> list[int]:
        """The ids handed to `dispatch`, once committed (nothing otherwise)."""
        return list(self.handed) if self.committed else []

    async def __aenter__(self) -> FakeUnitOfWork:
        if self.factory.open_unit is not None:
            raise RuntimeError("a unit of work was opened inside another")
        if self._snapshot is not None:
            raise RuntimeError("a unit of work is used once")
        self._snapshot = copy.deepcopy(self.factory.state)
        self.factory.open_unit = self
        self.active = True
        self.factory.timeline.append(("begin", self.number))
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.active = False
        self.factory.open_unit = None
        assert self._snapshot is not None
        if self.read_only:
            self.factory.state.restore(self._snapshot)  # never commits: writes are dropped
            self.factory.timeline.append(("close", self.number))
            return
        failure = None
        if exc_type is None:
            failure = self.fail_commit or self.factory.fail_next_commit
            self.factory.fail_next_commit = None
        if exc_type is not None or failure is not None:
            self.factory.state.restore(self._snapshot)
            self.rolled_back = True
            self.factory.timeline.append(("rollback", self.number))
            if failure is not None:
                raise failure
            return
        self.committed = True
        self.factory.timeline.append(("commit", self.number))
        if self.handed:
            self.factory.dispatched.extend(self.handed)
            self.factory.timeline.append(("dispatch", list(self.handed)))

    def dispatch(self, job_ids: Iterable[int]) -> None:
        self.handed.extend(job_ids)


class FakeUnitOfWorkFactory:
    """Makes fake units of work over one in-memory state; seeds rows for tests."""

    def __init__(self, *, daily_budget_usd: Decimal | None = None,
                 fragment_cost_limit_usd: Decimal | None = None,
                 clock: FakeClock | None = None) -> None:
        self.state = FakeState()
        self.daily_budget_usd = daily_budget_usd
        self.fragment_cost_limit_usd = fragment_cost_limit_usd
        self.clock = clock or FakeClock()
        self.units: list[FakeUnitOfWork] = []
        self.open_unit: FakeUnitOfWork | None = None
        self.dispatched: list[int] = []  # job ids sent after commits, in order
        self.timeline: list[tuple[str, Any]] = []
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.failures: list[tuple[str, BaseException, Callable[..., bool]]] = []
        self.fail_next_commit: BaseException | None = None
        self.retry_conflicts = 0
        self.retrying_calls = 0
        self._ids: dict[str, itertools.count[int]] = {}

    def __call__(self, *, read_only: bool = False) -> FakeUnitOfWork:
        uow = FakeUnitOfWork(self, read_only=read_only)
        self.units.append(uow)
        return uow

    async def retrying(self, work: Callable[[Any], Awaitable[T]]) -> T:
        """`work` in a fresh unit of work, again after each simulated serialisation failure."""
        self.retrying_calls += 1
        while True:
            uow = self()
            if self.retry_conflicts > 0:
                self.retry_conflicts -= 1
                uow.fail_commit = SerializationFailure("could not serialize access")
            try:
                async with uow:
                    return await work(uow)
            except SerializationFailure:
                continue

    # -- helpers for tests --------------------------------------------------------------------

    def next_id(self, kind: str) -> int:
        return next(self._ids.setdefault(kind, itertools.count(1)))

    def today(self) -> date:
        return self.clock.now().date()

    def fail(self, method: str, exc: BaseException,
             when: Callable[..., bool] = lambda *a, **k: True) -> None:
        """Make `repository.method` raise `exc` (when `when(*args, **kwargs)` holds)."""
        self.failures.append((method, exc, when))

    def called(self, method: str) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        """The (args, kwargs) of every call of `repository.method`, in order."""
        return [(args, kwargs) for name, args, kwargs in self.calls if name == method]

    def call_names(self) -> list[str]:
        return [name for name, _, _ in self.calls]

    @property
    def writing_units(self) -> list[FakeUnitOfWork]:
        return [u for u in self.units if not u.read_only]

    @property
    def committed_units(self) -> list[FakeUnitOfWork]:
        return [u for u in self.units if u.committed]

    def new_job(self, *, kind: str, priority: int, run_id: int | None, batch_id: int | None,
                max_attempts: int = 3, payload: dict[str, Any] | None = None,
                status: str = "waiting") -> int:
        job = JobRow(self.next_id("jobs"), kind, priority, run_id, batch_id, max_attempts,
                     dict(payload or {}), status)
        self.state.jobs[job.id] = job
        return job.id

    def add_source(self, code: str | None = None, **values: Any) -> SourceRow:
        source_id = self.next_id("sources")
        row = SourceRow(source_id, code or f"SRC-{source_id:03d}", **values)
        self.state.sources[source_id] = row
        return row

    def add_model(self, name: str, *, price: tuple[str, str] | None = ("1", "2"),
                  **values: Any) -> ModelRow:
        """A catalog model; `price` is (input, output) per million, None for unpriced."""
        row = ModelRow(name, input_cost_per_million=Decimal(price[0]) if price else None,
                       output_cost_per_million=Decimal(price[1]) if price else None,
                       price_source="override" if price else "none", **values)
        self.state.models[name] = row
        return row

    def add_worker(self, worker_id: str = "w1", *, providers: Iterable[str] = (),
                   missing: Mapping[str, Sequence[str]] | None = None,
                   key_envs: Iterable[str] = (), seconds_since_seen: float = 1.0
                   ) -> WorkerReach:
        """A worker heartbeat: the providers it holds keys for, those whose keys it lacks
        (with the variables LiteLLM wants), the model key variables set."""
        reach = WorkerReach(worker_id, frozenset(providers),
                            {p: tuple(k) for p, k in (missing or {}).items()},
                            frozenset(key_envs))
        self.state.worker_reach[worker_id] = (reach, seconds_since_seen)
        return reach

    def add_batch(self, model_name: str = "m", *, group_id: str = "group", **values: Any
                  ) -> BatchRow:
        row = BatchRow(self.next_id("batches"), group_id, model_name, **values)
        self.state.batches[row.id or 0] = row
        return row

    def add_plan_batch(self, plan: Plan, step: int, model_name: str, *, group_id: str = "group",
                       status: str = "completed", final: bool = False,
                       decisions: list[Any] | None = None,
                       budget_usd: Decimal | None = None) -> BatchRow:
        """A batch of one step of a strategy plan, as `start_plans`/`_take` create them."""
        return self.add_batch(model_name, group_id=group_id, status=status,
                              strategy=plan.strategy, budget_usd=budget_usd,
                              config={"plan": plan.to_json(), "step": step, "final": final},
                              decisions=list(decisions or []))

    def add_run(self, batch_id: int, source_id: int, model_name: str = "m",
                status: str = "pending", **values: Any) -> RunRow:
        """A run; `values` sets any other column (usage, counters, `version`...)."""
        row = RunRow(self.next_id("runs"), batch_id, source_id, model_name, status, **values)
        self.state.runs[row.id or 0] = row
        return row

    def add_chunks(self, run_id: int, *, done: Iterable[int] = (), failed: Iterable[int] = (),
                   answers: int = 1, fragments: int = 0) -> None:
        """Stored chunks of a run, as the worker leaves them: each done or failed chunk with
        `answers` current model answers and `fragments` fragments of its own; the run's
        chunk_count, chunks_done and chunks_failed count them."""
        run = self.state.runs[run_id]
        chunks = self.state.chunks.setdefault(run_id, {})
        for status, indexes in (("done", done), ("failed", failed)):
            for index in indexes:
                if index in chunks:
                    raise ValueError(f"chunk {index} of run {run_id} is already stored")
                chunks[index] = status
                if status == "done":
                    run.chunks_done += 1
                else:
                    run.chunks_failed += 1
                run.chunk_count = max(run.chunk_count, index + 1)
                self.add_answers(run_id, index, answers)
                for _ in range(fragments):
                    self.add_fragment(run.source_id, run_id=run_id, chunk_index=index)

    def add_answers(self, run_id: int, chunk_index: int, count: int = 1, *,
                    superseded: bool = False, created_at: datetime | None = None
                    ) -> list[AnswerRow]:
        """Stored model answers of one chunk of a run (no chunk record: see `add_chunks`)."""
        rows = [AnswerRow(self.next_id("answers"), run_id, chunk_index, superseded,
                          created_at or self.clock.now()) for _ in range(count)]
        self.state.answers.extend(rows)
        return rows

    def add_fragment(self, source_id: int, **values: Any) -> FragmentRow:
        row = FragmentRow(self.next_id("fragments"), source_id, **values)
        self.state.fragments[row.id] = row
        return row

    def add_tag(self, name: str, category: str | None = None) -> TagRow:
        row = TagRow(self.next_id("tags"), name, category)
        self.state.tags[name] = row
        return row

    def add_relationship(self, fragment_id: int, related_id: int,
                         kind: RelationshipType = RelationshipType.SUPPORTS) -> RelationshipRow:
        row = RelationshipRow(self.next_id("relationships"), fragment_id, related_id,
                              kind.value)
        self.state.relationships[row.id] = row
        return row

    def add_key(self, name: str, role: str = "viewer") -> KeyRow:
        key_id = self.next_id("keys")
        row = KeyRow(key_id, name, f"{key_id:08x}", role, f"mmos_{key_id:08x}_{'s' * 40}")
        self.state.keys[key_id] = row
        return row


# --- the rest of the world ----------------------------------------------------------------------


@dataclass
class FakeClock:
    at: datetime = NOW

    def now(self) -> datetime:
        return self.at


@dataclass
class FakePrices:
    """LiteLLM's price map as dicts: model → (input, output) per million, → (window, output)."""

    prices: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)
    limits: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)

    def price_of(self, litellm_model: str) -> tuple[Decimal, Decimal] | None:
        return self.prices.get(litellm_model)

    def limits_of(self, litellm_model: str) -> tuple[int | None, int | None]:
        return self.limits.get(litellm_model, (None, None))


@dataclass
class FakeSettings:
    """Every attribute of `domain.ports.Settings`, with api/settings.py's defaults."""

    max_content_bytes: int = 5 * 1024 * 1024
    max_import_items: int = 500
    job_max_attempts: int = 3
    max_output_tokens: int = 4096
    chunk_max_tokens: int = 1500
    chunk_overlap_tokens: int = 100
    daily_budget_usd: Decimal | None = None
    fragment_cost_limit_usd: Decimal | None = None
    quality_min_verified_fragments: int = 5
    quality_reference_model: str | None = None
    strategy_sample_sources: int = 2
    worker_threads: int = 4
    llm_concurrency: int = 8
    run_failed_chunk_share: float = 0.5
    answer_retention_days: int = 90
    max_reference_import_bytes: int = 5 * 1024 * 1024
    max_upload_bytes: int = 50 * 1024 * 1024
    # development's default (domain/api_bases.py): loopback and private ranges
    api_base_allow_list: tuple[str, ...] = DEVELOPMENT_ALLOW_LIST
    batch_discount_map: dict[str, Decimal] = field(default_factory=lambda: {
        "openai": Decimal("0.5"), "anthropic": Decimal("0.5")})


_SETTING_NAMES = frozenset(f.name for f in fields(FakeSettings))


def make_ports(**overrides: Any) -> Ports:
    """Ports over fakes. Overrides: `uow`, `settings`, `clock`, `prices`, or any setting by
    name (`max_import_items=2`); the factory takes its budget defaults from the settings, as
    the composition root does."""
    unknown = set(overrides) - _SETTING_NAMES - {"uow", "settings", "clock", "prices",
                                                 "forecaster", "converter"}
    if unknown:
        raise TypeError(f"make_ports got unknown overrides {sorted(unknown)}")
    settings = overrides.get("settings") or FakeSettings(
        **{k: v for k, v in overrides.items() if k in _SETTING_NAMES})
    clock = overrides.get("clock") or FakeClock()
    uow = overrides.get("uow") or FakeUnitOfWorkFactory(
        daily_budget_usd=settings.daily_budget_usd,
        fragment_cost_limit_usd=settings.fragment_cost_limit_usd, clock=clock)
    # cast: domain/ports.py's ProcessingRepository and StrategyRepository lag behind what the
    # use cases call (cancel_batch, reopen_run, lock_runs_of_batch, plan_samples); the fakes
    # follow the use cases and db/.
    return Ports(uow=cast(UnitOfWorkFactory, uow), settings=settings, clock=clock,
                 prices=overrides.get("prices") or FakePrices(),
                 forecaster=overrides.get("forecaster"), converter=overrides.get("converter"))


def fakes_of(ports: Ports) -> FakeUnitOfWorkFactory:
    """The fake unit of work factory of `make_ports`' ports (typed for tests)."""
    assert isinstance(ports.uow, FakeUnitOfWorkFactory)
    return ports.uow


def candidate(model: str, quality: float, *, low: float | None = None,
              high: float | None = None, cost: str = "1", grounded: int = 100,
              chars: int = 10_000, samples: int = 1, provisional: bool = False) -> Candidate:
    """A measured candidate (quality interval defaults to the point)."""
    return Candidate(model, quality, quality if low is None else low,
                     quality if high is None else high, provisional, Decimal(cost), grounded,
                     chars, samples)


def performance_record(source_id: int, model: str, quality: float, *, run_id: int,
                       source_type: str = "interview", reference_kind: str = "consensus",
                       reference_model: str | None = None, cost: str = "1",
                       grounded: int = 100, finished_at: datetime | None = None
                       ) -> PerformanceRecord:
    """A stored measurement of one run, as `performance.records` returns them."""
    cost_usd = Decimal(cost)
    return PerformanceRecord(
        run_id=run_id, batch_id=1, source_id=source_id, source_type=source_type,
        source_chars=10_000, model=model, reference_kind=reference_kind,
        reference_model=reference_model, quality_score=quality, quality_low=quality,
        quality_high=quality, provisional=False, grounded_rate=1.0, miu_rate=1.0,
        precision=None, recall=None, f1=None, coverage=1.0, mean_relevance=8.0,
        fragment_count=grounded, grounded_fragment_count=grounded, cost_usd=cost_usd,
        cost_per_fragment=cost_usd / grounded if grounded else None,
        cost_per_1k_chars=cost_usd / 10, latency_ms=100, metrics={},
        finished_at=finished_at or NOW)


class FakeWorkerRepository(_Repository):
    """Heartbeats from `state.worker_reach` (see `FakeUnitOfWorkFactory.add_worker`)."""

    name = "workers"

    async def reach(self, within_seconds: float) -> list[WorkerReach]:
        self._call("reach", within_seconds)
        return [reach for reach, seconds in sorted(self._state.worker_reach.values(),
                                                    key=lambda item: item[0].worker_id)
                if seconds <= within_seconds]


class FakeCalibrationRepository(_Repository):
    """`calibration.pairs` over `state.calibration_pairs` (seed them with
    `factory.state.calibration_pairs.append((source_type, CalibrationPair(...)))`); like
    db/calibration.py, only completed runs' pairs are there to be seeded."""

    name = "calibration"

    async def pairs(self, source_type: str | None = None) -> list[Any]:
        self._call("pairs", source_type)
        return [pair for kind, pair in self._state.calibration_pairs
                if source_type is None or kind == source_type]


# --- forecasts (domain/services/forecast.py) ---------------------------------------------


class FakeForecastRepository(_Repository):
    """History from `state.forecast_usage`, live workers from `state.live_workers`; stored
    forecasts land on the batch rows (`BatchRow.forecast`)."""

    name = "forecasts"

    async def history(self, model_names: Sequence[str] | None = None) -> History:
        self._call("history", model_names)
        return History(dict(self._state.forecast_usage))

    async def live_workers(self, within_seconds: int = 30) -> int:
        self._call("live_workers", within_seconds)
        return self._state.live_workers

    async def batch_sources(self, batch_ids: Sequence[int]) -> dict[int, list[int]]:
        self._call("batch_sources", batch_ids)
        found: dict[int, list[int]] = {bid: [] for bid in batch_ids}
        for run in sorted(self._state.runs.values(), key=lambda r: r.id or 0):
            if run.batch_id in found:
                found[run.batch_id].append(run.source_id)
        return found

    async def store(self, batch_id: int, forecast: dict[str, Any]) -> None:
        self._call("store", batch_id)
        self._state.batches[batch_id].forecast = forecast


@dataclass
class FakeForecaster:
    """`domain.ports.Forecaster` without a tokenizer: one call per `chunk_chars` characters
    of content, each of `overhead + chars // 4` tokens; rates per model name."""

    rates: dict[str, Pricing] = field(default_factory=dict)
    chunk_chars: int = 4000
    overhead: int = 300

    def prompt_tokens(self, model: ModelSpec, max_tokens: int, *, content: str,
                      language: str, source_type: str, segments: Sequence[Any] = (),
                      subject: Any = None) -> list[int]:
        pieces = [content[i:i + self.chunk_chars]
                  for i in range(0, max(len(content), 1), self.chunk_chars)]
        return [self.overhead + len(piece) // 4 for piece in pieces]

    def pricing(self, model: ModelSpec, *, batch: bool) -> Pricing:
        found = self.rates.get(model.name, Pricing(None))
        return found if batch else Pricing(found.rates, None, found.cached_prefix_tokens)


# --- reference fragments (domain/services/reference.py) -------------------------------------


@dataclass
class ReferenceRow:
    """A stored reference fragment: ReferenceFragmentData's fields plus id, source, times."""

    id: int
    source_id: int
    values: dict[str, Any]
    imported_at: datetime
    updated_at: datetime

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(name)


class FakeSegmentRepository(_Repository):
    name = "segments"

    async def add(self, source_id: int, segments: Sequence[Any]) -> None:
        self._call("add", source_id, segments)
        if segments:
            self._state.segments.setdefault(source_id, []).extend(segments)

    async def replace(self, source_id: int, segments: Sequence[Any]) -> None:
        self._call("replace", source_id, segments)
        self._state.segments[source_id] = list(segments)

    async def of_source(self, source_id: int) -> list[Any]:
        self._call("of_source", source_id)
        return list(self._state.segments.get(source_id, []))

    async def of_sources(self, source_ids: Sequence[int]) -> dict[int, list[Any]]:
        self._call("of_sources", source_ids)
        return {sid: list(self._state.segments[sid]) for sid in source_ids
                if self._state.segments.get(sid)}

    async def speaker_labels(self, source_id: int) -> list[str]:
        self._call("speaker_labels", source_id)
        from domain.sources import speaker_labels

        return list(speaker_labels(self._state.segments.get(source_id, [])))


class FakeReferenceRepository(_Repository):
    name = "reference"

    async def upsert(self, source_id: int, items: Sequence[Any],
                     now: datetime) -> tuple[int, int, int]:
        self._call("upsert", source_id, items, now)
        created = updated = 0
        for item in items:
            values = {f.name: copy.deepcopy(getattr(item, f.name)) for f in fields(item)}
            row = self._state.reference.get((source_id, item.external_id))
            if row is None:
                self._state.reference[(source_id, item.external_id)] = ReferenceRow(
                    self._factory.next_id("reference"), source_id, values, now, now)
                created += 1
            elif row.values != values:
                row.values, row.updated_at = values, now
                updated += 1
        return created, updated, len(items) - created - updated

    async def of_source(self, source_id: int,
                        external_ids: Sequence[str] | None = None) -> list[ReferenceRow]:
        self._call("of_source", source_id, external_ids)
        wanted = None if external_ids is None else set(external_ids)
        rows = [row for (owner, key), row in self._state.reference.items()
                if owner == source_id and (wanted is None or key in wanted)]
        return sorted(rows, key=lambda r: (r.char_start is None, r.char_start or 0, r.id))
