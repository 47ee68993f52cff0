"""Optimization reports (domain/services/reports.py) against in-memory fakes: the use cases'
own branching and inputs; the sweet spot itself is domain.optimizer's (tests/unit/domain)."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal

import pytest

from domain.errors import InvalidInput, NotFound
from domain.services import reports
from domain.settings_keys import FRAGMENT_COST_LIMIT, QUALITY_THRESHOLDS, REFERENCE_MODEL
from tests.support.fakes import NOW, candidate, fakes_of, make_ports, performance_record


def paths(exc: InvalidInput) -> list[tuple[str, ...]]:
    return [issue.path for issue in exc.issues]


# --- comparison -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", [("sourceId",), ("input", "id")])
async def test_comparison_refuses_an_unknown_source_under_the_given_path(
        path: tuple[str, ...]) -> None:
    # Given
    ports = make_ports()
    # When
    with pytest.raises(NotFound) as caught:
        await reports.comparison(ports, 9, *([path] if path != ("sourceId",) else []))
    # Then
    assert (caught.value.kind, caught.value.path) == ("Source", path)


@pytest.mark.parametrize(("kinds", "expected"), [
    (["consensus", "reference_model", "verified"], ("verified", None)),
    (["consensus", "reference_model"], ("reference_model", "gold")),
    (["consensus"], ("consensus", None)),
    (["none"], ("none", None)),
])
async def test_comparison_names_the_strongest_reference_among_its_rows(
        kinds: list[str], expected: tuple[str, str | None]) -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    source = fake.add_source()
    fake.state.records[source.id or 0] = [
        performance_record(source.id or 0, f"m{i}", 7.0, run_id=i, reference_kind=kind,
                           reference_model="gold" if kind == "reference_model" else None)
        for i, kind in enumerate(kinds)]
    batch = fake.add_batch()
    fake.add_run(batch.id or 0, source.id or 0, status="processing")
    fake.add_run(batch.id or 0, source.id or 0, status="completed")
    # When
    found = await reports.comparison(ports, source.id or 0)
    # Then
    assert (found.reference.kind, found.reference.model) == expected
    assert (found.source_id, found.source_type, found.pending_runs) == \
        (source.id, "interview", 1)
    assert [e.model for e in found.entries] == [f"m{i}" for i in range(len(kinds))]
    assert [u.read_only for u in fake.units] == [True]


# --- sweet_spot_report ------------------------------------------------------------------------


@pytest.mark.parametrize(("source_id", "source_type"), [(None, None), (1, "interview")])
async def test_sweet_spot_report_requires_exactly_one_of_source_id_and_source_type(
        source_id: int | None, source_type: str | None) -> None:
    # Given
    ports = make_ports()
    # When
    with pytest.raises(InvalidInput) as caught:
        await reports.sweet_spot_report(ports, source_id=source_id, source_type=source_type,
                                        threshold=None, budget=None)
    # Then
    assert paths(caught.value) == [("sourceId",), ("sourceType",)]
    assert fakes_of(ports).units == []


@pytest.mark.parametrize("threshold", [-0.1, 10.5, math.nan, math.inf])
async def test_sweet_spot_report_refuses_a_threshold_outside_zero_to_ten(
        threshold: float) -> None:
    # Given
    ports = make_ports()
    # When
    with pytest.raises(InvalidInput) as caught:
        await reports.sweet_spot_report(ports, source_id=None, source_type="podcast",
                                        threshold=threshold, budget=None)
    # Then
    assert paths(caught.value) == [("qualityThreshold",)]


@pytest.mark.parametrize("budget", ["-0.01", "1000000.01", "NaN", "Infinity"])
async def test_sweet_spot_report_refuses_a_budget_per_fragment_outside_its_range(
        budget: str) -> None:
    # Given
    ports = make_ports()
    # When
    with pytest.raises(InvalidInput) as caught:
        await reports.sweet_spot_report(ports, source_id=None, source_type="podcast",
                                        threshold=None, budget=Decimal(budget))
    # Then
    assert paths(caught.value) == [("budgetPerFragment",)]


async def test_sweet_spot_report_refuses_an_unknown_source() -> None:
    # Given
    ports = make_ports()
    # When
    with pytest.raises(NotFound) as caught:
        await reports.sweet_spot_report(ports, source_id=3, source_type=None, threshold=None,
                                        budget=None)
    # Then
    assert (caught.value.kind, caught.value.key, caught.value.path) == \
        ("Source", "3", ("sourceId",))


async def test_sweet_spot_report_of_a_source_uses_its_type_and_the_configured_limits() -> None:
    # Given
    ports = make_ports(fragment_cost_limit_usd=Decimal("0.5"))
    fake = fakes_of(ports)
    source = fake.add_source(source_type="podcast")
    fake.add_model("cheap", price=("1", "1"))
    fake.add_model("dear", price=("5", "5"))
    fake.state.settings[QUALITY_THRESHOLDS] = {"podcast": 6.0}
    fake.state.pooled_by_source[source.id or 0] = [candidate("cheap", 6.5, cost="1"),
                                                   candidate("dear", 9.0, cost="5")]
    # When
    report = await reports.sweet_spot_report(ports, source_id=source.id, source_type=None,
                                             threshold=None, budget=None)
    # Then
    assert (report.source_id, report.source_type, report.threshold,
            report.budget_per_fragment, report.reference_model) == \
        (source.id, "podcast", 6.0, Decimal("0.5"), "dear")
    assert (report.result.model, report.result.qualified) == ("cheap", True)
    assert fake.called("performance.pooled") == [
        ((), {"source_id": source.id, "source_type": None, "models": None})]
    assert [u.read_only for u in fake.units] == [True]


async def test_sweet_spot_report_of_a_type_takes_the_requests_threshold_and_budget() -> None:
    # Given
    ports = make_ports(fragment_cost_limit_usd=Decimal("100"))
    fake = fakes_of(ports)
    fake.state.pooled_by_type["article"] = [candidate("cheap", 6.5, cost="1"),
                                            candidate("dear", 9.0, cost="5")]
    # When
    report = await reports.sweet_spot_report(ports, source_id=None, source_type="article",
                                             threshold=8.0, budget=Decimal("0.01"))
    # Then
    assert (report.source_id, report.source_type, report.threshold,
            report.budget_per_fragment) == (None, "article", 8.0, Decimal("0.01"))
    assert (report.result.model, report.result.qualified) == ("dear", False)
    assert "for article sources" in report.result.reason
    assert fake.called("performance.pooled") == [
        ((), {"source_id": None, "source_type": "article", "models": None})]


@pytest.mark.parametrize(("designated", "prices", "expected"), [
    ("b", {"a": ("9", "9"), "b": ("1", "1")}, "b"),          # designated and measured
    ("zzz", {"a": ("9", "9"), "b": ("1", "1")}, "a"),        # else the dearest by price
    (None, {"a": ("1", "1"), "b": ("1", "1")}, "a"),         # a price tie: highest cost/frag
    (None, {"a": None, "b": None}, "a"),                     # no price: highest cost/frag
])
async def test_sweet_spot_report_names_the_reference_it_used(
        designated: str | None, prices: dict[str, tuple[str, str] | None],
        expected: str) -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    for name, price in prices.items():
        fake.add_model(name, price=price)
    if designated:
        fake.state.settings[REFERENCE_MODEL] = designated
    fake.state.pooled_by_type["email"] = [candidate("a", 9.0, cost="5"),
                                          candidate("b", 8.0, cost="1")]
    # When
    report = await reports.sweet_spot_report(ports, source_id=None, source_type="email",
                                             threshold=None, budget=None)
    # Then
    assert report.reference_model == expected


# --- savings_report -------------------------------------------------------------------------


async def test_savings_report_has_one_line_per_measured_source_type() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    fake.add_model("cheap", price=("1", "1"))
    fake.add_model("dear", price=("5", "5"))
    fake.state.pooled_by_type["interview"] = [candidate("cheap", 9.0, cost="1"),
                                              candidate("dear", 9.5, cost="4")]
    fake.state.pooled_by_type["podcast"] = [candidate("cheap", 5.0, cost="1")]
    # When
    lines = await reports.savings_report(ports)
    # Then
    interview, podcast = lines
    assert (interview.source_type, interview.threshold, interview.qualified) == \
        ("interview", 8.5, True)
    assert interview.reference is not None and interview.optimized is not None
    assert (interview.reference.model, interview.optimized.model) == ("dear", "cheap")
    assert interview.row is not None and interview.row.cost_saving_pct == Decimal("75.00")
    assert podcast.reference is not None
    assert (podcast.qualified, podcast.reference.model, podcast.optimized, podcast.row) == \
        (False, "cheap", None, None)
    table = reports.savings_table(lines)
    assert "| Interview | dear | cheap | −5.3% (not paired) | 75.0% | 1 | 9.00–9.00 |" in table
    assert "| Podcast | cheap | none qualifies | n/a | n/a | 1 | n/a |" in table
    assert [u.read_only for u in fake.units] == [True]


async def test_savings_line_without_a_measured_reference_says_there_is_nothing_to_save() -> None:
    # Given: the designated reference was never measured, and no model is priced
    ports = make_ports(quality_reference_model="gold")
    fake = fakes_of(ports)
    fake.state.pooled_by_type["article"] = [candidate("x", 8.0, grounded=0)]
    # When
    [line] = await reports.savings_report(ports)
    # Then
    assert (line.reference, line.row) == (None, None)
    assert "no reference model was measured" in line.reason


# --- optimization_report --------------------------------------------------------------------


async def test_optimization_report_refuses_an_unknown_source_under_the_given_path() -> None:
    # Given
    ports = make_ports()
    # When
    with pytest.raises(NotFound) as caught:
        await reports.optimization_report(ports, 12, ("source_id",))
    # Then
    assert (caught.value.kind, caught.value.key, caught.value.path) == \
        ("Source", "12", ("source_id",))


async def test_optimization_report_recommends_the_sweet_spot_with_its_saving() -> None:
    # Given: two runs of cheap (the latest counts) and one of dear
    ports = make_ports()
    fake = fakes_of(ports)
    source = fake.add_source()
    fake.add_model("cheap", price=("1", "1"))
    fake.add_model("dear", price=("5", "5"))
    fake.state.records[source.id or 0] = [
        performance_record(source.id or 0, "dear", 9.5, run_id=1, cost="4"),
        performance_record(source.id or 0, "cheap", 9.0, run_id=2, cost="1"),
        performance_record(source.id or 0, "cheap", 5.0, run_id=3, cost="1",
                           finished_at=NOW - timedelta(days=1)),
    ]
    # When
    report = await reports.optimization_report(ports, source.id or 0)
    # Then
    assert [e.run_id for e in report.comparison.entries] == [1, 2, 3]
    assert {c.model: c.quality for c in report.sweet_spot.candidates} == \
        {"cheap": 9.0, "dear": 9.5}
    assert report.sweet_spot.threshold == 8.5
    assert report.savings is not None and report.savings.row is not None
    assert report.recommendation.startswith("Use cheap: ")
    assert report.recommendation.endswith(
        "That saves 75.00% per grounded fragment against dear, with quality "
        "−5.3% (not paired).")


async def test_optimization_report_without_measurements_has_no_saving_and_says_so() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    source = fake.add_source()
    fake.state.settings[FRAGMENT_COST_LIMIT] = "0.1"
    # When
    report = await reports.optimization_report(ports, source.id or 0)
    # Then
    assert report.savings is None
    assert report.sweet_spot.budget_per_fragment == Decimal("0.1")
    assert report.recommendation == "No model qualifies yet: no model has been measured."
