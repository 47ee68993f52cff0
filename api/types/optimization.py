"""Measured quality and optimization as GraphQL types: comparison, sweet spot, savings."""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from api.errors import public
from api.ids import parse_id, to_global
from api.types.enums import SourceType
from api.types.forecast import ForecastCheck
from api.types.nodes import node_class
from db.performance import PerformanceRecord, PerformanceRepository
from db.processing import ProcessingRepository
from db.tables import SourceRow
from domain import model as m
from domain.errors import DomainError
from domain.optimizer import Candidate, threshold_for
from domain.quality import PairedDelta, QualityWeights
from domain.services import quality as quality_uc
from domain.services import reports
from domain.services.reports import (
    Comparison,
    ReferenceInfo,
    SavingsLine,
    SweetSpotReport,
    savings_table,
)

if TYPE_CHECKING:
    from api.types.source import Source


@strawberry.enum(description="What a run's fragments were compared with.")
class ReferenceKind(enum.StrEnum):
    VERIFIED = "verified"
    REFERENCE_MODEL = "reference_model"
    CONSENSUS = "consensus"
    NONE = "none"


@strawberry.type(description="The one reference every run of a source is measured against, "
                             "by the same rule: human-verified fragments (verified run "
                             "fragments and imported reference fragments), else the reference "
                             "model's latest run, else the consensus of every model's latest "
                             "run, else none (then scores are provisional).")
class QualityReference:
    kind: ReferenceKind
    model: str | None = strawberry.field(description="The reference model, for that kind.")
    run_id: strawberry.ID | None = strawberry.field(
        description="The reference run, for kind REFERENCE_MODEL: its entry has isReference.")

    @classmethod
    def of(cls, info: ReferenceInfo) -> QualityReference:
        return cls(kind=ReferenceKind(info.kind), model=info.model,
                   run_id=(strawberry.ID(to_global("Run", info.run_id))
                           if info.run_id is not None else None))


@strawberry.enum(description="What a paired difference supports.")
class PairedVerdict(enum.StrEnum):
    BETTER = "better"
    WORSE = "worse"
    NOT_WORSE = "not_worse"
    INCONCLUSIVE = "inconclusive"


@strawberry.type(description="Quality minus the reference model's run, measured chunk by "
                             "chunk: a paired bootstrap that resamples the same evaluation "
                             "chunks of the source for both runs (1,000 resamples, 90% "
                             "percentile interval); pooled over sources, the mean of the "
                             "per-source differences with a normal interval.")
class PairedDifference:
    reference_model: str = strawberry.field(description="The run compared with.")
    reference_run_id: strawberry.ID | None
    reference_quality: float = strawberry.field(
        description="The reference run's score (mean over sources when pooled).")
    quality_delta: float = strawberry.field(
        description="This score minus the reference's, in points of 0-10 (both rounded).")
    low: float = strawberry.field(description="90% interval of the delta, points.")
    high: float
    quality_delta_pct: float | None = strawberry.field(
        description="The delta as a percent of the reference's score.")
    low_pct: float | None
    high_pct: float | None
    significant: bool = strawberry.field(description="The interval excludes 0.")
    verdict: PairedVerdict = strawberry.field(
        description="BETTER / WORSE when significant; NOT_WORSE when the lower bound is above "
                    "-margin points; else INCONCLUSIVE.")
    margin: float = strawberry.field(
        description="Points of 0-10 a run may lose and still be 'not worse'.")
    chunks: int = strawberry.field(description="Evaluation chunks paired (summed over sources).")
    sources: int
    chunks_needed: int | None = strawberry.field(
        description="For INCONCLUSIVE: how many more chunks, at the observed variance, the "
                    "lower bound needs to clear -margin (chunks x (1.645 se / (delta + "
                    "margin))^2 in all); null when the point estimate is below -margin "
                    "already; 0 when the evidence decides.")
    summary: str = strawberry.field(
        description="The claim in words, e.g. 'not worse than X by more than 0.2 points: "
                    "\u22121.2% (90% CI \u22122.0..+0.1%) over 24 chunks'.")

    @classmethod
    def of(cls, d: PairedDelta) -> PairedDifference:
        return cls(reference_model=d.baseline_model,
                   reference_run_id=(strawberry.ID(to_global("Run", d.baseline_run_id))
                                     if d.baseline_run_id is not None else None),
                   reference_quality=d.baseline_score, quality_delta=d.delta, low=d.low,
                   high=d.high, quality_delta_pct=d.pct, low_pct=d.pct_low,
                   high_pct=d.pct_high, significant=d.significant,
                   verdict=PairedVerdict(d.verdict), margin=d.margin, chunks=d.chunks,
                   sources=d.sources, chunks_needed=d.chunks_needed, summary=d.claim())


