"""Calibration of provisional scores against verified ones, checked against hand computations."""

from __future__ import annotations

import math

import pytest

from domain.calibration import (
    Calibration,
    CalibrationPair,
    average_ranks,
    calibrate,
    calibration_report,
    spearman,
    summary,
)


def test_errors_and_a_perfect_order() -> None:
    # errors 1, 0, -1, 2 → MAE 4/4 = 1.0, bias 2/4 = 0.5; both sides in the same order → ρ = 1
    c = calibrate([(7, 6), (5, 5), (8, 9), (4, 2)], sources=2)
    assert (c.n, c.sources, c.mean_absolute_error, c.mean_error) == (4, 2, 1.0, 0.5)
    assert c.spearman == pytest.approx(1.0)
    assert c.enough


def test_a_reversed_order_is_minus_one() -> None:
    assert spearman([(1, 3), (2, 2), (3, 1)]) == pytest.approx(-1.0)


def test_ties_take_the_average_rank() -> None:
    assert average_ranks([1, 2, 2, 3]) == [1.0, 2.5, 2.5, 4.0]
    assert average_ranks([5, 5, 5]) == [2.0, 2.0, 2.0]
    assert average_ranks([3, 1, 2]) == [3.0, 1.0, 2.0]
    # ranks p = 1, 2.5, 2.5, 4 and v = 1, 3, 2, 4 (means 2.5):
    # Σdp·dv = 2.25 + 0 + 0 + 2.25 = 4.5, Σdp² = 4.5, Σdv² = 5 → ρ = 4.5 / √22.5 = 3 / √10
    rho = spearman([(1, 1), (2, 3), (2, 2), (3, 4)])
    assert rho == pytest.approx(3 / math.sqrt(10))


def test_a_rank_correlation_needs_three_pairs_and_variance() -> None:
    assert spearman([(1, 2), (2, 3)]) is None
    assert spearman([(1, 5), (2, 5), (3, 5)]) is None  # the verified side does not vary
    assert spearman([(4, 1), (4, 2), (4, 3)]) is None
    two = calibrate([(6, 4), (3, 4)])
    assert (two.n, two.sources, two.mean_absolute_error, two.mean_error, two.spearman) == \
        (2, 2, 1.5, 0.5, None)


def test_no_pairs_leave_everything_undefined() -> None:
    assert calibrate([]) == Calibration(0, 0, None, None, None)


def test_scores_must_be_finite() -> None:
    with pytest.raises(ValueError, match="finite"):
        calibrate([(math.nan, 1.0)])


def pair(source: int, run: int, model: str, kind: str | None, p: float, v: float
         ) -> CalibrationPair:
    return CalibrationPair(source, run, model, kind, p, v)


def test_the_report_breaks_down_by_kind_and_model() -> None:
    pairs = [pair(1, 1, "a", "consensus", 7, 6), pair(1, 2, "b", "reference_model", 5, 5),
             pair(2, 3, "a", "consensus", 8, 9), pair(3, 4, "b", None, 4, 2)]
    report = calibration_report(pairs, "interview")
    assert report.source_type == "interview"
    assert (report.overall.n, report.overall.sources) == (4, 3)
    assert report.overall.mean_absolute_error == 1.0
    kinds = {g.key: g.calibration for g in report.by_kind}
    assert list(kinds) == ["consensus", "reference_model", "unknown"]
    assert (kinds["consensus"].n, kinds["consensus"].sources,
            kinds["consensus"].mean_absolute_error, kinds["consensus"].mean_error) == \
        (2, 2, 1.0, 0.0)
    models = {g.key: g.calibration for g in report.by_model}
    assert (models["b"].n, models["b"].mean_absolute_error, models["b"].mean_error) == \
        (2, 1.0, 1.0)
    assert report.summary == ("Over 4 runs on 3 sources, provisional scores were off by "
                              "1.00 points on average (rank correlation 1.00).")


def test_the_summary_says_when_there_is_not_enough_evidence() -> None:
    assert summary(calibrate([])) == (
        "Not enough evidence yet: no run has been scored both before and after a human "
        "reference existed; at least 3 are needed.")
    assert summary(calibrate([(1, 2)], sources=1)) == (
        "Not enough evidence yet: only 1 run on 1 source has been scored both before and "
        "after a human reference existed; at least 3 are needed.")
    assert summary(calibrate([(1, 2), (2, 2)], sources=1)).startswith(
        "Not enough evidence yet: only 2 runs on 1 source have been")


def test_the_summary_names_an_undefined_correlation() -> None:
    assert summary(calibrate([(1, 5), (2, 5), (3, 5)], sources=1)) == (
        "Over 3 runs on 1 source, provisional scores were off by 3.00 points on average "
        "(rank correlation undefined: the scores do not vary).")
