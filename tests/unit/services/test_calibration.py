"""qualityCalibration's use case (domain/services/calibration.py) against in-memory fakes."""

from __future__ import annotations

import pytest

from domain.calibration import CalibrationPair
from domain.errors import InvalidInput
from domain.ports import Ports
from domain.services.calibration import quality_calibration
from tests.support.fakes import fakes_of, make_ports


def seeded() -> Ports:
    ports = make_ports()
    state = fakes_of(ports).state
    state.calibration_pairs += [
        ("interview", CalibrationPair(1, 10, "a", "consensus", 7.0, 6.0)),
        ("interview", CalibrationPair(1, 11, "b", "reference_model", 5.0, 5.0)),
        ("interview", CalibrationPair(2, 12, "a", "none", 8.0, 9.0)),
        ("podcast", CalibrationPair(3, 13, "b", "consensus", 4.0, 2.0)),
    ]
    return ports


async def test_all_source_types_by_default() -> None:
    ports = seeded()
    report = await quality_calibration(ports, None)
    assert (report.overall.n, report.overall.sources) == (4, 3)
    assert report.overall.mean_absolute_error == 1.0
    assert report.overall.mean_error == 0.5
    assert [g.key for g in report.by_kind] == ["consensus", "none", "reference_model"]
    assert [g.key for g in report.by_model] == ["a", "b"]
    unit = fakes_of(ports).units[-1]
    assert unit.read_only and not unit.committed


async def test_one_source_type_only() -> None:
    report = await quality_calibration(seeded(), "interview")
    assert report.source_type == "interview"
    assert (report.overall.n, report.overall.sources) == (3, 2)
    assert report.overall.mean_absolute_error == pytest.approx(2 / 3)
    assert report.overall.spearman == pytest.approx(1.0)


async def test_an_unknown_source_type_is_refused_under_source_type() -> None:
    ports = seeded()
    with pytest.raises(InvalidInput) as refused:
        await quality_calibration(ports, "radio")
    assert [issue.path for issue in refused.value.issues] == [("sourceType",)]
    assert "calibration.pairs" not in fakes_of(ports).call_names()


async def test_too_few_pairs_say_so() -> None:
    report = await quality_calibration(seeded(), "podcast")
    assert report.overall.n == 1
    assert report.overall.spearman is None
    assert report.summary.startswith("Not enough evidence yet")
