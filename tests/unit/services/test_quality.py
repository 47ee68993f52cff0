"""Quality use cases (domain/services/quality.py) against in-memory fakes."""

from __future__ import annotations

import math
from typing import Any

import pytest

from domain.errors import InvalidInput, NotFound
from domain.evaluation import PolicyDefaults
from domain.quality import QualityWeights
from domain.services import quality
from domain.services.quality import ThresholdChange
from domain.settings_keys import MIN_VERIFIED, QUALITY_THRESHOLDS, QUALITY_WEIGHTS, REFERENCE_MODEL
from domain.strategy import Plan
from tests.support.fakes import FakeUnitOfWorkFactory, candidate, fakes_of, make_ports

WEIGHTS = {"f1": 0.5, "grounded": 0.2, "miu": 0.1, "coverage": 0.1, "relevance": 0.1}
DEFAULT_WEIGHTS = {"f1": 0.4, "grounded": 0.25, "miu": 0.15, "coverage": 0.1, "relevance": 0.1}


def paths(exc: InvalidInput) -> list[tuple[str, ...]]:
    return [issue.path for issue in exc.issues]


def measured(fake: FakeUnitOfWorkFactory) -> list[int]:
    return [args[0] for args, _ in fake.called("performance.measure")]


# --- measuring ----------------------------------------------------------------------------


async def test_recompute_source_measures_with_the_settings_defaults_and_commits() -> None:
    # Given
    ports = make_ports(quality_min_verified_fragments=3, quality_reference_model="gold")
    fake = fakes_of(ports)
    fake.state.runs_per_source[4] = 3
    # When
    runs = await quality.recompute_source(ports, 4)
    # Then
    assert runs == 3
    assert fake.called("performance.measure") == [((4, PolicyDefaults(3, "gold")), {})]
    assert fake.state.measurements == {4: 1}
    assert [u.committed for u in fake.units] == [True]


async def test_recompute_all_measures_every_measured_source_each_in_its_own_unit() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    fake.state.measured_sources = [3, 1, 2]
    # When
    count = await quality.recompute_all(ports)
    # Then
    assert count == 3
    assert measured(fake) == [1, 2, 3]
    assert [(u.read_only, u.committed) for u in fake.units] == \
        [(True, False), (False, True), (False, True), (False, True)]


async def test_run_finished_with_an_unknown_run_does_nothing() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    # When
    await quality.run_finished(ports, 99, "completed")
    # Then
    assert measured(fake) == []
    assert fake.retrying_calls == 0
    assert [u.read_only for u in fake.units] == [True]


async def test_run_finished_completed_measures_its_source_then_advances_its_plan() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    source = fake.add_source()
    fake.add_model("cheap")
    fake.add_model("dear", price=("5", "5"))
    plan = Plan("progressive", "interview", (source.id or 0,), (source.id or 0,),
                ("cheap", "dear"), "dear", 8.0)
    batch = fake.add_plan_batch(plan, 0, "cheap")
    run = fake.add_run(batch.id or 0, source.id or 0, "cheap", status="completed")
    fake.state.plan_samples[("group", "interview")] = (
        [candidate("cheap", 9.0)], {"cheap": frozenset({source.id or 0})})
    # When
    await quality.run_finished(ports, run.id or 0, "completed")
    # Then
    assert measured(fake) == [source.id]
    names = fake.call_names()
    assert names.index("performance.measure") < names.index("strategies.lock_plan")
    assert fake.state.batches[batch.id or 0].decisions[0]["afterStep"] == 0


@pytest.mark.parametrize("status", ["failed", "stopped_cost_limit", "skipped"])
async def test_run_finished_otherwise_only_advances_the_plan(status: str) -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    source = fake.add_source()
    batch = fake.add_batch("cheap", status="failed")
    run = fake.add_run(batch.id or 0, source.id or 0, "cheap", status=status)
    # When
    await quality.run_finished(ports, run.id or 0, status)
    # Then
    assert measured(fake) == []
    assert fake.retrying_calls == 1
    assert fake.called("processing.batch") == [((batch.id,), {"lock": False})]


async def test_feed_verdicts_measures_each_source_once_and_survives_a_failure() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    fake.fail("performance.measure", RuntimeError("lock timeout"),
              when=lambda source_id, defaults: source_id == 2)
    # When
    await quality.feed_verdicts(ports, {3, 2, 1})
    # Then
    assert measured(fake) == [1, 2, 3]
    assert fake.state.measurements == {1: 1, 3: 1}
    assert [u.committed for u in fake.units] == [True, False, True]


