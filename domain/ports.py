"""Ports: what the use cases of `domain/services` need from the world, as Protocols.

`db/` implements the unit of work and its repositories, `workers/` the model client, the event
bus, the job dispatcher and the price catalog. The composition root (`api/container.py`) wires
the real ones; `tests/support/fakes.py` has in-memory ones. See docs/ARCHITECTURE.md.

Rows handed out by repositories are read through the record Protocols below (attributes
only), so the domain names what it reads without importing any table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Protocol, TypeVar

from domain.calibration import CalibrationPair
from domain.documents import ContentFormat, ConvertedDocument, Segment
from domain.errors import FieldIssue
from domain.evaluation import QualityPolicy
from domain.events import EventBus
from domain.forecast import History, Pricing
from domain.llm import ModelClient, ModelSpec
from domain.optimizer import Candidate
from domain.preflight import WorkerReach
from domain.reference_import import ReferenceFragmentData
from domain.sources import SourceData
from domain.subjects import Subject

__all__ = [
    "BatchRecord", "BudgetRepository", "BudgetView", "CalibrationRepository",
    "CatalogRepository", "Clock",
    "EventBus", "ForecastRepository", "Forecaster", "GraphRepository", "JobDispatcher",
    "JobRepository", "KeyRepository",
    "ModelClient", "ModelRecord", "NewBatchRecord", "PerformanceRepository", "Ports",
    "PriceCatalog", "ProcessingRepository", "ReferenceRepository", "RunRecord", "Settings",
    "SettingsRepository",
    "SourceRecord", "SourceRepository", "StrategyRepository", "UnitOfWork", "UnitOfWorkFactory",
    "WorkerRepository",
]

T = TypeVar("T")


# --- records (attributes the use cases read) ------------------------------------------------


class SourceRecord(Protocol):
    id: int | None
    source_code: str
    source_type: str
    extraction_priority: str
    language: str


class ModelRecord(Protocol):
    name: str
    litellm_model: str
    enabled: bool
    max_output_tokens: int
    input_cost_per_million: Decimal | None
    output_cost_per_million: Decimal | None


class BatchRecord(Protocol):
    id: int | None
    group_id: str
    status: str
    strategy: str | None
    config: dict[str, Any]
    budget_usd: Decimal | None


class RunRecord(Protocol):
    id: int | None
    batch_id: int
    source_id: int
    model_name: str
    status: str


class NewBatchRecord(Protocol):
    @property
    def batch_id(self) -> int: ...
    @property
    def run_ids(self) -> list[int]: ...
    @property
    def job_ids(self) -> list[int]: ...


class BudgetView(Protocol):
    @property
    def day(self) -> date: ...
    @property
    def limit_usd(self) -> Decimal | None: ...
    @property
    def spent_usd(self) -> Decimal: ...
    @property
    def reserved_usd(self) -> Decimal: ...
    @property
    def remaining_usd(self) -> Decimal | None: ...


# --- settings ------------------------------------------------------------------------------------


class Settings(Protocol):
    """The settings the use cases read (MMOS's pydantic Settings satisfies it)."""

    max_content_bytes: int
    max_import_items: int
    job_max_attempts: int
    max_output_tokens: int
    chunk_max_tokens: int
    chunk_overlap_tokens: int
    daily_budget_usd: Decimal | None
    fragment_cost_limit_usd: Decimal | None
    quality_min_verified_fragments: int
    quality_reference_model: str | None
    strategy_sample_sources: int
    worker_threads: int
    llm_concurrency: int
    run_failed_chunk_share: float
    answer_retention_days: int
    max_reference_import_bytes: int
    max_upload_bytes: int

    @property
    def api_base_allow_list(self) -> tuple[str, ...]:
        """Where custom model API bases may point (domain/api_bases.py)."""
        ...

    @property
    def batch_discount_map(self) -> dict[str, Decimal]:
        """Batch mode's default discount per provider (MMOS_BATCH_DISCOUNTS)."""
        ...


# --- repositories --------------------------------------------------------------------------------


class SourceRepository(Protocol):
    async def get(self, source_id: int) -> Any: ...
    async def require(self, source_id: int, path: tuple[str, ...] = ("id",)) -> Any: ...
    async def get_many(self, ids: list[int], *, with_content: bool = True) -> dict[int, Any]: ...
    async def get_by_code(self, code: str) -> Any: ...
    async def get_by_original(self, sha256: str) -> Any: ...
    async def add(self, data: SourceData, prefix: tuple[str, ...] = ("input",)) -> Any: ...
    async def import_issues(self, items: list[tuple[int, SourceData]]) -> list[FieldIssue]: ...
    async def add_all(self, items: list[SourceData]) -> list[Any]: ...
    async def update(self, source_id: int, changes: dict[str, Any],
                     prefix: tuple[str, ...] = ("input",)) -> Any: ...
    async def delete(self, source_id: int, prefix: tuple[str, ...] = ("input",)) -> Any: ...


class CatalogRepository(Protocol):
    async def seed(self, prices: PriceCatalog) -> None: ...
    async def get(self, name: str) -> Any: ...
    async def require(self, name: str, path: tuple[str, ...]) -> Any: ...
    async def get_many(self, names: list[str]) -> dict[str, Any]: ...
    async def register(self, values: dict[str, Any]) -> Any: ...
    async def update(self, name: str, changes: dict[str, Any]) -> Any: ...
    def spec_of(self, row: Any) -> ModelSpec: ...


class ProcessingRepository(Protocol):
    async def create_batch(self, *, group_id: str, model: Any, sources: list[Any],
                           strategy: str | None, config: dict[str, Any],
                           budget_usd: Decimal | None, max_attempts: int,
                           decisions: list[Any] | None = None,
                           mode: str = "interactive") -> NewBatchRecord: ...
    async def busy_pair(self, source_ids: Sequence[int],
                        model_names: Sequence[str]) -> tuple[int, str] | None: ...
    async def batch(self, batch_id: int, *, lock: bool = False) -> Any: ...
    async def batches(self, batch_ids: Sequence[int]) -> list[Any]: ...
    async def run(self, run_id: int, *, lock: bool = False) -> Any: ...
    async def run_origin(self, run_id: int) -> tuple[int, int] | None: ...
    async def lock_runs_of_batch(self, batch_id: int) -> None: ...
    async def cancel_batch(self, batch: Any) -> Any: ...
    async def abandon_provider_batches(self, batch_id: int, max_attempts: int) -> list[int]: ...
    async def reopen_run(self, run: Any, batch: Any, *, max_attempts: int) -> int: ...
    async def append_event(self, batch_id: int, kind: str, run_id: int | None,
                           data: dict[str, Any]) -> int: ...
    async def pending_runs(self, source_ids: Sequence[int]) -> dict[int, int]: ...
    async def reprocess(self, run: Any, *, group_id: str,
                        max_attempts: int) -> NewBatchRecord: ...


class AnswerRepository(Protocol):
    async def count_of_run(self, run_id: int) -> int: ...
    async def supersede_failed(self, run_id: int) -> list[int]: ...
    async def sweep(self, retention_days: int, limit: int = 5000) -> int: ...


class JobRepository(Protocol):
    async def enqueue(self, *, kind: str, priority: int, run_id: int | None = None,
                      batch_id: int | None = None, max_attempts: int = 3,
                      payload: dict[str, Any] | None = None) -> int: ...
    async def cancel_for_batch(self, batch_id: int) -> list[int]: ...
    async def resume_budget_waiters(self, remaining: Decimal | None) -> list[int]: ...


class BudgetRepository(Protocol):
    async def daily_limit(self) -> Decimal | None: ...
    async def fragment_cost_limit(self) -> Decimal | None: ...
    async def state(self, day: date | None = None) -> BudgetView: ...


class PerformanceRepository(Protocol):
    async def policy(self, defaults: Any) -> QualityPolicy: ...
    async def thresholds(self) -> dict[str, float]: ...
    async def measure(self, source_id: int, defaults: Any) -> int: ...
    async def unmeasured_sources(self, limit: int = 100) -> list[int]: ...
    async def measured_sources(self) -> list[int]: ...
    async def records(self, source_ids: Iterable[int]) -> dict[int, list[Any]]: ...
    async def pooled(self, *, source_id: int | None = None, source_type: str | None = None,
                     models: Sequence[str] | None = None) -> list[Candidate]: ...
    async def source_types_measured(self) -> list[str]: ...
    async def model_prices(self, names: Iterable[str] | None = None
                           ) -> dict[str, Decimal | None]: ...
    async def merge_thresholds(self, changes: Mapping[str, float | None],
                               updated_by: str | None) -> None: ...


class ForecastRepository(Protocol):
    """What the forecast reads (history, live workers) and keeps (each batch's forecast)."""

    async def history(self, model_names: Sequence[str] | None = None) -> History:
        """Usage of completed runs per (model, source type): tokens, calls, latency."""
        ...

    async def live_workers(self, within_seconds: int = 30) -> int:
        """Worker processes whose heartbeat was seen within the last `within_seconds`."""
        ...

    async def batch_sources(self, batch_ids: Sequence[int]) -> dict[int, list[int]]:
        """The source ids of each batch's runs."""
        ...

    async def store(self, batch_id: int, forecast: dict[str, Any]) -> None:
        """Keep what was forecast for the batch when it started."""
        ...


class CalibrationRepository(Protocol):
    async def pairs(self, source_type: str | None = None) -> list[CalibrationPair]:
        """Provisional and verified scores of completed runs now measured against a human
        reference (`model_performance.unverified_score` kept), of one source type or all."""
        ...


class StrategyRepository(Protocol):
    """Plan state kept on batches: step siblings, decisions, stalled plans."""

    async def lock_plan(self, group_id: str, source_type: str) -> None: ...
    async def step_siblings(self, group_id: str, source_type: str, step: int) -> list[Any]: ...
    async def record_decision(self, batch_ids: Sequence[int], record: dict[str, Any]) -> None: ...
    async def stalled_steps(self, limit: int) -> list[int]: ...
    async def unmeasured_samples(self, source_ids: Sequence[int]) -> list[int]: ...
    async def plan_samples(self, group_id: str, source_type: str,
                           sample_ids: Sequence[int]
                           ) -> tuple[list[Candidate], dict[str, frozenset[int]]]: ...


class GraphRepository(Protocol):
    async def require_fragments(self, wanted: dict[int, tuple[str, ...]], *,
                                lock: bool = False) -> dict[int, Any]: ...
    async def ensure_tags(self, names: Sequence[str], category: str | None) -> list[Any]: ...
    async def link_tags(self, fragment_ids: Sequence[int], tag_ids: Sequence[int]) -> int: ...
    async def unlink_tags(self, fragment_ids: Sequence[int], names: Sequence[str]) -> int: ...
    async def add_relationship(self, *, fragment_id: int, related_id: int, kind: Any,
                               confidence: float, notes: str | None,
                               created_by: str) -> Any: ...
    async def delete_relationship(self, relationship_id: int,
                                  path: tuple[str, ...]) -> list[Any]: ...
    async def delete_links(self, fragment_id: int, related_id: int,
                           kind: Any | None) -> list[Any]: ...
    async def record_decision(self, locked: dict[int, Any], decision: str, reviewer: str,
                              notes: str | None) -> list[Any]: ...


class SegmentRepository(Protocol):
    async def add(self, source_id: int, segments: Sequence[Segment]) -> None: ...
    async def replace(self, source_id: int, segments: Sequence[Segment]) -> None: ...
    async def of_source(self, source_id: int) -> list[Segment]: ...
    async def of_sources(self, source_ids: Sequence[int]) -> dict[int, list[Segment]]: ...
    async def speaker_labels(self, source_id: int) -> list[str]: ...


class ReferenceRepository(Protocol):
    """People's own reference fragments (reference_fragments), keyed by (source, file id)."""

    async def upsert(self, source_id: int, items: Sequence[ReferenceFragmentData],
                     now: datetime) -> tuple[int, int, int]:
        """Insert new ids, update changed ones: (created, updated, unchanged)."""
        ...

    async def of_source(self, source_id: int,
                        external_ids: Sequence[str] | None = None) -> list[Any]: ...


class SettingsRepository(Protocol):
    async def get(self, key: str, default: Any = None) -> Any: ...
    async def put(self, key: str, value: Any, updated_by: str | None = None) -> None: ...


class KeyRepository(Protocol):
    async def create(self, name: str, role: str) -> Any: ...
    async def revoke(self, ident: str) -> int: ...
    async def list(self) -> list[Any]: ...


class WorkerRepository(Protocol):
    """Worker heartbeats (db/workers.py)."""

    async def reach(self, within_seconds: float) -> list[WorkerReach]:
        """What each worker seen in the last `within_seconds` reported it can call."""
        ...


class UnitOfWork(Protocol):
    """One transaction with its repositories. Leaving the block commits (or rolls back on an
    error); after a commit, the events the repositories raised are published and the jobs
    handed to `dispatch` are sent, in that order."""

    @property
    def sources(self) -> SourceRepository: ...
    @property
    def catalog(self) -> CatalogRepository: ...
    @property
    def processing(self) -> ProcessingRepository: ...
    @property
    def jobs(self) -> JobRepository: ...
    @property
    def answers(self) -> AnswerRepository: ...
    @property
    def budget(self) -> BudgetRepository: ...
    @property
    def performance(self) -> PerformanceRepository: ...
    @property
    def strategies(self) -> StrategyRepository: ...
    @property
    def graph(self) -> GraphRepository: ...
    @property
    def reference(self) -> ReferenceRepository: ...
    @property
    def segments(self) -> SegmentRepository: ...
    @property
    def settings_store(self) -> SettingsRepository: ...
    @property
    def keys(self) -> KeyRepository: ...
    @property
    def calibration(self) -> CalibrationRepository: ...
    @property
    def workers(self) -> WorkerRepository: ...
    @property
    def forecasts(self) -> ForecastRepository: ...

    async def __aenter__(self) -> UnitOfWork: ...
    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None: ...
    def dispatch(self, job_ids: Iterable[int]) -> None:
        """Send a wake-up for these jobs once (and only if) this transaction commits."""
        ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, read_only: bool = False) -> UnitOfWork: ...

    async def retrying(self, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
        """Run `work` in a unit of work, again from the start on a deadlock or a
        serialisation failure."""
        ...


# --- the rest of the world ----------------------------------------------------------------------


class JobDispatcher(Protocol):
    """Wakes workers for committed jobs, by actor name; callers never import actors."""

    async def send(self, job_ids: Sequence[int], actor: str = "process_job",
                   delay_ms: int = 0) -> None:
        """Wake workers for these jobs; `delay_ms` holds the wake-up back that long."""
        ...


class PriceCatalog(Protocol):
    """LiteLLM's public price and limit data for a model string."""

    def price_of(self, litellm_model: str) -> tuple[Decimal, Decimal] | None:
        """(input, output) USD per million tokens, or None when unknown."""
        ...

    def limits_of(self, litellm_model: str) -> tuple[int | None, int | None]:
        """(context window, max output tokens), each None when unknown."""
        ...


class Forecaster(Protocol):
    """Counts what a request would send, with each model's tokenizer, and prices it
    (workers/forecast.py over LiteLLM, imported on the first estimate)."""

    def prompt_tokens(self, model: ModelSpec, max_tokens: int, *, content: str,
                      language: str, source_type: str, segments: Sequence[Segment] = (),
                      subject: Subject | None = None) -> list[int]:
        """The prompt tokens of each call the pipeline makes for one source (one a chunk),
        chunked and prompted exactly as the pipeline does."""
        ...

    def pricing(self, model: ModelSpec, *, batch: bool) -> Pricing:
        """The model's rates (batch rates too in BATCH mode) and the prompt-prefix tokens its
        provider serves from its cache (0 where it does not cache)."""
        ...


class FileConverter(Protocol):
    """Reads a file or a text in one of the supported formats into a normalised text and its
    segment map (workers/converters/ over maintained libraries)."""

    def detect(self, data: bytes, file_name: str | None = None) -> ContentFormat | None:
        """The format the bytes are in (by their signature, then the name), None if unknown."""
        ...

    def convert(self, data: bytes, fmt: ContentFormat, *,
                file_name: str | None = None) -> ConvertedDocument:
        """The document in `data`, read as `fmt`; raises domain.documents.ConversionError
        (a message safe for a client) for a corrupt, mismatched, empty or oversize file."""
        ...


class Clock(Protocol):
    def now(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class Ports:
    """What a use case is given: the unit of work factory, settings, clock and prices."""

    uow: UnitOfWorkFactory
    settings: Settings
    clock: Clock
    prices: PriceCatalog
    forecaster: Forecaster | None = None
    converter: FileConverter | None = None
