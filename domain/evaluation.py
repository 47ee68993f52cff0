"""Measuring every run of one source against the one reference in force for it
(docs/QUALITY.md, docs/ARCHITECTURE.md "Quality").

One source, one reference, one rule. The reference is chosen from the source's evidence, in
this order: human-verified fragments (verified run fragments and imported reference fragments)
when there are enough; else the reference model's latest run, once at least two models ran on
the source; else the consensus of the models' latest runs; else none. Every run, the reference
run included, is then scored against it the same way, so identical fragments score identically
whatever model made them, and a run that is not part of the reference moves no other run's
score. (The one change that creates or removes a reference is the second model arriving on a
source or leaving it: a lone run is never its own reference.)

The reference model is the one an operator designated when it ran on the source, else the single
most expensive model that did (by catalog price); models sharing the top price designate none,
and the consensus is the reference.

Scores are resampled over the source's evaluation chunks: the text cut at sentence starts into
pieces of about `EVALUATION_CHUNK_CHARS`, the same for every run whatever its own chunking, so
two runs can be compared chunk by chunk (the paired difference against the reference model's
run, `vs_reference`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from domain.model import Span
from domain.optimizer import most_expensive
from domain.quality import (
    DEFAULT_IOU_THRESHOLD,
    DEFAULT_WEIGHTS,
    MatchResult,
    PairedDelta,
    QualityWeights,
    Reference,
    RunQuality,
    ScoredFragment,
    choose_reference,
    evaluate_run,
    paired_delta,
)
from domain.span_metrics import span_match_rates, word_level, word_spans

DEFAULT_MIN_VERIFIED = 5
EVALUATION_CHUNK_CHARS = 1000


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
    text: str = ""  # the source's text, for word-level span metrics (none without it)


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
class SourceReference:
    """The one reference of a source, and the run it is when it is a run."""

    reference: Reference
    run_id: int | None = None  # the reference model's run, for kind "reference_model"
    baseline: RunEvidence | None = None  # the reference model's latest run, whatever the kind


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
    is_reference: bool = False
    reference_run_id: int | None = None
    vs_reference: PairedDelta | None = None
    span_metrics: dict[str, Any] | None = None  # see `span_metrics`; None without a reference


def latest_by_model(runs: Sequence[RunEvidence]) -> dict[str, RunEvidence]:
    """Each model's most recent run (runs come oldest first, so later ones win)."""
    latest: dict[str, RunEvidence] = {}
    for run in runs:
        latest[run.model] = run
    return latest


def reference_model_of(runs: Sequence[RunEvidence], designated: str | None) -> str | None:
    """The designated model when it ran on the source, else the single most expensive one.

    A shared top price designates none: picking one of them would depend on which happened to
    run first, and identical work must get identical numbers. The reference then falls to the
    consensus, until an operator designates a reference model.
    """
    latest = latest_by_model(runs)
    if designated is not None and designated in latest:
        return designated
    return most_expensive({model: run.price for model, run in latest.items()})


def source_reference(evidence: SourceEvidence, policy: QualityPolicy) -> SourceReference:
    """The one reference every run of the source is measured against."""
    latest = latest_by_model(evidence.runs)
    model = reference_model_of(evidence.runs, policy.reference_model)
    # A run is a reference for other models, never for itself alone: with one model on the
    # source there is nothing to compare, and a self-judged score would pass any bar.
    baseline = latest[model] if model is not None and len(latest) >= 2 else None
    reference = choose_reference(
        evidence.verified, evidence.rejected, policy.min_verified,
        (baseline.model, baseline.spans) if baseline is not None else None,
        {m: r.spans for m, r in latest.items()}, policy.iou_threshold)
    run_id = baseline.run_id if baseline and reference.kind == "reference_model" else None
    return SourceReference(reference, run_id, baseline)


def evaluation_chunks(text_length: int, sentences: Sequence[Span],
                      size: int = EVALUATION_CHUNK_CHARS) -> tuple[Span, ...]:
    """The source cut at sentence starts into consecutive pieces of at least `size` characters
    (the last piece joins the one before when shorter than half of it); together they cover
    [0, text_length) exactly. A pure function of the text: the same for every run."""
    if size < 1:
        raise ValueError("an evaluation chunk has at least one character")
    cuts = [0]
    for sentence in sorted(sentences, key=lambda s: s.start):
        if sentence.start - cuts[-1] >= size and sentence.start < text_length:
            cuts.append(sentence.start)
    if len(cuts) > 1 and text_length - cuts[-1] < size / 2:
        cuts.pop()
    ends = [*cuts[1:], text_length]
    return tuple(Span(a, b) for a, b in zip(cuts, ends, strict=True))