async def test_catch_up_measures_the_unmeasured_sources_then_advances_stalled_plans() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    fake.state.unmeasured_sources = [5, 6]
    # When
    await quality.catch_up(ports)
    # Then
    assert measured(fake) == [5, 6]
    assert fake.called("performance.unmeasured_sources") == [((100,), {})]
    names = fake.call_names()
    assert names.index("strategies.stalled_steps") > names.index("performance.measure")
    assert fake.called("strategies.stalled_steps") == [((100,), {})]


# --- thresholds ---------------------------------------------------------------------------


async def test_set_quality_thresholds_merges_them_and_answers_every_stored_one() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    fake.state.settings[QUALITY_THRESHOLDS] = {"podcast": 7.0, "article": 6.0}
    # When
    stored = await quality.set_quality_thresholds(
        ports, [ThresholdChange("interview", 9.0), ThresholdChange("article", None)], "ops")
    # Then
    assert stored == {"podcast": 7.0, "interview": 9.0}
    assert fake.state.settings[QUALITY_THRESHOLDS] == stored
    assert fake.state.settings_by[QUALITY_THRESHOLDS] == "ops"
    assert [u.committed for u in fake.units] == [True]


async def test_set_quality_thresholds_refuses_an_empty_list() -> None:
    # Given
    ports = make_ports()
    # When
    with pytest.raises(InvalidInput) as caught:
        await quality.set_quality_thresholds(ports, [], "ops")
    # Then
    assert paths(caught.value) == [("input",)]
    assert fakes_of(ports).units == []


async def test_set_quality_thresholds_refuses_a_source_type_listed_twice_at_its_repeat() -> None:
    # Given
    ports = make_ports()
    items = [ThresholdChange("interview", 8.0), ThresholdChange("podcast", 7.0),
             ThresholdChange("interview", 9.0)]
    # When
    with pytest.raises(InvalidInput) as caught:
        await quality.set_quality_thresholds(ports, items, "ops")
    # Then
    assert paths(caught.value) == [("input", "2", "sourceType")]
    assert fakes_of(ports).state.settings == {}


@pytest.mark.parametrize("value", [-0.01, 10.01, math.nan, math.inf, -math.inf])
async def test_set_quality_thresholds_refuses_a_threshold_outside_zero_to_ten(
        value: float) -> None:
    # Given
    ports = make_ports()
    # When
    with pytest.raises(InvalidInput) as caught:
        await quality.set_quality_thresholds(
            ports, [ThresholdChange("podcast", 7.0), ThresholdChange("article", value)], "ops")
    # Then
    assert paths(caught.value) == [("input", "1", "threshold")]
    assert fakes_of(ports).units == []


@pytest.mark.parametrize("value", [0.0, 10.0])
async def test_set_quality_thresholds_accepts_the_bounds(value: float) -> None:
    # Given
    ports = make_ports()
    # When
    stored = await quality.set_quality_thresholds(ports, [ThresholdChange("email", value)],
                                                  "ops")
    # Then
    assert stored == {"email": value}


async def test_set_quality_thresholds_reports_every_issue_at_once() -> None:
    # Given
    ports = make_ports()
    items = [ThresholdChange("a", 11.0), ThresholdChange("a", -1.0)]
    # When
    with pytest.raises(InvalidInput) as caught:
        await quality.set_quality_thresholds(ports, items, "ops")
    # Then
    assert paths(caught.value) == [("input", "0", "threshold"), ("input", "1", "sourceType"),
                                   ("input", "1", "threshold")]


async def test_thresholds_and_quality_policy_read_without_committing() -> None:
    # Given
    ports = make_ports(quality_min_verified_fragments=7, quality_reference_model="env-ref")
    fake = fakes_of(ports)
    fake.state.settings[QUALITY_THRESHOLDS] = {"podcast": 6.5}
    fake.state.settings[QUALITY_WEIGHTS] = WEIGHTS
    # When
    stored = await quality.thresholds(ports)
    policy = await quality.quality_policy(ports)
    # Then
    assert stored == {"podcast": 6.5}
    assert (policy.weights, policy.min_verified, policy.reference_model) == \
        (QualityWeights(**WEIGHTS), 7, "env-ref")
    assert [u.read_only for u in fake.units] == [True, True]


# --- set_quality_settings ---------------------------------------------------------------------


