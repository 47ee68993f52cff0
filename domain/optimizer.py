"""Choosing a model from measurements: cost per grounded fragment, sweet spot, strategies.

Money is Decimal, quality a 0-10 float. Every choice comes with a human reason; when nothing
qualifies the result says so and names the best available model, never a silent default.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Literal

from domain.quality import (
    PairedDelta,
    bootstrap_interval,
    format_score,
    pooled_delta,
    round_score,
)

OTHERS = "others"  # the key whose threshold applies to every source type not listed
DEFAULT_THRESHOLDS: Mapping[str, float] = MappingProxyType(
    {"interview": 8.5, "podcast": 7.5, "article": 7.0, "social_media": 6.0, OTHERS: 7.0}
)

_CENT_OF_PERCENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Candidate:
    """One model's measured quality and cost over a sample of sources."""

    model: str
    quality: float
    quality_low: float
    quality_high: float
    provisional: bool
    cost_usd: Decimal
    grounded_fragments: int
    source_chars: int
    samples: int
    # Quality against the reference model's runs on the same sources, chunk by chunk (None
    # when the reference model did not run where this model did).
    paired: PairedDelta | None = None
    # What prompt caching and batch mode saved over the samples (in cost_usd already).
    cache_saved_usd: Decimal = Decimal(0)
    batch_saved_usd: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        if not isinstance(self.cost_usd, Decimal):
            raise TypeError("cost_usd must be a Decimal: money is never a float")
        if not self.cost_usd.is_finite() or self.cost_usd < 0:
            raise ValueError(f"invalid cost {self.cost_usd}")
        if not 0.0 <= self.quality_low <= self.quality <= self.quality_high <= 10.0:
            raise ValueError("quality must satisfy 0 <= low <= quality <= high <= 10")
        if min(self.grounded_fragments, self.source_chars, self.samples) < 0:
            raise ValueError("counts cannot be negative")

    @property
    def yields(self) -> bool:
        """True when the model produced grounded fragments (its only useful output)."""
        return self.grounded_fragments > 0

    @property
    def cost_per_fragment(self) -> Decimal | None:
        """Cost per grounded fragment; None when nothing was grounded (no yield, no price)."""
        return self.cost_usd / self.grounded_fragments if self.grounded_fragments else None

    @property
    def cost_per_1k_chars(self) -> Decimal | None:
        """Cost per 1,000 source characters: fair across models that split text differently."""
        return self.cost_usd * 1000 / self.source_chars if self.source_chars else None


def threshold_for(source_type: str, overrides: Mapping[str, float] | None = None) -> float:
    """The quality bar of a source type: its override, its default, then the "others" value."""
    overrides = overrides or {}
    for key in (source_type, OTHERS):
        for table in (overrides, DEFAULT_THRESHOLDS):
            if key in table:
                return _checked_threshold(table[key])
    raise AssertionError("DEFAULT_THRESHOLDS always holds OTHERS")


def _checked_threshold(value: float) -> float:
    if not 0.0 <= value <= 10.0:
        raise ValueError(f"quality threshold {value} is outside 0-10")
    return float(value)


# --- ordering helpers ---------------------------------------------------------------------------


_NO_YIELD = Decimal("Infinity")  # a model with no grounded fragment pays for nothing


def _unit_cost(c: Candidate) -> Decimal:
    cpf = c.cost_per_fragment
    return _NO_YIELD if cpf is None else cpf


def _cheapest_key(c: Candidate) -> tuple[Decimal, float, str]:
    # Cheaper, then better, then by name so that output never depends on input order.
    return (_unit_cost(c), -c.quality, c.model)


def _best_key(c: Candidate) -> tuple[float, Decimal, str]:
    # Better, then cheaper, then by name.
    return (-c.quality, _unit_cost(c), c.model)


def _best_available(cands: Iterable[Candidate]) -> Candidate:
    pool = list(cands)
    yielding = [c for c in pool if c.yields]
    return min(yielding or pool, key=_best_key)


def _meets(value: float, c: Candidate, threshold: float) -> bool:
    # Judged on the score as shown (rounded once), so the text never contradicts the choice.
    return c.yields and round_score(value) >= threshold


