"""Optimization reports from measured runs: comparison, sweet spot, savings (docs/ARCHITECTURE.md,
"Quality" and "Optimization").

Use cases shared by GraphQL and the REST compatibility routes. Each returns plain data; the
adapters only render it. Nothing here defaults silently: thresholds, cost limits and the
reference model a report used are part of the report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from domain.errors import FieldIssue, InvalidInput, NotFound
from domain.evaluation import policy_defaults
from domain.optimizer import (
    Candidate,
    SavingsRow,
    SweetSpot,
    most_expensive,
    savings_row,
    sweet_spot,
    threshold_for,
)
from domain.performance import PerformanceRecord, latest_of_each_model
from domain.ports import Ports, UnitOfWork
from domain.quality import format_score


@dataclass(frozen=True, slots=True)
class ReferenceInfo:
    """What runs were compared with: verified fragments, a model's run, a consensus, nothing;
    `run_id` is the reference run for a model's run."""

    kind: str
    model: str | None = None
    run_id: int | None = None


@dataclass(frozen=True, slots=True)
class Comparison:
    """All measured runs of one source side by side, best first."""

    source_id: int
    source_type: str
    reference: ReferenceInfo
    entries: list[PerformanceRecord]
    pending_runs: int


@dataclass(frozen=True, slots=True)
class SweetSpotReport:
    """The sweet spot with everything it was computed from."""

    source_id: int | None
    source_type: str | None
    threshold: float
    budget_per_fragment: Decimal | None
    reference_model: str | None
    candidates: list[Candidate]
    result: SweetSpot


@dataclass(frozen=True, slots=True)
class SavingsLine:
    """One source type: reference versus optimized model, or why there is no optimized one."""

    source_type: str
    threshold: float
    qualified: bool
    reason: str
    reference: Candidate | None
    optimized: Candidate | None
    row: SavingsRow | None


@dataclass(frozen=True, slots=True)
class OptimizationReport:
    """One source: its comparison, its sweet spot, the saving against its reference."""

    source: Any
    comparison: Comparison
    sweet_spot: SweetSpotReport
    savings: SavingsLine | None
    recommendation: str


# --- inputs ---------------------------------------------------------------------------------


def checked_threshold(value: float | None, path: tuple[str, ...]) -> float | None:
    """A quality threshold from a request: finite, within 0-10."""
    if value is None:
        return None
    if not math.isfinite(value) or not 0.0 <= value <= 10.0:
        raise InvalidInput.single(path, "must be between 0 and 10")
    return float(value)


def checked_budget(value: Decimal | None, path: tuple[str, ...]) -> Decimal | None:
    """A cost limit per grounded fragment from a request: finite, not negative."""
    if value is None:
        return None
    if not value.is_finite() or value < 0 or value > Decimal(1_000_000):
        raise InvalidInput.single(path, "must be a decimal between 0 and 1000000")
    return value


# --- comparison -----------------------------------------------------------------------------


def header_reference(records: Sequence[PerformanceRecord]) -> ReferenceInfo:
    """The one reference every run of the source was measured against (a source is measured
    as a whole, so its rows agree; the latest measured row speaks if they ever did not)."""
    if not records:
        return ReferenceInfo("none")
    latest = max(records, key=lambda r: r.run_id)
    return ReferenceInfo(latest.reference_kind, latest.reference_model, latest.reference_run_id)


async def comparisons(uow: UnitOfWork, sources: Sequence[Any]) -> dict[int, Comparison]:
    """Comparisons of many sources in a constant number of statements."""
    ids = [s.id or 0 for s in sources]
    records = await uow.performance.records(ids)
    pending = await uow.processing.pending_runs(ids)
    return {s.id or 0: Comparison(s.id or 0, s.source_type,
                                  header_reference(records[s.id or 0]), records[s.id or 0],
                                  pending.get(s.id or 0, 0)) for s in sources}