@strawberry.type(description="A 90% bootstrap interval of a quality score (0-10).")
class QualityInterval:
    low: float
    high: float


@strawberry.type(description="One-to-one span matching at one IoU threshold: each fragment "
                             "and reference span is matched at most once, best IoU first "
                             "(IoU = shared characters / characters in either span); "
                             "ungrounded fragments are false positives.")
class SpanMatchRate:
    iou: float = strawberry.field(description="The threshold: a pair matches at IoU >= it.")
    tp: int
    fp: int
    fn: int
    precision: float = strawberry.field(description="tp / (tp + fp).")
    recall: float = strawberry.field(description="tp / (tp + fn).")
    f1: float = strawberry.field(description="2 precision recall / (precision + recall).")


@strawberry.type(description="Span metrics of a run against the source's reference, beside "
                             "the score's IoU >= 0.5 matching (docs/QUALITY.md).")
class SpanMetrics:
    word_precision: float | None = strawberry.field(
        description="Words covered by both the run and the reference / words covered by the "
                    "run; a word counts as covered when any of its characters is.")
    word_recall: float | None = strawberry.field(
        description="Words covered by both / words covered by the reference.")
    word_f1: float | None = strawberry.field(
        description="2 wordPrecision wordRecall / (wordPrecision + wordRecall).")
    predicted_words: int | None
    reference_words: int | None
    overlap_words: int | None
    span_match: list[SpanMatchRate] = strawberry.field(
        description="Match rates at IoU 0.3, 0.5 and 0.7.")

    @classmethod
    def of(cls, data: dict[str, Any]) -> SpanMetrics:
        words = data.get("words") or {}
        return cls(word_precision=words.get("precision"), word_recall=words.get("recall"),
                   word_f1=words.get("f1"), predicted_words=words.get("predicted"),
                   reference_words=words.get("reference"), overlap_words=words.get("overlap"),
                   span_match=[SpanMatchRate(**rate) for rate in data.get("spanMatch", [])])


@strawberry.type(description="One measured run of a source: quality with its components, and "
                             "cost counted on grounded fragments only.")