def _placed(run: RunEvidence, chunks: Sequence[Span]) -> tuple[ScoredFragment, ...]:
    """The run's fragments with `chunk_index` pointing at the evaluation chunk they belong to:
    the one holding the span's start. An ungrounded fragment has no span; models answer in
    text order, so it goes where the grounded fragment before it in the same answer (run
    chunk) starts, or to its run chunk's start when it comes first."""
    starts = [c.start for c in chunks]

    def owner(position: int) -> int:
        return max(0, bisect_right(starts, position) - 1)

    placed = []
    last: dict[int, int] = {}  # run chunk -> start of its latest grounded fragment
    for f in run.fragments:
        if f.span is not None:
            position = last[f.chunk_index] = f.span.start
        elif f.chunk_index in last:
            position = last[f.chunk_index]
        elif f.chunk_index < len(run.chunks):
            position = run.chunks[f.chunk_index].start
        else:
            position = 0
        placed.append(replace(f, chunk_index=owner(position)))
    return tuple(placed)


def _evaluate(run: RunEvidence, evidence: SourceEvidence, reference: Reference,
              chunks: Sequence[Span], policy: QualityPolicy) -> RunQuality:
    return evaluate_run(
        _placed(run, chunks), reference, evidence.sentences, policy.weights, chunks=chunks,
        iou_threshold=policy.iou_threshold, resamples=policy.resamples)


def measure_source(evidence: SourceEvidence, policy: QualityPolicy) -> list[RunMeasurement]:
    """Every completed run of the source against the source's one reference, each with its
    paired difference against the reference model's latest run."""
    chosen = source_reference(evidence, policy)
    reference = chosen.reference
    chunks = evaluation_chunks(evidence.text_length, evidence.sentences)
    qualities = {run.run_id: _evaluate(run, evidence, reference, chunks, policy)
                 for run in evidence.runs}
    baseline = chosen.baseline
    words = word_spans(evidence.text) if evidence.text and reference.exists else ()
    measurements = []
    for run in evidence.runs:
        quality = qualities[run.run_id]
        if chosen.run_id == run.run_id:
            # Scored by the same rule, but its agreement is with itself: no independent
            # reference stands behind it, which is what "provisional" tells a reader.
            quality = replace(quality, provisional=True)
        versus = None
        if baseline is not None:
            versus = paired_delta(
                quality.tallies, qualities[baseline.run_id].tallies, reference.exists,
                policy.weights, baseline_model=baseline.model,
                baseline_run_id=baseline.run_id, resamples=policy.resamples)
        grounded = quality.grounded_fragments
        measurements.append(RunMeasurement(
            run_id=run.run_id,
            model=run.model,
            quality=quality,
            cost_usd=run.cost_usd,
            cost_per_fragment=run.cost_usd / grounded if grounded else None,
            cost_per_1k_chars=(
                run.cost_usd * 1000 / evidence.text_length if evidence.text_length else None
            ),
            latency_ms=run.latency_ms,
            is_reference=chosen.run_id == run.run_id,
            reference_run_id=chosen.run_id,
            vs_reference=versus,
            span_metrics=span_metrics(run, reference, words) if reference.exists else None,
        ))
    return measurements


def span_metrics(run: RunEvidence, reference: Reference,
                 words: Sequence[Span]) -> dict[str, Any]:
    """The span metrics users know, beside the score's IoU matching (docs/QUALITY.md):
    word-level precision, recall and F1 (a word counts when any of its characters is covered;
    only with the source's words), and one-to-one match rates at IoU 0.3, 0.5 and 0.7, where
    an ungrounded fragment is a false positive as in the score's agreement term."""
    spans = run.spans
    ungrounded = sum(1 for f in run.fragments if f.span is None)
    rates = []
    for rate in span_match_rates(spans, reference.spans, rejected=reference.rejected):
        matched = MatchResult(rate.tp, rate.fp + ungrounded, rate.fn)
        rates.append({"iou": rate.iou, "tp": matched.tp, "fp": matched.fp, "fn": matched.fn,
                      "precision": matched.precision, "recall": matched.recall,
                      "f1": matched.f1})
    out: dict[str, Any] = {"spanMatch": rates}
    if words:
        w = word_level(spans, reference.spans, words)
        out["words"] = {"precision": w.precision, "recall": w.recall, "f1": w.f1,
                        "predicted": w.predicted_words, "reference": w.reference_words,
                        "overlap": w.overlap_words}
    return out


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