async def test_set_quality_settings_stores_each_setting_and_remeasures_every_measured_source(
        ) -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    fake.add_model("gold")
    fake.state.measured_sources = [2, 1]
    # When
    count = await quality.set_quality_settings(ports, "ops", weights=WEIGHTS,
                                               reference_model=" gold ",
                                               min_verified_fragments=12)
    # Then
    assert count == 2
    assert {k: fake.state.settings[k] for k in (QUALITY_WEIGHTS, REFERENCE_MODEL,
                                                MIN_VERIFIED)} == \
        {QUALITY_WEIGHTS: WEIGHTS, REFERENCE_MODEL: "gold", MIN_VERIFIED: 12}
    assert set(fake.state.settings_by.values()) == {"ops"}
    assert measured(fake) == [1, 2]
    assert fake.units[0].committed
    assert fake.timeline.index(("commit", 0)) < fake.timeline.index(("begin", 1))


async def test_set_quality_settings_leaves_out_the_settings_not_named() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    fake.state.settings[REFERENCE_MODEL] = "kept"
    # When
    await quality.set_quality_settings(ports, "ops", min_verified_fragments=1)
    # Then
    assert fake.state.settings == {REFERENCE_MODEL: "kept", MIN_VERIFIED: 1}


async def test_set_quality_settings_null_weights_restore_the_defaults_and_blank_clears_the_ref(
        ) -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    fake.state.settings.update({QUALITY_WEIGHTS: WEIGHTS, REFERENCE_MODEL: "gold"})
    # When
    await quality.set_quality_settings(ports, "ops", weights=None, reference_model="  ")
    # Then
    assert fake.state.settings[QUALITY_WEIGHTS] == DEFAULT_WEIGHTS
    assert fake.state.settings[REFERENCE_MODEL] is None
    assert "catalog.require" not in fake.call_names()


async def test_set_quality_settings_refuses_a_request_naming_no_setting() -> None:
    # Given
    ports = make_ports()
    # When
    with pytest.raises(InvalidInput) as caught:
        await quality.set_quality_settings(ports, "ops")
    # Then
    assert paths(caught.value) == [("input",)]
    assert fakes_of(ports).units == []


@pytest.mark.parametrize("minimum", [None, 0, -1, 10_001])
async def test_set_quality_settings_refuses_a_verified_minimum_outside_its_range(
        minimum: int | None) -> None:
    # Given
    ports = make_ports()
    fakes_of(ports).state.measured_sources = [1]
    # When
    with pytest.raises(InvalidInput) as caught:
        await quality.set_quality_settings(ports, "ops", weights=WEIGHTS,
                                           min_verified_fragments=minimum)
    # Then
    assert paths(caught.value) == [("input", "minVerifiedFragments")]
    assert fakes_of(ports).units == []


@pytest.mark.parametrize("weights", [
    {**WEIGHTS, "f1": -0.1},
    {**WEIGHTS, "miu": math.nan},
    {"f1": 1.0, "grounded": 0.0, "miu": 0.0, "coverage": 0.0, "relevance": 0.0},
])
async def test_set_quality_settings_refuses_invalid_weights_writing_and_measuring_nothing(
        weights: dict[str, float]) -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    fake.state.measured_sources = [1]
    # When
    with pytest.raises(InvalidInput) as caught:
        await quality.set_quality_settings(ports, "ops", weights=weights,
                                           min_verified_fragments=3)
    # Then
    assert paths(caught.value) == [("input", "weights")]
    assert fake.state.settings == {}
    assert [u.rolled_back for u in fake.units] == [True]
    assert measured(fake) == []


@pytest.mark.parametrize("name", ["-bad", "has space", "x" * 101])
async def test_set_quality_settings_refuses_a_reference_that_is_no_model_name(
        name: str) -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    # When
    with pytest.raises(InvalidInput) as caught:
        await quality.set_quality_settings(ports, "ops", weights=WEIGHTS,
                                           reference_model=name)
    # Then
    assert paths(caught.value) == [("input", "referenceModel")]
    assert fake.state.settings == {}  # the weights written first were rolled back
    assert measured(fake) == []


async def test_set_quality_settings_refuses_a_reference_missing_from_the_catalog() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    fake.state.measured_sources = [1]
    # When
    with pytest.raises(NotFound) as caught:
        await quality.set_quality_settings(ports, "ops", weights=WEIGHTS,
                                           reference_model="ghost", min_verified_fragments=2)
    # Then
    assert (caught.value.kind, caught.value.key, caught.value.path) == \
        ("Model", "ghost", ("input", "referenceModel"))
    assert fake.state.settings == {}
    assert measured(fake) == []


async def test_set_quality_settings_accepts_the_verified_minimum_bounds() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    changes: list[Any] = []
    # When
    for minimum in (1, 10_000):
        await quality.set_quality_settings(ports, "ops", min_verified_fragments=minimum)
        changes.append(fake.state.settings[MIN_VERIFIED])
    # Then
    assert changes == [1, 10_000]