class ComparisonEntry:
    model: str
    run_id: strawberry.ID
    batch_id: strawberry.ID
    quality_score: float = strawberry.field(description="0-10, weighted mean of the components.")
    quality_low: float = strawberry.field(description="90% bootstrap interval over chunks.")
    quality_high: float
    provisional: bool = strawberry.field(
        description="Measured without a reference: the agreement term is missing.")
    reference: QualityReference = strawberry.field(
        description="What this run was compared with: the source's one reference.")
    is_reference: bool = strawberry.field(
        description="This run is the source's reference (the reference model's latest run): "
                    "scored by the same rule as the others, so it agrees with itself, and "
                    "flagged provisional because no independent reference stands behind it.")
    vs_reference: PairedDifference | None = strawberry.field(
        description="Paired difference against the reference model's latest run on this "
                    "source; null when no model is the reference model (no price known).")
    span_metrics: SpanMetrics | None = strawberry.field(
        description="Word-level precision/recall/F1 and span-match rates at IoU 0.3/0.5/0.7 "
                    "against the reference; null without a reference.")
    grounded_rate: float
    miu_rate: float = strawberry.field(description="Share passing both MIU checks.")
    precision: float | None = strawberry.field(description="Agreement by span IoU >= 0.5.")
    recall: float | None
    f1: float | None
    coverage: float = strawberry.field(
        description="Share of the source's sentences touched by a grounded fragment.")
    coverage_ratio: float | None = strawberry.field(
        description="Coverage relative to the reference's (the score's coverage term).")
    mean_relevance: float = strawberry.field(description="Self-reported, 1-10 (weight 0.10).")
    fragment_count: int
    grounded_fragment_count: int
    cost_usd: Decimal
    cost_per_fragment: Decimal | None = strawberry.field(
        description="Cost per grounded fragment; null when nothing was grounded.")
    cost_per_1k_chars: Decimal | None = strawberry.field(
        name="costPer1kChars", description="Cost per 1,000 source characters.")
    latency_ms: int = strawberry.field(description="Sum of provider call latencies.")
    repair_calls: int = strawberry.field(
        description="Paid calls asking the model again for an answer that could not be read; "
                    "their cost is in costUsd, so they raise costPerFragment.")
    repair_cost_usd: Decimal = strawberry.field(description="What the repair calls cost.")
    format_adherence: float | None = strawberry.field(
        description="Share of the model's answers read strictly as asked, 0..1; beside the "
                    "quality, never part of it.")
    chunks_failed: int = strawberry.field(
        description="Chunks whose answers stayed unreadable: the run completed with errors, "
                    "and its coverage counts them as found nothing.")
    list_cost_usd: Decimal = strawberry.field(
        description="What the run would have cost interactive and uncached: costUsd = "
                    "listCostUsd − cacheSavedUsd − batchSavedUsd.")
    cache_saved_usd: Decimal = strawberry.field(description="What prompt caching saved.")
    batch_saved_usd: Decimal = strawberry.field(description="What batch mode saved.")

    @strawberry.field(description="What the run's batch forecast for this source when it "
                                  "started (estimateProcessing) against the actual cost and "
                                  "time; null for batches started without a forecast.")
    async def forecast(self, info: strawberry.Info) -> ForecastCheck | None:
        from db.forecast import forecast_checks

        run_id = parse_id(self.run_id, "Run", ("runId",))
        check = await info.context.loaders.get("forecast_checks", forecast_checks,
                                               one_statement=True).load(run_id)
        return None if check is None else ForecastCheck.of(check)

    @classmethod
    def of(cls, r: PerformanceRecord) -> ComparisonEntry:
        ratio = r.metrics.get("quality", {}).get("coverageRatio")
        return cls(model=r.model, run_id=strawberry.ID(to_global("Run", r.run_id)),
                   batch_id=strawberry.ID(to_global("Batch", r.batch_id)),
                   quality_score=r.quality_score, quality_low=r.quality_low,
                   quality_high=r.quality_high, provisional=r.provisional,
                   reference=QualityReference.of(ReferenceInfo(
                       r.reference_kind, r.reference_model, r.reference_run_id)),
                   is_reference=r.is_reference,
                   vs_reference=PairedDifference.of(r.vs_reference) if r.vs_reference else None,
                   span_metrics=SpanMetrics.of(r.span_metrics) if r.span_metrics else None,
                   grounded_rate=r.grounded_rate, miu_rate=r.miu_rate, precision=r.precision,
                   recall=r.recall, f1=r.f1, coverage=r.coverage,
                   coverage_ratio=None if ratio is None else float(ratio),
                   mean_relevance=r.mean_relevance, fragment_count=r.fragment_count,
                   grounded_fragment_count=r.grounded_fragment_count, cost_usd=r.cost_usd,
                   cost_per_fragment=r.cost_per_fragment, cost_per_1k_chars=r.cost_per_1k_chars,
                   latency_ms=r.latency_ms, repair_calls=r.repair_calls,
                   repair_cost_usd=r.repair_cost_usd, format_adherence=r.format_adherence,
                   chunks_failed=r.chunks_failed,
                   list_cost_usd=(r.cost_usd + r.cache_saved_usd + r.batch_saved_usd
                                  if r.list_cost_usd is None else r.list_cost_usd),
                   cache_saved_usd=r.cache_saved_usd, batch_saved_usd=r.batch_saved_usd)


