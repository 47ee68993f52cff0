"""Measuring every run of one source against the reference in force for it
(docs/ARCHITECTURE.md, "Quality").

The reference of a run is chosen from the *other* runs of the source, in this order:
human-verified fragments, the reference model's latest run, the consensus of the other models.
The reference model is the one an operator designated when it ran on the source, else the
single most expensive model that did (by catalog price); a shared top price designates none,
because "the most expensive" would then be an arbitrary pick.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from domain.model import Span
from domain.optimizer import most_expensive
from domain.quality import (
    DEFAULT_IOU_THRESHOLD,
    DEFAULT_WEIGHTS,
    QualityWeights,
    Reference,
    RunQuality,
    ScoredFragment,
    choose_reference,
    evaluate_run,
)

DEFAULT_MIN_VERIFIED = 5


@dataclass(frozen=True, slots=True)
class RunEvidence:
    """A completed run as measurement needs it; `price` ranks models to find the reference."""

    run_id: int
    model: str
    price: Decimal | None
    fragments: tuple[ScoredFragment, ...]
    chunks: tuple[Span, ...]
    cost_usd: Decimal
    latency_ms: int

    @property
    def spans(self) -> tuple[Span, ...]:
        """Spans of the run's grounded fragments."""
        return tuple(f.span for f in self.fragments if f.span is not None)


@dataclass(frozen=True, slots=True)
class SourceEvidence:
    """One source's text facts, human verdicts and completed runs (oldest first)."""

    source_id: int
    text_length: int
    sentences: tuple[Span, ...]
    verified: tuple[Span, ...] = ()
    rejected: tuple[Span, ...] = ()
    runs: tuple[RunEvidence, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class PolicyDefaults:
    """Environment defaults of the quality policy; values in the `settings` table override
    them."""

    min_verified: int = 5
    reference_model: str | None = None


def policy_defaults(settings: Any) -> PolicyDefaults:
    """The environment's quality defaults (`domain.ports.Settings`); values in the settings
    table override them."""
    return PolicyDefaults(min_verified=settings.quality_min_verified_fragments,
                          reference_model=settings.quality_reference_model)


@dataclass(frozen=True, slots=True)
class QualityPolicy:
    """The operator's choices for measuring: weights, verified minimum, designated reference."""

    weights: QualityWeights = DEFAULT_WEIGHTS
    min_verified: int = DEFAULT_MIN_VERIFIED
    reference_model: str | None = None
    iou_threshold: float = DEFAULT_IOU_THRESHOLD
    resamples: int = 1000

    def __post_init__(self) -> None:
        if self.min_verified < 1:
            raise ValueError("the verified minimum must be at least 1")
        if self.resamples < 1:
            raise ValueError("bootstrap needs at least one resample")


@dataclass(frozen=True, slots=True)
class RunMeasurement:
    """A run's measured quality with its money: what a model_performance row stores."""

    run_id: int
    model: str
    quality: RunQuality
    cost_usd: Decimal
    cost_per_fragment: Decimal | None
    cost_per_1k_chars: Decimal | None
    latency_ms: int


def latest_by_model(runs: Sequence[RunEvidence]) -> dict[str, RunEvidence]:
    """Each model's most recent run (runs come oldest first, so later ones win)."""
    latest: dict[str, RunEvidence] = {}
    for run in runs:
        latest[run.model] = run
    return latest


def reference_model_of(runs: Sequence[RunEvidence], designated: str | None) -> str | None:
    """The designated model when it ran on the source, else the single most expensive one."""
    latest = latest_by_model(runs)
    if designated is not None and designated in latest:
        return designated
    return most_expensive({model: run.price for model, run in latest.items()})


def reference_for(
    evidence: SourceEvidence, policy: QualityPolicy, excluded_model: str | None = None
) -> Reference:
    """The reference a run of `excluded_model` is judged against (None: a new model's view)."""
    latest = latest_by_model(evidence.runs)
    others = {m: r.spans for m, r in latest.items() if m != excluded_model}
    model = reference_model_of(evidence.runs, policy.reference_model)
    ref_run = (model, latest[model].spans) if model and model != excluded_model else None
    return choose_reference(
        evidence.verified, evidence.rejected, policy.min_verified, ref_run, others,
        policy.iou_threshold,
    )


def measure_run(
    run: RunEvidence, evidence: SourceEvidence, policy: QualityPolicy
) -> RunMeasurement:
    """Score one run against the reference chosen without it; cost counts grounded yield only."""
    reference = reference_for(evidence, policy, excluded_model=run.model)
    chunks = run.chunks or (Span(0, evidence.text_length),)
    quality = evaluate_run(
        run.fragments,
        reference,
        evidence.sentences,
        policy.weights,
        chunks=chunks,
        iou_threshold=policy.iou_threshold,
        resamples=policy.resamples,
    )
    grounded = quality.grounded_fragments
    return RunMeasurement(
        run_id=run.run_id,
        model=run.model,
        quality=quality,
        cost_usd=run.cost_usd,
        cost_per_fragment=run.cost_usd / grounded if grounded else None,
        cost_per_1k_chars=(
            run.cost_usd * 1000 / evidence.text_length if evidence.text_length else None
        ),
        latency_ms=run.latency_ms,
    )


def measure_source(evidence: SourceEvidence, policy: QualityPolicy) -> list[RunMeasurement]:
    """Every completed run of the source, each against its own reference."""
    return [measure_run(run, evidence, policy) for run in evidence.runs]


def price_key(input_per_million: Decimal | None, output_per_million: Decimal | None
              ) -> Decimal | None:
    """One number to rank models by price: input plus output per million tokens.

    Extraction answers quote the source, so output is of the order of the input; the plain sum
    ranks models the way their bills do without guessing a ratio.
    """
    if input_per_million is None or output_per_million is None:
        return None
    return input_per_million + output_per_million


def by_price(prices: Mapping[str, Decimal | None]) -> list[str]:
    """Model names cheapest first; unpriced models last (their cost is unknown), then by name."""
    return sorted(prices, key=lambda m: (prices[m] is None, prices[m] or Decimal(0), m))
