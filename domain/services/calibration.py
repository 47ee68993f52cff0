"""Calibration: how far a provisional score can be trusted, read from the runs that were
scored without a human reference and later with one (docs/QUALITY.md, "Calibration of
provisional scores")."""

from __future__ import annotations

from domain.calibration import CalibrationReport, calibration_report
from domain.errors import InvalidInput
from domain.model import SourceType
from domain.ports import Ports


def checked_source_type(value: str | None, path: tuple[str, ...] = ("sourceType",)
                        ) -> str | None:
    """A source type from a request, or None for all of them."""
    if value is None:
        return None
    try:
        return SourceType(str(value).lower()).value
    except ValueError:
        known = ", ".join(t.value for t in SourceType)
        raise InvalidInput.single(path, f"unknown source type {value!r}; one of {known}"
                                  ) from None


async def quality_calibration(ports: Ports, source_type: str | None) -> CalibrationReport:
    """Mean absolute error, bias and rank correlation of provisional against verified scores,
    overall, by what the provisional score was measured against, and by model."""
    kind = checked_source_type(source_type)
    async with ports.uow(read_only=True) as uow:
        pairs = await uow.calibration.pairs(kind)
    return calibration_report(pairs, kind)
