"""How well a provisional score predicted the score measured once a human reference existed.

A run measured while its source had no human reference (kind 'reference_model', 'consensus'
or 'none') keeps that last provisional score when the source later gets verified fragments,
by review or import. Each such run is one pair (provisional, verified), both on the 0-10
quality scale. Over n pairs (docs/QUALITY.md, "Calibration of provisional scores"):

- mean absolute error  MAE = (1/n) Σ |pᵢ − vᵢ|        (points on the 0-10 scale)
- mean error (bias)    ME  = (1/n) Σ (pᵢ − vᵢ)        (> 0: provisional scores ran high)
- Spearman's ρ = Pearson's correlation of the ranks of p and of v, tied values taking the
  average of the ranks they span. It is None when n < 3 (too few to speak of an order) or
  when either side has zero variance (all equal: no order to compare).

MAE and ME are None without pairs. Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "MIN_PAIRS", "Calibration", "CalibrationGroup", "CalibrationPair", "CalibrationReport",
    "average_ranks", "calibrate", "calibration_report", "spearman", "summary",
]

MIN_PAIRS = 3  # fewer pairs than this: no rank correlation, and the summary says so


@dataclass(frozen=True, slots=True)
class CalibrationPair:
    """One run scored first without, then with, a human reference."""

    source_id: int
    run_id: int
    model: str
    kind: str | None  # what the provisional score was measured against (None: not recorded)
    provisional: float
    verified: float


@dataclass(frozen=True, slots=True)
class Calibration:
    """Agreement of provisional with verified scores over `n` pairs from `sources` sources."""

    n: int
    sources: int
    mean_absolute_error: float | None
    mean_error: float | None
    spearman: float | None

    @property
    def enough(self) -> bool:
        """True when there are at least MIN_PAIRS pairs."""
        return self.n >= MIN_PAIRS


def average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks of `values`, tied values sharing the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        rank = (i + j) / 2 + 1  # positions i..j hold ranks i+1..j+1
        for k in range(i, j + 1):
            ranks[order[k]] = rank
        i = j + 1
    return ranks


def _pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return None
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


def spearman(pairs: Sequence[tuple[float, float]]) -> float | None:
    """Spearman's rank correlation with average ranks for ties; None when n < 3 or a side
    has zero variance."""
    if len(pairs) < MIN_PAIRS:
        return None
    return _pearson(average_ranks([p for p, _ in pairs]), average_ranks([v for _, v in pairs]))


def calibrate(pairs: Sequence[tuple[float, float]], *, sources: int | None = None
              ) -> Calibration:
    """MAE, mean error and Spearman's ρ of (provisional, verified) pairs.

    `sources` is how many distinct sources the pairs come from (the caller knows; without it,
    each pair is taken to be its own source).
    """
    for p, v in pairs:
        if not (math.isfinite(p) and math.isfinite(v)):
            raise ValueError("calibration scores must be finite")
    n = len(pairs)
    errors = [p - v for p, v in pairs]
    return Calibration(
        n=n,
        sources=n if sources is None else sources,
        mean_absolute_error=sum(abs(e) for e in errors) / n if n else None,
        mean_error=sum(errors) / n if n else None,
        spearman=spearman(pairs),
    )


# --- the report: overall, by provisional kind, by model -----------------------------------------


@dataclass(frozen=True, slots=True)
class CalibrationGroup:
    """The calibration of one slice of the pairs (one provisional kind, or one model)."""

    key: str
    calibration: Calibration


@dataclass(frozen=True, slots=True)
class CalibrationReport:
    source_type: str | None
    overall: Calibration
    by_kind: tuple[CalibrationGroup, ...]
    by_model: tuple[CalibrationGroup, ...]
    summary: str


UNKNOWN_KIND = "unknown"  # a pair whose provisional reference kind was not recorded


def _of(pairs: Sequence[CalibrationPair]) -> Calibration:
    return calibrate([(p.provisional, p.verified) for p in pairs],
                     sources=len({p.source_id for p in pairs}))


def _groups(pairs: Sequence[CalibrationPair], key: Callable[[CalibrationPair], str]
            ) -> tuple[CalibrationGroup, ...]:
    slices: dict[str, list[CalibrationPair]] = defaultdict(list)
    for pair in pairs:
        slices[key(pair)].append(pair)
    return tuple(CalibrationGroup(k, _of(slices[k])) for k in sorted(slices))


def calibration_report(pairs: Sequence[CalibrationPair], source_type: str | None = None
                       ) -> CalibrationReport:
    """The calibration of all pairs, by provisional reference kind and by model, with a
    one-sentence reading."""
    overall = _of(pairs)
    return CalibrationReport(
        source_type=source_type,
        overall=overall,
        by_kind=_groups(pairs, lambda p: p.kind or UNKNOWN_KIND),
        by_model=_groups(pairs, lambda p: p.model),
        summary=summary(overall),
    )


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def summary(c: Calibration) -> str:
    """One sentence telling how far to trust a provisional score."""
    if not c.enough or c.mean_absolute_error is None:
        have = ("no run has" if c.n == 0 else
                f"only {_count(c.n, 'run')} on {_count(c.sources, 'source')} "
                f"{'has' if c.n == 1 else 'have'}")
        return (f"Not enough evidence yet: {have} been scored both before and after a human "
                f"reference existed; at least {MIN_PAIRS} are needed.")
    correlation = ("rank correlation undefined: the scores do not vary" if c.spearman is None
                   else f"rank correlation {c.spearman:.2f}")
    return (f"Over {_count(c.n, 'run')} on {_count(c.sources, 'source')}, provisional scores "
            f"were off by {c.mean_absolute_error:.2f} points on average ({correlation}).")