@strawberry.type(description="All measured runs of one source side by side, best first.")
class ModelComparison:
    source_id: strawberry.ID
    source_type: SourceType
    reference: QualityReference = strawberry.field(
        description="The reference the runs were measured against.")
    entries: list[ComparisonEntry]
    pending_runs: int = strawberry.field(
        description="Runs of the source still processing: the comparison is partial until 0.")

    @classmethod
    def of(cls, c: Comparison) -> ModelComparison:
        return cls(source_id=strawberry.ID(to_global("Source", c.source_id)),
                   source_type=m.SourceType(c.source_type),
                   reference=QualityReference.of(c.reference),
                   entries=[ComparisonEntry.of(r) for r in c.entries],
                   pending_runs=c.pending_runs)


@strawberry.type(description="A model's measured quality and cost, pooled over its samples.")
class ModelCandidate:
    model: str
    quality: float
    quality_low: float
    quality_high: float
    provisional: bool
    cost_usd: Decimal
    cost_per_fragment: Decimal | None = strawberry.field(
        description="Per grounded fragment; null when nothing was grounded.")
    cost_per_1k_chars: Decimal | None = strawberry.field(name="costPer1kChars")
    grounded_fragment_count: int
    samples: int = strawberry.field(description="Sources measured.")
    vs_reference: PairedDifference | None = strawberry.field(
        description="Paired difference against the reference model, pooled over the sources "
                    "where both ran.")

    @classmethod
    def of(cls, c: Candidate) -> ModelCandidate:
        return cls(model=c.model, quality=c.quality, quality_low=c.quality_low,
                   quality_high=c.quality_high, provisional=c.provisional, cost_usd=c.cost_usd,
                   cost_per_fragment=c.cost_per_fragment, cost_per_1k_chars=c.cost_per_1k_chars,
                   grounded_fragment_count=c.grounded_fragments, samples=c.samples,
                   vs_reference=PairedDifference.of(c.paired) if c.paired else None)


@strawberry.type(description="The cheapest model meeting the quality bar within the cost limit; "
                             "when none does, qualified is false, model is the best available "
                             "and reason says why.")
class SweetSpot:
    model: str | None
    qualified: bool
    reason: str
    pareto_frontier: list[ModelCandidate] = strawberry.field(
        description="Models no other beats on both cost per fragment and quality, cheapest "
                    "first.")
    savings_vs_reference: Decimal | None = strawberry.field(
        description="Percent saved per grounded fragment against the reference model.")
    threshold: float = strawberry.field(description="The quality bar applied.")
    budget_per_fragment: Decimal | None = strawberry.field(
        description="The cost limit per grounded fragment applied; null = none.")
    reference_model: str | None
    source_type: SourceType | None
    candidates: list[ModelCandidate] = strawberry.field(description="Every model considered.")

    @classmethod
    def of(cls, s: SweetSpotReport) -> SweetSpot:
        r = s.result
        return cls(model=r.model, qualified=r.qualified, reason=r.reason,
                   pareto_frontier=[ModelCandidate.of(c) for c in r.frontier],
                   savings_vs_reference=r.savings_vs_reference, threshold=s.threshold,
                   budget_per_fragment=s.budget_per_fragment, reference_model=s.reference_model,
                   source_type=m.SourceType(s.source_type) if s.source_type else None,
                   candidates=[ModelCandidate.of(c) for c in s.candidates])