def _unique_models(names: Iterable[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"model {name} is listed twice")
        seen.add(name)


# --- formatting for reasons -----------------------------------------------------------------


def _q(value: float) -> str:
    # Scores are rounded once when measured (domain.quality.round_score) and compared with the
    # threshold as rounded, so printing that value can never contradict the comparison.
    return format_score(value)


def _paired_vs(c: Candidate, reference_model: str | None) -> PairedDelta | None:
    """The candidate's paired difference against this reference model, if it was measured."""
    if c.paired is None or reference_model is None or c.model == reference_model:
        return None
    return c.paired if c.paired.baseline_model == reference_model else None


def _t(threshold: float) -> str:
    # A threshold as the operator set it (8.5, not 8.50): it is a setting, not a measurement.
    return f"{threshold:g}"


def _money(value: Decimal | None) -> str:
    if value is None:
        return "n/a"
    return "$" + f"{value.quantize(Decimal('1e-8')).normalize():f}"


def _scope(source_type: str | None) -> str:
    return f" for {source_type} sources" if source_type else ""


# --- frontier and sweet spot --------------------------------------------------------------


def _dominates(a: Candidate, b: Candidate) -> bool:
    no_worse = _unit_cost(a) <= _unit_cost(b) and a.quality >= b.quality
    better = _unit_cost(a) < _unit_cost(b) or a.quality > b.quality
    return no_worse and better


def pareto_frontier(cands: Sequence[Candidate]) -> list[Candidate]:
    """Candidates no other beats on both cost per fragment and quality, cheapest first.

    Models with no grounded fragment have no cost per fragment and are left out.
    """
    pool = [c for c in cands if c.yields]
    front = [c for c in pool if not any(_dominates(o, c) for o in pool)]
    return sorted(front, key=_cheapest_key)


@dataclass(frozen=True, slots=True)
class SweetSpot:
    """The recommended model, or why there is none; savings are a percent of the reference."""

    model: str | None
    qualified: bool
    reason: str
    frontier: tuple[Candidate, ...]
    savings_vs_reference: Decimal | None
    candidate: Candidate | None


def sweet_spot(
    cands: Sequence[Candidate],
    threshold: float,
    budget_per_fragment: Decimal | None = None,
    reference_model: str | None = None,
    *,
    source_type: str | None = None,
) -> SweetSpot:
    """Cheapest model with quality >= threshold and cost per grounded fragment <= the limit.

    Ties go to the higher quality, then the name. When none qualifies, `model` is the best
    available (highest quality, then cheaper) and `qualified` is False. Savings are reported
    only for a qualified choice, against the reference model's cost per grounded fragment.
    """
    _unique_models(c.model for c in cands)
    frontier = tuple(pareto_frontier(cands))
    scope = _scope(source_type)
    if not cands:
        return SweetSpot(None, False, f"no model has been measured{scope}", frontier, None, None)
    if not any(c.yields for c in cands):
        names = ", ".join(sorted(c.model for c in cands))
        reason = f"no model produced grounded fragments{scope} ({names}), so none can qualify"
        return SweetSpot(None, False, reason, frontier, None, None)
    fits = [c for c in cands if _meets(c.quality, c, threshold) and _within(c, budget_per_fragment)]
    if not fits:
        best = _best_available(cands)
        reason = _no_fit_reason(cands, threshold, budget_per_fragment, scope, best)
        return SweetSpot(best.model, False, reason, frontier, None, best)
    pick = min(fits, key=_cheapest_key)
    reason = _fit_reason(pick, threshold, budget_per_fragment, scope)
    paired = _paired_vs(pick, reference_model)
    if paired is not None:
        reason += f"; {paired.claim()}"
    return SweetSpot(
        pick.model, True, reason, frontier, _savings_vs(pick, cands, reference_model), pick
    )


def _within(c: Candidate, limit: Decimal | None) -> bool:
    cpf = c.cost_per_fragment
    return limit is None or (cpf is not None and cpf <= limit)


def _savings_vs(
    pick: Candidate, cands: Sequence[Candidate], reference_model: str | None
) -> Decimal | None:
    reference = next((c for c in cands if c.model == reference_model), None)
    if reference is None:
        return None
    return _saving_pct(reference.cost_per_fragment, pick.cost_per_fragment)


def _fit_reason(pick: Candidate, threshold: float, limit: Decimal | None, scope: str) -> str:
    within = f" within {_money(limit)} per grounded fragment" if limit is not None else ""
    caveat = (" (provisional: measured without an independent reference)"
              if pick.provisional else "")
    return (
        f"{pick.model} is the cheapest model reaching quality {_t(threshold)}{scope}{within}: "
        f"{_q(pick.quality)} (interval {_q(pick.quality_low)}-{_q(pick.quality_high)}) at "
        f"{_money(pick.cost_per_fragment)} per grounded fragment{caveat}"
    )


def _no_fit_reason(
    cands: Sequence[Candidate],
    threshold: float,
    limit: Decimal | None,
    scope: str,
    best: Candidate,
) -> str:
    barren = sorted(c.model for c in cands if not c.yields)
    reaching = [c for c in cands if _meets(c.quality, c, threshold)]
    if reaching:  # they reach the bar, so the cost limit is what excludes them
        cheapest = min(reaching, key=_cheapest_key)
        head = (
            f"every model reaching quality {_t(threshold)}{scope} costs more than "
            f"{_money(limit)} per grounded fragment (cheapest is {cheapest.model} at "
            f"{_money(cheapest.cost_per_fragment)})"
        )
    else:
        which = "no model with grounded fragments" if barren else "no model"
        head = f"{which} reaches quality {_t(threshold)}{scope}"
    text = f"{head}; best is {best.model} at {_q(best.quality)}"
    if barren:
        text += f"; {', '.join(barren)} produced no grounded fragments and cannot qualify"
    return text


# --- strategies ---------------------------------------------------------------------------------

Action = Literal["test", "use", "fallback_best", "fallback_reference"]


@dataclass(frozen=True, slots=True)
class Decision:
    """What a strategy does next: test models, use one, or fall back; notes explain each step."""

    model: str | None
    action: Action
    models_to_test: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def _verdict(c: Candidate, value: float, label: str, threshold: float) -> str:
    if not c.yields:
        return f"{c.model} produced no grounded fragments"
    sign = ">=" if round_score(value) >= threshold else "<"
    caveat = " (provisional: measured without an independent reference)" if c.provisional else ""
    return f"{c.model} {label} {_q(value)} {sign} {_t(threshold)}{caveat}"


def progressive_next(
    candidates_by_cost: Sequence[str], measured: Mapping[str, Candidate], threshold: float
) -> Decision:
    """Cheapest first: test the first unmeasured model, use the first whose score meets the bar.

    Walking the list in order means a cheaper model is always measured before a dearer one is
    used. When all are measured and none meets the bar, fall back to the best measured.
    """
    if not candidates_by_cost:
        raise ValueError("progressive needs at least one candidate model")
    _unique_models(candidates_by_cost)
    notes: list[str] = []
    for name in candidates_by_cost:
        c = measured.get(name)
        if c is None:
            notes.append(f"{name} is the cheapest candidate not measured yet: test it")
            return Decision(None, "test", (name,), tuple(notes))
        notes.append(_verdict(c, c.quality, "scores", threshold))
        if _meets(c.quality, c, threshold):
            notes.append(f"use {name} for the remaining sources")
            return Decision(name, "use", (), tuple(notes))
    best = _best_available(measured[n] for n in candidates_by_cost)
    notes.append(
        f"no candidate reaches {_t(threshold)}; fall back to the best measured, "
        f"{best.model} at {_q(best.quality)}"
    )
    return Decision(best.model, "fallback_best", (), tuple(notes))


def aggressive_choice(
    history: Sequence[Candidate], threshold: float, candidates: Sequence[str] = ()
) -> Decision:
    """Reuse history: the cheapest model whose upper bound met the bar; test only what is unknown.

    `history` holds one aggregated Candidate per model for the source type. With no model
    meeting the bar, the candidates absent from history are tested; when every candidate is
    already known, fall back to the best in history.
    """
    _unique_models(c.model for c in history)
    if not history and not candidates:
        raise ValueError("aggressive needs history or candidate models")
    met = [c for c in history if _meets(c.quality_high, c, threshold)]
    if met:
        pick = min(met, key=_cheapest_key)
        notes = [_verdict(c, c.quality_high, "upper bound", threshold) for c in met]
        notes.append(
            f"use {pick.model}, the cheapest that met the bar, at "
            f"{_money(pick.cost_per_fragment)} per grounded fragment, without testing"
        )
        return Decision(pick.model, "use", (), tuple(notes))
    known = {c.model for c in history}
    untested = tuple(dict.fromkeys(m for m in candidates if m not in known))
    if untested:
        why = (
            "no history for this source type"
            if not history
            else f"no model in history reached {_t(threshold)} even at its upper bound"
        )
        return Decision(None, "test", untested, (f"{why}: test {', '.join(untested)}",))
    best = _best_available(history)
    note = (
        f"no model in history reached {_t(threshold)} even at its upper bound and none is left "
        f"to test; fall back to the best, {best.model} at {_q(best.quality)}"
    )
    return Decision(best.model, "fallback_best", (), (note,))


def conservative_choice(
    measured: Mapping[str, Candidate],
    all_candidates: Sequence[str],
    reference_model: str,
    threshold: float,
) -> Decision:
    """Measure every candidate and the reference; use the cheapest whose lower bound meets the bar.

    With none, use the reference model.
    """
    pool = tuple(dict.fromkeys([*all_candidates, reference_model]))
    missing = tuple(m for m in pool if m not in measured)
    if missing:
        note = f"conservative measures every candidate first; missing: {', '.join(missing)}"
        return Decision(None, "test", missing, (note,))
    reference = measured[reference_model]
    bounds = {m: conservative_bound(measured[m], reference) for m in pool}
    notes = [_verdict(measured[m], bounds[m][0], bounds[m][1], threshold) for m in pool]
    met = [measured[m] for m in pool if _meets(bounds[m][0], measured[m], threshold)]
    if met:
        pick = min(met, key=_cheapest_key)
        notes.append(f"use {pick.model}, the cheapest whose lower bound meets the bar")
        return Decision(pick.model, "use", (), tuple(notes))
    notes.append(f"no lower bound reaches {_t(threshold)}; use the reference model")
    return Decision(reference_model, "fallback_reference", (), tuple(notes))


def conservative_bound(c: Candidate, reference: Candidate) -> tuple[float, str]:
    """The lower bound conservative judges a candidate by, with its label.

    Measured on the same chunks as the reference model's runs, it is the reference's quality
    plus the paired difference's lower bound: pairing cancels what the chunks share, so the
    bound is as tight as the evidence allows. Without a pairing, the candidate's own lower
    bound. The reference model itself is judged by its own lower bound.
    """
    paired = _paired_vs(c, reference.model)
    if paired is None:
        return c.quality_low, "lower bound"
    bound = max(0.0, min(10.0, reference.quality + paired.low))
    return float(format_score(bound)), "paired lower bound"


# --- savings ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SavingsRow:
    """One line of the savings report: reference versus optimized model for a source type.

    `cost_saving_pct` compares cost per grounded fragment (what the sweet spot minimises);
    `spend_saving_pct` compares cost per 1,000 source characters (money for the same material).
    `samples` is the smaller sample count of the two: the evidence is as strong as its weaker side.
    """

    source_type: str
    original_model: str
    optimized_model: str
    original_quality: float
    optimized_quality: float
    quality_change_pct: float | None
    cost_saving_pct: Decimal | None
    spend_saving_pct: Decimal | None
    samples: int
    interval: tuple[float, float]
    reference_interval: tuple[float, float]
    paired: PairedDelta | None = None  # the change measured chunk by chunk, when it was
    # The other levers, for the optimized model over its measured runs: what prompt caching
    # and batch mode saved (USD), beside the saving of choosing the model.
    cache_saved_usd: Decimal = Decimal(0)
    batch_saved_usd: Decimal = Decimal(0)

    @property
    def quality_change_text(self) -> str:
        """'-3.2% (90% CI -5.1..-1.0)' when paired, else the bare change."""
        if self.paired is not None:
            return self.paired.describe()
        if self.quality_change_pct is None:
            return "n/a"
        return f"{self.quality_change_pct:+.1f}%".replace("-", "\u2212") + " (not paired)"


def _saving_pct(reference: Decimal | None, optimized: Decimal | None) -> Decimal | None:
    # Percent with two decimals, like a NUMERIC(…, 2) column; undefined against a free reference.
    if reference is None or optimized is None or reference == 0:
        return None
    return ((reference - optimized) / reference * 100).quantize(_CENT_OF_PERCENT)


def savings_row(source_type: str, reference: Candidate, optimized: Candidate) -> SavingsRow:
    """Quality change and cost saving of the optimized model against the reference.

    The change is the paired one (same chunks of the same sources) when the optimized model's
    measurements carry it; else the change of the pooled means."""
    paired = _paired_vs(optimized, reference.model)
    if paired is not None:
        change = paired.pct
    elif optimized.model == reference.model:
        change = 0.0
    else:
        change = (
            round((optimized.quality - reference.quality) / reference.quality * 100, 1)
            if reference.quality
            else None
        )
    return SavingsRow(
        source_type=source_type,
        original_model=reference.model,
        optimized_model=optimized.model,
        original_quality=reference.quality,
        optimized_quality=optimized.quality,
        quality_change_pct=change,
        cost_saving_pct=_saving_pct(reference.cost_per_fragment, optimized.cost_per_fragment),
        spend_saving_pct=_saving_pct(reference.cost_per_1k_chars, optimized.cost_per_1k_chars),
        samples=min(reference.samples, optimized.samples),
        interval=(optimized.quality_low, optimized.quality_high),
        reference_interval=(reference.quality_low, reference.quality_high),
        paired=paired,
        cache_saved_usd=optimized.cache_saved_usd,
        batch_saved_usd=optimized.batch_saved_usd,
    )


# --- pooling samples ------------------------------------------------------------------------------


def pool_candidates(
    model: str,
    samples: Sequence[Candidate],
    *,
    resamples: int = 1000,
    confidence: float = 0.90,
    seed: int = 0,
) -> Candidate:
    """One candidate from a model's measurements on several sources.

    Quality is the mean of the per-source scores; money, fragments and characters add up, so
    cost per grounded fragment is total cost over total yield. With one sample its own interval
    stands. With more, the interval is the bootstrap over sources of the mean score, widened to
    the mean of the per-source bounds when those are wider: it is never narrower than either
    the spread between sources or the uncertainty within them.
    """
    if not samples:
        raise ValueError(f"no measurement of {model} to pool")
    if any(s.model != model for s in samples):
        raise ValueError(f"every pooled sample must belong to {model}")
    quality = sum(s.quality for s in samples) / len(samples)
    if len(samples) == 1:
        low, high = samples[0].quality_low, samples[0].quality_high
    else:
        def mean(sample: Sequence[Candidate]) -> float:
            return sum(s.quality for s in sample) / len(sample)

        spread_low, spread_high = bootstrap_interval(
            samples, mean, n=resamples, confidence=confidence, seed=seed
        )
        low = min(spread_low, sum(s.quality_low for s in samples) / len(samples))
        high = max(spread_high, sum(s.quality_high for s in samples) / len(samples))
    # Rounded once like every score; the interval must hold its point.
    quality = float(format_score(min(10.0, max(0.0, quality))))
    low, high = float(format_score(low)), float(format_score(high))
    pairs = [s.paired for s in samples if s.paired is not None]
    baselines = {p.baseline_model for p in pairs}
    paired = pooled_delta(pairs) if len(baselines) == 1 else None
    return Candidate(
        model=model,
        quality=quality,
        quality_low=max(0.0, min(low, quality)),
        quality_high=min(10.0, max(high, quality)),
        provisional=any(s.provisional for s in samples),
        cost_usd=sum((s.cost_usd for s in samples), Decimal(0)),
        grounded_fragments=sum(s.grounded_fragments for s in samples),
        source_chars=sum(s.source_chars for s in samples),
        samples=sum(s.samples for s in samples),
        paired=paired,
        cache_saved_usd=sum((s.cache_saved_usd for s in samples), Decimal(0)),
        batch_saved_usd=sum((s.batch_saved_usd for s in samples), Decimal(0)),
    )


def failed_sample(model: str, cost_usd: Decimal, source_chars: int) -> Candidate:
    """A run that ended without output to measure (failed, stopped): it scores 0 and yields none.

    Counting it keeps a model that breaks on some sources from looking as good as one that
    does not, and its money still counts.
    """
    return Candidate(model, 0.0, 0.0, 0.0, True, cost_usd, 0, source_chars, 1)


def most_expensive(prices: Mapping[str, Decimal | None]) -> str | None:
    """The single model with the highest known price; None on a tie or when none is priced."""
    priced = {name: price for name, price in prices.items() if price is not None}
    if not priced:
        return None
    top = max(priced.values())
    leaders = [name for name, price in priced.items() if price == top]
    return leaders[0] if len(leaders) == 1 else None