async def comparison(ports: Ports, source_id: int,
                     path: tuple[str, ...] = ("sourceId",)) -> Comparison:
    """All measured runs of one source."""
    async with ports.uow(read_only=True) as uow:
        source = await uow.sources.require(source_id, path)
        return (await comparisons(uow, [source]))[source_id]


# --- sweet spot -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limits:
    """Thresholds, the cost limit and the designated reference in force."""

    thresholds: Mapping[str, float]
    cost_limit: Decimal | None
    designated_reference: str | None


async def limits(ports: Ports, uow: UnitOfWork) -> Limits:
    """Read once per request: operator values from the settings table over environment ones."""
    policy = await uow.performance.policy(policy_defaults(ports.settings))
    return Limits(await uow.performance.thresholds(), await uow.budget.fragment_cost_limit(),
                  policy.reference_model)


def reference_of(candidates: Sequence[Candidate], prices: Mapping[str, Decimal | None],
                 designated: str | None) -> str | None:
    """The designated model when measured, else the model the measurements were paired
    against, else the single dearest measured model by price, else (a price tie) the one with
    the highest cost per grounded fragment."""
    names = {c.model for c in candidates}
    if designated in names:
        return designated
    # The model the measurements were paired against is the reference they were made with.
    baselines = {c.paired.baseline_model for c in candidates if c.paired is not None}
    if len(baselines) == 1 and (baseline := next(iter(baselines))) in names:
        return baseline
    dearest = most_expensive({m: p for m, p in prices.items() if m in names})
    if dearest is not None or not candidates:
        return dearest
    yielding = [c for c in candidates if c.cost_per_fragment is not None]
    if not yielding:
        return None
    return max(yielding, key=lambda c: (c.cost_per_fragment, c.model)).model


def spot(candidates: Sequence[Candidate], prices: Mapping[str, Decimal | None], lim: Limits,
         *, source_id: int | None, source_type: str, threshold: float | None,
         budget: Decimal | None) -> SweetSpotReport:
    """The sweet spot of these candidates under the request's or the configured limits."""
    bar = threshold if threshold is not None else threshold_for(source_type, lim.thresholds)
    cap = budget if budget is not None else lim.cost_limit
    reference = reference_of(candidates, prices, lim.designated_reference)
    result = sweet_spot(candidates, bar, cap, reference,
                        source_type=None if source_id is not None else source_type)
    return SweetSpotReport(source_id, source_type, bar, cap, reference, list(candidates), result)


def source_candidates(records: Sequence[PerformanceRecord]) -> list[Candidate]:
    """One candidate per model: its latest measured run on the source."""
    return [r.candidate() for r in latest_of_each_model(records)]


async def sweet_spot_report(ports: Ports, *, source_id: int | None,
                            source_type: str | None, threshold: float | None,
                            budget: Decimal | None) -> SweetSpotReport:
    """The sweet spot of one source or of one source type (exactly one of them)."""
    if (source_id is None) == (source_type is None):
        raise InvalidInput([FieldIssue(("sourceId",), "give either sourceId or sourceType"),
                            FieldIssue(("sourceType",), "give either sourceId or sourceType")])
    threshold = checked_threshold(threshold, ("qualityThreshold",))
    budget = checked_budget(budget, ("budgetPerFragment",))
    async with ports.uow(read_only=True) as uow:
        repository = uow.performance
        lim = await limits(ports, uow)
        if source_id is not None:
            source = await uow.sources.require(source_id, ("sourceId",))
            kind = source.source_type
            candidates = await repository.pooled(source_id=source_id)
        else:
            kind = str(source_type)
            candidates = await repository.pooled(source_type=kind)
        prices = await repository.model_prices([c.model for c in candidates])
    return spot(candidates, prices, lim, source_id=source_id, source_type=kind,
                threshold=threshold, budget=budget)


# --- savings ------------------------------------------------------------------------------------


