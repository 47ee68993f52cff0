"""Strategy plans in motion (domain/services/strategies.py) against in-memory fakes: the use
case's own branching; the choices themselves are domain.strategy's (tests/unit/domain)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from domain.evaluation import PolicyDefaults
from domain.ports import Ports
from domain.services import strategies
from domain.strategy import Plan
from tests.support.fakes import FakeUnitOfWorkFactory, candidate, fakes_of, make_ports

GROUP = "g-1"


def world(strategy: str = "progressive"
          ) -> tuple[Ports, FakeUnitOfWorkFactory, Plan, list[int]]:
    """Three interview sources, a sample of two, cheap < mid < dear in the catalog."""
    ports = make_ports()
    fake = fakes_of(ports)
    ids = [fake.add_source().id or 0 for _ in range(3)]
    for name, price in (("cheap", ("0.1", "0.1")), ("mid", ("1", "1")), ("dear", ("9", "9"))):
        fake.add_model(name, price=price)
    plan = Plan(strategy, "interview", tuple(ids), tuple(ids[:2]),  # type: ignore[arg-type]
                ("cheap", "mid", "dear"), "dear", 8.0)
    return ports, fake, plan, ids


def decisions(fake: FakeUnitOfWorkFactory, batch_id: int) -> list[dict[str, Any]]:
    return fake.state.batches[batch_id].decisions


# --- advance_strategy: nothing to do -------------------------------------------------------


async def test_advance_strategy_does_nothing_for_an_unknown_batch() -> None:
    # Given
    ports, fake, _, _ = world()
    # When
    created = await strategies.advance_strategy(ports, 404)
    # Then
    assert created == []
    assert "strategies.lock_plan" not in fake.call_names()
    assert fake.dispatched == []


@pytest.mark.parametrize(("strategy", "config"), [
    (None, {}),
    ("progressive", {}),
    (None, {"plan": {}, "step": 0}),
])
async def test_advance_strategy_does_nothing_for_a_batch_without_a_plan(
        strategy: str | None, config: dict[str, Any]) -> None:
    # Given
    ports, fake, _, _ = world()
    batch = fake.add_batch("cheap", status="completed", strategy=strategy, config=config)
    # When
    created = await strategies.advance_strategy(ports, batch.id or 0)
    # Then
    assert created == []
    assert "strategies.lock_plan" not in fake.call_names()
    assert decisions(fake, batch.id or 0) == []


async def test_advance_strategy_does_nothing_after_the_final_step() -> None:
    # Given
    ports, fake, plan, _ = world()
    batch = fake.add_plan_batch(plan, 2, "mid", final=True, group_id=GROUP)
    # When
    created = await strategies.advance_strategy(ports, batch.id or 0)
    # Then
    assert created == []
    assert "strategies.lock_plan" not in fake.call_names()


@pytest.mark.parametrize("status", ["queued", "running"])
async def test_advance_strategy_waits_while_a_sibling_is_still_running(status: str) -> None:
    # Given: conservative tests two models at once; one batch is still going
    ports, fake, plan, _ = world("conservative")
    done = fake.add_plan_batch(plan, 0, "cheap", group_id=GROUP)
    fake.add_plan_batch(plan, 0, "mid", status=status, group_id=GROUP)
    # When
    created = await strategies.advance_strategy(ports, done.id or 0)
    # Then
    assert created == []
    assert fake.called("strategies.lock_plan") == [((GROUP, "interview"), {})]
    assert "strategies.record_decision" not in fake.call_names()
    assert len(fake.state.batches) == 2


async def test_advance_strategy_does_nothing_when_the_step_was_already_decided() -> None:
    # Given
    ports, fake, plan, _ = world()
    batch = fake.add_plan_batch(plan, 0, "cheap", group_id=GROUP,
                                decisions=[{"kind": "decided", "afterStep": 0}])
    # When
    created = await strategies.advance_strategy(ports, batch.id or 0)
    # Then
    assert created == []
    assert len(fake.state.batches) == 1
    assert "strategies.plan_samples" not in fake.call_names()


async def test_advance_strategy_takes_each_step_once() -> None:
    # Given
    ports, fake, plan, ids = world()
    batch = fake.add_plan_batch(plan, 0, "cheap", group_id=GROUP)
    fake.state.plan_samples[(GROUP, "interview")] = (
        [candidate("cheap", 6.0)], {"cheap": frozenset(ids[:2])})
    # When
    first = await strategies.advance_strategy(ports, batch.id or 0)
    second = await strategies.advance_strategy(ports, batch.id or 0)
    # Then
    assert len(first) == 1
    assert second == []
    assert len(fake.state.batches) == 2


# --- advance_strategy: the next step --------------------------------------------------------


async def test_advance_strategy_tests_the_next_model_and_dispatches_its_jobs_after_commit(
        ) -> None:
    # Given: cheap scored 6 < 8 on the sample
    ports, fake, plan, ids = world()
    step0 = fake.add_plan_batch(plan, 0, "cheap", group_id=GROUP, budget_usd=Decimal(9))
    fake.state.plan_samples[(GROUP, "interview")] = (
        [candidate("cheap", 6.0, low=5.0, high=7.0, cost="0.5", grounded=20)],
        {"cheap": frozenset(ids[:2])})
    # When
    created = await strategies.advance_strategy(ports, step0.id or 0)
    # Then
    [new] = [fake.state.batches[i] for i in created]
    assert (new.model_name, new.group_id, new.strategy, new.budget_usd) == \
        ("mid", GROUP, "progressive", Decimal(9))
    assert (new.config["step"], new.config["final"], new.config["plan"]) == \
        (1, False, plan.to_json())
    assert [r.source_id for r in fake.state.runs.values()] == ids[:2]
    [record] = decisions(fake, step0.id or 0)
    assert {k: record[k] for k in ("kind", "afterStep", "at", "action", "models", "sourceIds",
                                   "final", "batchIds", "error", "strategy", "sourceType",
                                   "threshold")} == {
        "kind": "decided", "afterStep": 0, "at": "2025-01-15T12:00:00+00:00",
        "action": "test", "models": ["mid"], "sourceIds": ids[:2], "final": False,
        "batchIds": created, "error": None, "strategy": "progressive",
        "sourceType": "interview", "threshold": 8.0}
    assert record["measured"] == {"cheap": {
        "quality": 6.0, "low": 5.0, "high": 7.0, "provisional": False, "costUsd": "0.5",
        "groundedFragments": 20, "costPerFragment": "0.0250000000", "samples": 1}}
    assert new.decisions[0]["kind"] == "started" and new.decisions[0]["step"] == 1
    assert fake.retrying_calls == 1
    assert fake.dispatched == list(fake.state.jobs)
    assert fake.timeline[-2:] == [("commit", 0), ("dispatch", list(fake.state.jobs))]


async def test_advance_strategy_uses_the_model_that_met_the_bar_on_the_sources_left() -> None:
    # Given: mid met the bar on the sample, which it already completed
    ports, fake, plan, ids = world()
    fake.add_plan_batch(plan, 0, "cheap", group_id=GROUP,
                        decisions=[{"kind": "decided", "afterStep": 0}])
    step1 = fake.add_plan_batch(plan, 1, "mid", group_id=GROUP)
    fake.state.plan_samples[(GROUP, "interview")] = (
        [candidate("cheap", 6.0), candidate("mid", 8.5)],
        {"cheap": frozenset(ids[:2]), "mid": frozenset(ids[:2])})
    # When
    created = await strategies.advance_strategy(ports, step1.id or 0)
    # Then
    [new] = [fake.state.batches[i] for i in created]
    assert (new.model_name, new.config["step"], new.config["final"]) == ("mid", 2, True)
    assert [r.source_id for r in fake.state.runs.values()] == [ids[2]]
    [record] = decisions(fake, step1.id or 0)
    assert (record["action"], record["chosen"], record["afterStep"]) == ("use", "mid", 1)


async def test_advance_strategy_records_a_final_step_with_nothing_left_to_run() -> None:
    # Given: the plan's only sources are the sample, already completed by the winner
    ports, fake, _, ids = world()
    plan = Plan("progressive", "interview", tuple(ids[:2]), tuple(ids[:2]),
                ("cheap", "mid"), "mid", 8.0)
    step0 = fake.add_plan_batch(plan, 0, "cheap", group_id=GROUP)
    fake.state.plan_samples[(GROUP, "interview")] = (
        [candidate("cheap", 9.0)], {"cheap": frozenset(ids[:2])})
    # When
    created = await strategies.advance_strategy(ports, step0.id or 0)
    # Then
    assert created == []
    [record] = decisions(fake, step0.id or 0)
    assert (record["action"], record["models"], record["final"], record["batchIds"]) == \
        ("use", [], True, [])
    assert fake.dispatched == []


async def test_advance_strategy_measures_sample_runs_left_unmeasured_first() -> None:
    # Given: a crash between a sample run's end and its measurement
    ports, fake, plan, ids = world()
    step0 = fake.add_plan_batch(plan, 0, "cheap", group_id=GROUP)
    fake.state.unmeasured_samples = {ids[1]}
    # When
    await strategies.advance_strategy(ports, step0.id or 0)
    # Then
    names = fake.call_names()
    assert fake.called("performance.measure") == [((ids[1], PolicyDefaults(5, None)), {})]
    assert names.index("performance.measure") < names.index("strategies.plan_samples")
    assert fake.state.measurements == {ids[1]: 1}


async def test_advance_strategy_stops_the_plan_when_a_sibling_was_cancelled() -> None:
    # Given
    ports, fake, plan, ids = world("conservative")
    a = fake.add_plan_batch(plan, 0, "cheap", group_id=GROUP)
    b = fake.add_plan_batch(plan, 0, "mid", status="cancelled", group_id=GROUP)
    fake.state.plan_samples[(GROUP, "interview")] = (
        [candidate("cheap", 9.0)], {"cheap": frozenset(ids[:2])})
    # When
    created = await strategies.advance_strategy(ports, a.id or 0)
    # Then
    assert created == []
    for batch_id in (a.id or 0, b.id or 0):
        [record] = decisions(fake, batch_id)
        assert (record["action"], record["final"], record["batchIds"], record["error"]) == \
            ("stop", True, [], None)
        assert "cancelled" in record["notes"][0]
        assert list(record["measured"]) == ["cheap"]
    assert len(fake.state.batches) == 2
    assert [u.committed for u in fake.units] == [True]


@pytest.mark.parametrize("obstacle", ["disabled", "busy", "unpriced under the batch budget"])
async def test_advance_strategy_records_why_the_next_step_cannot_run_and_stops(
        obstacle: str) -> None:
    # Given
    ports, fake, plan, ids = world()
    step0 = fake.add_plan_batch(plan, 0, "cheap", group_id=GROUP, budget_usd=Decimal(5))
    fake.state.plan_samples[(GROUP, "interview")] = (
        [candidate("cheap", 6.0)], {"cheap": frozenset(ids[:2])})
    if obstacle == "disabled":
        fake.state.models["mid"].enabled = False
    elif obstacle == "busy":
        other = fake.add_batch("mid", status="running", group_id="other")
        fake.add_run(other.id or 0, ids[0], "mid", status="processing")
    else:
        fake.add_model("mid", price=None)
    batches_before = set(fake.state.batches)
    # When
    created = await strategies.advance_strategy(ports, step0.id or 0)
    # Then
    assert created == []
    assert set(fake.state.batches) == batches_before
    [record] = decisions(fake, step0.id or 0)
    assert (record["action"], record["models"], record["batchIds"]) == ("test", ["mid"], [])
    assert record["error"]
    assert [u.committed for u in fake.units] == [True]
    assert fake.dispatched == []


async def test_advance_strategy_consults_history_only_for_the_aggressive_strategy() -> None:
    # Given
    ports, fake, aggressive, ids = world("aggressive")
    fake.add_plan_batch(aggressive, 0, "cheap", group_id="agg")
    progressive = Plan("progressive", "podcast", tuple(ids), tuple(ids[:1]),
                       ("cheap", "mid"), "mid", 7.0)
    fake.add_plan_batch(progressive, 0, "cheap", group_id="prog")
    fake.state.pooled_by_type["interview"] = [candidate("mid", 9.0, cost="0.1")]
    # When
    created = await strategies.advance_strategy(ports, 1)
    await strategies.advance_strategy(ports, 2)
    # Then
    assert fake.called("performance.pooled") == [
        ((), {"source_id": None, "source_type": "interview",
              "models": ["cheap", "mid", "dear"]})]
    assert [fake.state.batches[i].model_name for i in created] == ["mid"]


async def test_advance_strategy_retried_after_a_conflict_dispatches_only_what_committed() -> None:
    # Given: the first attempt fails to commit with a serialisation failure
    ports, fake, plan, ids = world()
    step0 = fake.add_plan_batch(plan, 0, "cheap", group_id=GROUP)
    fake.state.plan_samples[(GROUP, "interview")] = (
        [candidate("cheap", 6.0)], {"cheap": frozenset(ids[:2])})
    fake.retry_conflicts = 1
    # When
    created = await strategies.advance_strategy(ports, step0.id or 0)
    # Then
    assert [(u.committed, u.rolled_back) for u in fake.units] == [(False, True), (True, False)]
    assert list(fake.state.batches) == [step0.id, *created]
    assert len(decisions(fake, step0.id or 0)) == 1
    assert fake.dispatched == fake.units[1].handed == list(fake.state.jobs)
    assert set(fake.units[0].handed).isdisjoint(fake.dispatched)


# --- advance_stalled_strategies --------------------------------------------------------------


async def test_advance_stalled_strategies_advances_each_stalled_step_and_counts_them() -> None:
    # Given: two plans with an ended, undecided step; one decided; one final
    ports, fake, plan, ids = world()
    a = fake.add_plan_batch(plan, 0, "cheap", group_id="g-a")
    b = fake.add_plan_batch(plan, 0, "cheap", group_id="g-b")
    fake.add_plan_batch(plan, 0, "cheap", group_id="g-c",
                        decisions=[{"kind": "decided", "afterStep": 0}])
    fake.add_plan_batch(plan, 2, "mid", group_id="g-d", final=True)
    for group in ("g-a", "g-b"):
        fake.state.plan_samples[(group, "interview")] = (
            [candidate("cheap", 6.0)], {"cheap": frozenset(ids[:2])})
    # When
    count = await strategies.advance_stalled_strategies(ports, limit=10)
    # Then
    assert count == 2
    assert fake.units[0].read_only
    assert fake.called("strategies.stalled_steps") == [((10,), {})]
    assert [len(decisions(fake, x.id or 0)) for x in (a, b)] == [1, 1]
    assert fake.retrying_calls == 2


async def test_advance_stalled_strategies_keeps_going_when_one_plan_fails() -> None:
    # Given
    ports, fake, plan, ids = world()
    a = fake.add_plan_batch(plan, 0, "cheap", group_id="g-a")
    b = fake.add_plan_batch(plan, 0, "cheap", group_id="g-b")
    fake.state.plan_samples[("g-b", "interview")] = (
        [candidate("cheap", 6.0)], {"cheap": frozenset(ids[:2])})
    fake.fail("strategies.plan_samples", RuntimeError("database went away"),
              when=lambda group, *rest: group == "g-a")
    # When
    count = await strategies.advance_stalled_strategies(ports)
    # Then
    assert count == 2
    assert decisions(fake, a.id or 0) == []
    assert len(decisions(fake, b.id or 0)) == 1
