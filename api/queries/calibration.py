"""Calibration query: how far a provisional quality score can be trusted."""

from __future__ import annotations

import strawberry

from api.errors import public
from api.types.calibration import QualityCalibration
from api.types.enums import SourceType
from domain.errors import DomainError
from domain.services import calibration


@strawberry.type
class CalibrationQueries:
    @strawberry.field(description=(
        "Compares, run by run, the provisional score a run had while its source had no human "
        "reference with its score once the source got one (verification or import): mean "
        "absolute error (1/n) Σ |p − v|, bias (1/n) Σ (p − v), Spearman's rank correlation, "
        "overall, by provisional reference kind and by model. Completed runs only."))
    async def quality_calibration(self, info: strawberry.Info,
                                  source_type: SourceType | None = None) -> QualityCalibration:
        try:
            report = await calibration.quality_calibration(
                info.context.runtime.ports,
                None if source_type is None else str(source_type))
            return QualityCalibration.of(report)
        except DomainError as exc:
            raise public(exc) from None