@strawberry.type(description="Reference model versus optimized model for one source type.")
class SavingsRow:
    source_type: SourceType
    original_model: str | None = strawberry.field(description="The reference model.")
    optimized_model: str | None = strawberry.field(description="Null when none qualifies.")
    qualified: bool
    reason: str
    threshold: float
    original_quality: float | None
    optimized_quality: float | None
    quality_change_pct: float | None = strawberry.field(
        description="Paired change in percent of the reference's quality when both models ran "
                    "on the same sources, else the change of the pooled means.")
    quality_change: str = strawberry.field(
        description="The change as reports state it: '\u22123.2% (90% CI \u22125.1..\u22121.0%)' "
                    "when paired, else marked '(not paired)'.")
    vs_reference: PairedDifference | None = strawberry.field(
        description="The paired difference behind qualityChangePct, with its verdict.")
    cost_saving_pct: Decimal | None = strawberry.field(
        description="Percent saved per grounded fragment.")
    spend_saving_pct: Decimal | None = strawberry.field(
        description="Percent saved per 1,000 source characters.")
    samples: int = strawberry.field(description="Sources behind the weaker side.")
    interval: QualityInterval | None = strawberry.field(
        description="90% interval of the optimized model's quality.")
    reference_interval: QualityInterval | None
    cache_saved_usd: Decimal | None = strawberry.field(
        default=None, description="What prompt caching saved over the optimized model's "
                                  "measured runs (USD), beside the saving of choosing it.")
    batch_saved_usd: Decimal | None = strawberry.field(
        default=None, description="What batch mode saved over the optimized model's "
                                  "measured runs (USD).")

    @classmethod
    def of(cls, line: SavingsLine) -> SavingsRow:
        ref, opt, row = line.reference, line.optimized, line.row
        return cls(
            source_type=m.SourceType(line.source_type), original_model=ref.model if ref else None,
            optimized_model=opt.model if opt and row else None, qualified=line.qualified,
            reason=line.reason, threshold=line.threshold,
            original_quality=ref.quality if ref else None,
            optimized_quality=opt.quality if opt and row else None,
            quality_change_pct=row.quality_change_pct if row else None,
            quality_change=row.quality_change_text if row else "n/a",
            vs_reference=PairedDifference.of(row.paired) if row and row.paired else None,
            cost_saving_pct=row.cost_saving_pct if row else None,
            spend_saving_pct=row.spend_saving_pct if row else None,
            samples=row.samples if row else (ref.samples if ref else 0),
            interval=QualityInterval(low=row.interval[0], high=row.interval[1]) if row else None,
            reference_interval=(QualityInterval(low=ref.quality_low, high=ref.quality_high)
                                if ref else None),
            cache_saved_usd=row.cache_saved_usd if row else None,
            batch_saved_usd=row.batch_saved_usd if row else None)


@strawberry.type(description="Savings per source type from measured runs.")
class SavingsReport:
    rows: list[SavingsRow]
    table: str = strawberry.field(
        description="The rows as the original MMOS README's Markdown table.")

    @classmethod
    def of(cls, lines: list[SavingsLine]) -> SavingsReport:
        return cls(rows=[SavingsRow.of(line) for line in lines], table=savings_table(lines))


def _report_source(root: Any, info: strawberry.Info) -> Annotated[
        Source, strawberry.lazy("api.types.source")]:
    # The Source class comes from the schema (see node_class): this module sits below source.
    return node_class(info, "Source").from_row(root.source_row)


@strawberry.type(description="One source: comparison, sweet spot and saving, with a "
                             "recommendation.")
class OptimizationReport:
    source: Annotated[Source, strawberry.lazy("api.types.source")] = strawberry.field(
        resolver=_report_source)
    comparison: ModelComparison
    sweet_spot: SweetSpot
    savings: SavingsRow | None
    recommendation: str
    source_row: strawberry.Private[SourceRow]

    @classmethod
    def of(cls, report: reports.OptimizationReport) -> OptimizationReport:
        return cls(source_row=report.source,
                   comparison=ModelComparison.of(report.comparison),
                   sweet_spot=SweetSpot.of(report.sweet_spot),
                   savings=SavingsRow.of(report.savings) if report.savings else None,
                   recommendation=report.recommendation)