def savings_line(report: SweetSpotReport) -> SavingsLine:
    """Reference versus the sweet spot; without a qualified sweet spot, the reason why not."""
    kind = report.source_type or "sources"
    by_name = {c.model: c for c in report.candidates}
    reference = by_name.get(report.reference_model or "")
    result = report.result
    if reference is None:
        reason = "no reference model was measured, so there is nothing to save against"
        return SavingsLine(kind, report.threshold, result.qualified, reason, None,
                           result.candidate, None)
    if not result.qualified or result.candidate is None:
        return SavingsLine(kind, report.threshold, False, result.reason, reference, None, None)
    row = savings_row(kind, reference, result.candidate)
    return SavingsLine(kind, report.threshold, True, result.reason, reference,
                       result.candidate, row)


async def savings_report(ports: Ports) -> list[SavingsLine]:
    """Per measured source type: reference model, optimized model, quality change, saving."""
    async with ports.uow(read_only=True) as uow:
        repository = uow.performance
        lim = await limits(ports, uow)
        lines = []
        for kind in await repository.source_types_measured():
            candidates = await repository.pooled(source_type=kind)
            prices = await repository.model_prices([c.model for c in candidates])
            report = spot(candidates, prices, lim, source_id=None, source_type=kind,
                          threshold=None, budget=None)
            lines.append(savings_line(report))
    return lines


def _label(source_type: str) -> str:
    return source_type.replace("_", " ").title()


def _pct(value: float | Decimal | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    number = float(value)
    return f"{number:+.1f}%" if signed else f"{number:.1f}%"


def savings_table(lines: Sequence[SavingsLine]) -> str:
    """The original MMOS README's table, from measurements, with samples and the interval."""
    head = ("| Source Type | Original Model | Optimized Model | Quality Change | Cost Saving "
            "| Samples | 90% Interval |")
    rows = [head, "|" + "---|" * 7]
    for line in lines:
        original = line.reference.model if line.reference else "n/a"
        if line.row is None:
            rows.append(f"| {_label(line.source_type)} | {original} | none qualifies | n/a | n/a "
                        f"| {line.reference.samples if line.reference else 0} | n/a |")
            continue
        r = line.row
        rows.append(
            f"| {_label(r.source_type)} | {r.original_model} | {r.optimized_model} "
            f"| {r.quality_change_text} | {_pct(r.cost_saving_pct)} "
            f"| {r.samples} | {format_score(r.interval[0])}–{format_score(r.interval[1])} |")
    return "\n".join(rows)


# --- one source's report --------------------------------------------------------------------------


def recommendation(report: SweetSpotReport, savings: SavingsLine | None) -> str:
    """One sentence a person can act on."""
    result = report.result
    if not result.qualified:
        return f"No model qualifies yet: {result.reason}."
    text = f"Use {result.model}: {result.reason}."
    if savings and savings.row and savings.row.cost_saving_pct is not None \
            and savings.row.original_model != savings.row.optimized_model:
        text += (f" That saves {savings.row.cost_saving_pct}% per grounded fragment against "
                 f"{savings.row.original_model}, with quality "
                 f"{savings.row.quality_change_text}.")
    return text


async def optimization_report(ports: Ports, source_id: int,
                              path: tuple[str, ...] = ("sourceId",)) -> OptimizationReport:
    """Comparison, sweet spot (configured threshold and cost limit) and saving of one source."""
    async with ports.uow(read_only=True) as uow:
        source = await uow.sources.get(source_id)
        if source is None:
            raise NotFound("Source", source_id, path)
        found = (await comparisons(uow, [source]))[source_id]
        lim = await limits(ports, uow)
        candidates = source_candidates(found.entries)
        prices = await uow.performance.model_prices(
            [c.model for c in candidates])
    report = spot(candidates, prices, lim, source_id=source_id, source_type=source.source_type,
                  threshold=None, budget=None)
    savings = savings_line(report) if candidates else None
    return OptimizationReport(source, found, report, savings, recommendation(report, savings))
