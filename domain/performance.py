"""A run's stored measurement (a `model_performance` row) as the reports read it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from domain.optimizer import Candidate
from domain.quality import PairedDelta


@dataclass(frozen=True, slots=True)
class PerformanceRecord:
    """One model_performance row with what reports need beside it."""

    run_id: int
    batch_id: int
    source_id: int
    source_type: str
    source_chars: int
    model: str
    reference_kind: str
    reference_model: str | None
    quality_score: float
    quality_low: float
    quality_high: float
    provisional: bool
    grounded_rate: float
    miu_rate: float
    precision: float | None
    recall: float | None
    f1: float | None
    coverage: float
    mean_relevance: float
    fragment_count: int
    grounded_fragment_count: int
    cost_usd: Decimal
    cost_per_fragment: Decimal | None
    cost_per_1k_chars: Decimal | None
    latency_ms: int
    metrics: dict[str, Any]
    finished_at: datetime | None = None
    # How the model's answers read: repairs paid (in cost_usd too), answers read strictly,
    # chunks that stayed unreadable.
    repair_calls: int = 0
    repair_cost_usd: Decimal = Decimal(0)
    answers_read: int = 0
    answers_strict: int = 0
    chunks_failed: int = 0
    # The source's one reference: whether this run is it, which run it is (for a model's
    # run), the paired difference against the reference model's run, span metrics, and the
    # last score measured before a human reference existed (calibration).
    is_reference: bool = False
    reference_run_id: int | None = None
    vs_reference: PairedDelta | None = None
    span_metrics: dict[str, Any] = field(default_factory=dict)
    unverified_score: float | None = None
    unverified_kind: str | None = None
    # The run's cost levers: what it would have cost interactive and uncached, and what
    # prompt caching and batch mode saved against that (list − savings = the run's cost).
    list_cost_usd: Decimal | None = None
    cache_saved_usd: Decimal = Decimal(0)
    batch_saved_usd: Decimal = Decimal(0)

    @property
    def format_adherence(self) -> float | None:
        """Share of the run's answers read strictly as asked; None with no answer."""
        return round(self.answers_strict / self.answers_read, 4) if self.answers_read else None

    def candidate(self) -> Candidate:
        """This run as one sample of its model."""
        return Candidate(self.model, self.quality_score, self.quality_low, self.quality_high,
                         self.provisional, self.cost_usd, self.grounded_fragment_count,
                         self.source_chars, 1, paired=self.vs_reference,
                         cache_saved_usd=self.cache_saved_usd,
                         batch_saved_usd=self.batch_saved_usd)


def latest_of_each_model(records: Iterable[PerformanceRecord]) -> list[PerformanceRecord]:
    """Each model's most recently finished run among `records` (of one source)."""
    latest: dict[str, PerformanceRecord] = {}
    for record in records:
        current = latest.get(record.model)
        if current is None or _finish_key(record) > _finish_key(current):
            latest[record.model] = record
    return [latest[model] for model in sorted(latest)]


def _finish_key(record: PerformanceRecord) -> tuple[float, int]:
    finished = record.finished_at.timestamp() if record.finished_at else float("-inf")
    return (finished, record.run_id)