@strawberry.type(description="The quality bar of one source type.")
class QualityThreshold:
    source_type: SourceType
    threshold: float
    is_default: bool


@strawberry.type(description="Weights of the quality score's terms.")
class QualityWeightsType:
    f1: float
    grounded: float
    miu: float
    coverage: float
    relevance: float


@strawberry.type(description="How runs are measured.")
class QualitySettings:
    weights: QualityWeightsType
    reference_model: str | None = strawberry.field(
        description="Designated reference; null = the most expensive model run on a source.")
    min_verified_fragments: int = strawberry.field(
        description="Verified fragments a source needs before they become its reference.")


# --- Source.comparison / Source.sweetSpot through per-request loaders (no N+1) -----------------


async def _records(session: Any, ids: list[int]) -> dict[int, list[PerformanceRecord]]:
    return await PerformanceRepository(session).records(ids)


async def _pending(session: Any, ids: list[int]) -> dict[int, int]:
    found = await ProcessingRepository(session).pending_runs(ids)
    return {i: found.get(i, 0) for i in ids}


async def _prices(session: Any, names: list[str]) -> dict[str, Decimal | None]:
    return await PerformanceRepository(session).model_prices(names)


async def source_comparison(info: strawberry.Info, source_id: int,
                            source_type: str) -> ModelComparison:
    """A source's comparison, loaded with its siblings' in one round of statements."""
    records = await info.context.loaders.get("performance_records", _records).load(source_id)
    pending = await info.context.loaders.get("pending_runs", _pending).load(source_id)
    return ModelComparison.of(reports.Comparison(source_id, source_type,
                                                 reports.header_reference(records), records,
                                                 pending))


async def source_sweet_spot(info: strawberry.Info, source_id: int, source_type: str,
                            quality_threshold: float | None,
                            budget_per_fragment: Decimal | None) -> SweetSpot:
    """A source's sweet spot from its latest run per model (same loaders as the comparison)."""
    try:
        threshold = reports.checked_threshold(quality_threshold, ("qualityThreshold",))
        budget = reports.checked_budget(budget_per_fragment, ("budgetPerFragment",))
    except DomainError as exc:
        raise public(exc) from None
    runtime = info.context.runtime

    async def read_limits(session: Any, keys: list[str]) -> dict[str, reports.Limits]:
        value = await reports.limits(runtime.ports, runtime.uow.bound(session))
        return {key: value for key in keys}

    records = await info.context.loaders.get("performance_records", _records).load(source_id)
    candidates = reports.source_candidates(records)
    lim = await info.context.loaders.get("quality_limits", read_limits).load("current")
    prices = dict(zip([c.model for c in candidates], await info.context.loaders.get(
        "model_prices", _prices).load_many([c.model for c in candidates]), strict=True))
    return SweetSpot.of(reports.spot(candidates, prices, lim, source_id=source_id,
                                     source_type=source_type, threshold=threshold,
                                     budget=budget))


def thresholds_of(stored: dict[str, float]) -> list[QualityThreshold]:
    """The bar of every source type, saying which ones are operator-set."""
    return [QualityThreshold(source_type=t, threshold=threshold_for(t.value, stored),
                             is_default=t.value not in stored) for t in m.SourceType]


def settings_of(weights: QualityWeights, reference: str | None,
                minimum: int) -> QualitySettings:
    """The quality settings in force as a GraphQL object."""
    return QualitySettings(
        weights=QualityWeightsType(f1=weights.f1, grounded=weights.grounded, miu=weights.miu,
                                   coverage=weights.coverage, relevance=weights.relevance),
        reference_model=reference, min_verified_fragments=minimum)


async def read_quality_settings(info: strawberry.Info) -> QualitySettings:
    policy = await quality_uc.quality_policy(info.context.runtime.ports)
    return settings_of(policy.weights, policy.reference_model, policy.min_verified)
