"""Calibration of provisional scores as GraphQL types (docs/QUALITY.md, "Calibration of
provisional scores")."""

from __future__ import annotations

from typing import Any

import strawberry

from api.types.enums import SourceType
from domain import model as m
from domain.calibration import Calibration, CalibrationGroup, CalibrationReport

_N = ("Runs with both scores: measured while the source had no human reference "
      "(the provisional score p), and again once it had one (the verified score v).")
_SOURCES = "Distinct sources those runs belong to."
_MAE = ("Mean absolute error (1/n) Σ |p − v|, in points on the 0-10 quality scale; null when "
        "n = 0.")
_ME = ("Mean error (bias) (1/n) Σ (p − v): above 0 the provisional scores ran high, below 0 "
       "low; null when n = 0.")
_RHO = ("Spearman's rank correlation: Pearson's correlation of the ranks of p and of v, tied "
        "values taking the mean of the ranks they span; null when n < 3 or when p or v does "
        "not vary.")


@strawberry.type
class _Measures:
    """The measures every calibration group reports."""

    n: int = strawberry.field(description=_N)
    sources: int = strawberry.field(description=_SOURCES)
    mean_absolute_error: float | None = strawberry.field(description=_MAE)
    mean_error: float | None = strawberry.field(description=_ME)
    spearman: float | None = strawberry.field(description=_RHO)


def _measures(group: CalibrationGroup) -> dict[str, Any]:
    c = group.calibration
    return {"n": c.n, "sources": c.sources, "mean_absolute_error": c.mean_absolute_error,
            "mean_error": c.mean_error, "spearman": c.spearman}


@strawberry.type(description="The calibration of the runs whose provisional score was "
                             "measured against one kind of reference.")
class CalibrationByKind(_Measures):
    kind: str = strawberry.field(description=(
        "What the provisional score was measured against: reference_model, consensus, none "
        "(no reference), or unknown when not recorded."))

    @classmethod
    def of(cls, group: CalibrationGroup) -> CalibrationByKind:
        return cls(kind=group.key, **_measures(group))


@strawberry.type(description="The calibration of one model's runs.")
class CalibrationByModel(_Measures):
    model: str

    @classmethod
    def of(cls, group: CalibrationGroup) -> CalibrationByModel:
        return cls(model=group.key, **_measures(group))


@strawberry.type(description=(
    "How well provisional scores (measured without a human reference) predicted the score "
    "measured once the source had verified fragments, by review or import: how far to trust a "
    "provisional score. Only completed runs count."))
class QualityCalibration:
    source_type: SourceType | None = strawberry.field(
        description="The source type asked for; null: all of them.")
    n: int = strawberry.field(description=_N)
    sources: int = strawberry.field(description=_SOURCES)
    mean_absolute_error: float | None = strawberry.field(description=_MAE)
    mean_error: float | None = strawberry.field(description=_ME)
    spearman: float | None = strawberry.field(description=_RHO)
    by_kind: list[CalibrationByKind] = strawberry.field(
        description="The same measures by what the provisional score was measured against.")
    by_model: list[CalibrationByModel] = strawberry.field(
        description="The same measures by model.")
    summary: str = strawberry.field(description=(
        "One sentence: n, sources, mean absolute error and rank correlation, or why there is "
        "not enough evidence yet (n < 3)."))

    @classmethod
    def of(cls, report: CalibrationReport) -> QualityCalibration:
        c: Calibration = report.overall
        return cls(
            source_type=None if report.source_type is None else m.SourceType(report.source_type),
            n=c.n, sources=c.sources, mean_absolute_error=c.mean_absolute_error,
            mean_error=c.mean_error, spearman=c.spearman,
            by_kind=[CalibrationByKind.of(g) for g in report.by_kind],
            by_model=[CalibrationByModel.of(g) for g in report.by_model],
            summary=report.summary)
