"""Processing use cases (domain/services/processing.py, batches.py) against in-memory fakes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.errors import Conflict, InvalidInput, NotFound
from domain.prompt import PROMPT_VERSION, prompt_hash
from domain.services import processing
from domain.settings_keys import DAILY_BUDGET, FRAGMENT_COST_LIMIT
from domain.strategy import Plan
from tests.support.fakes import FakeUnitOfWorkFactory, candidate, fakes_of, make_ports


def paths(exc: InvalidInput) -> list[tuple[str, ...]]:
    return [issue.path for issue in exc.issues]


def catalog(fake: FakeUnitOfWorkFactory) -> None:
    """cheap < mid < dear by price; `off` disabled, `free` unpriced."""
    fake.add_model("cheap", price=("0.1", "0.2"))
    fake.add_model("mid", price=("1", "2"))
    fake.add_model("dear", price=("10", "20"), max_output_tokens=100_000,
                   context_window=200_000)
    fake.add_model("off", enabled=False)
    fake.add_model("free", price=None)


def nothing_written(fake: FakeUnitOfWorkFactory) -> None:
    assert fake.state.batches == {}
    assert fake.state.runs == {}
    assert fake.state.jobs == {}
    assert fake.dispatched == []


# --- start_processing: success ------------------------------------------------------------------


async def test_start_processing_creates_a_batch_per_model_and_dispatches_after_commit() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    catalog(fake)
    a, b = fake.add_source(), fake.add_source(extraction_priority="critical")
    # When
    started = await processing.start_processing(
        ports, source_ids=[a.id or 0, b.id or 0], model_names=["cheap", " mid "],
        strategy=None, budget_usd=Decimal(5))
    # Then
    batches = [fake.state.batches[i] for i in started.batch_ids]
    assert [x.model_name for x in batches] == ["cheap", "mid"]
    assert {x.group_id for x in batches} == {started.group_id}
    assert all(x.budget_usd == Decimal(5) and x.strategy is None for x in batches)
    runs = [(r.batch_id, r.source_id, r.status) for r in fake.state.runs.values()]
    assert runs == [(batches[0].id, a.id, "pending"), (batches[0].id, b.id, "pending"),
                    (batches[1].id, a.id, "pending"), (batches[1].id, b.id, "pending")]
    assert [j.priority for j in fake.state.jobs.values()] == [20, 50, 20, 50]
    assert all(j.max_attempts == 3 for j in fake.state.jobs.values())
    assert fake.dispatched == list(fake.state.jobs)
    assert fake.timeline == [("begin", 0), ("commit", 0), ("dispatch", list(fake.state.jobs))]


async def test_start_processing_freezes_the_config_snapshot_of_each_batch() -> None:
    # Given
    ports = make_ports(max_output_tokens=8000, chunk_max_tokens=900, chunk_overlap_tokens=50,
                       job_max_attempts=5)
    fake = fakes_of(ports)
    catalog(fake)
    source = fake.add_source()
    # When
    started = await processing.start_processing(
        ports, source_ids=[source.id or 0], model_names=["cheap", "dear"], strategy=None,
        budget_usd=None)
    # Then
    cheap, dear = (fake.state.batches[i].config for i in started.batch_ids)
    assert cheap == {"promptVersion": PROMPT_VERSION, "promptHash": prompt_hash(),
                     "temperature": 0.0, "maxOutputTokens": 4096, "chunkMaxTokens": 900,
                     "chunkOverlapTokens": 50, "strategy": None, "litellmModel": "cheap",
                     "mode": "interactive"}
    assert dear["maxOutputTokens"] == 8000
    assert fake.called("processing.create_batch")[0][1]["max_attempts"] == 5


async def test_start_processing_deduplicates_models_and_sources() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    catalog(fake)
    source = fake.add_source()
    # When
    started = await processing.start_processing(
        ports, source_ids=[source.id or 0, source.id or 0], model_names=["mid", "mid "],
        strategy=None, budget_usd=None)
    # Then
    assert len(started.batch_ids) == 1
    assert len(fake.state.runs) == 1


async def test_start_processing_accepts_an_unpriced_model_when_no_budget_is_in_force() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    catalog(fake)
    source = fake.add_source()
    # When
    started = await processing.start_processing(
        ports, source_ids=[source.id or 0], model_names=["free"], strategy=None,
        budget_usd=None)
    # Then
    assert [fake.state.batches[i].model_name for i in started.batch_ids] == ["free"]


async def test_start_processing_dispatches_nothing_when_the_commit_fails() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    catalog(fake)
    source = fake.add_source()
    fake.fail_next_commit = RuntimeError("connection lost at commit")
    # When
    with pytest.raises(RuntimeError):
        await processing.start_processing(ports, source_ids=[source.id or 0],
                                          model_names=["cheap"], strategy=None,
                                          budget_usd=None)
    # Then
    assert fake.units[0].handed != []
    assert fake.units[0].dispatched_after_commit == []
    nothing_written(fake)
    assert fake.state.sources[source.id or 0].status == "pending"


# --- start_processing: refusals -------------------------------------------------------------


async def test_start_processing_refuses_an_empty_model_list() -> None:
    # Given
    ports = make_ports()
    # When
    with pytest.raises(InvalidInput) as caught:
        await processing.start_processing(ports, source_ids=[1], model_names=[],
                                          strategy=None, budget_usd=None)
    # Then
    assert paths(caught.value) == [("input", "models")]
    assert fakes_of(ports).units == []


async def test_start_processing_refuses_more_than_ten_models() -> None:
    # Given
    ports = make_ports()
    # When
    with pytest.raises(InvalidInput) as caught:
        await processing.start_processing(ports, source_ids=[1],
                                          model_names=[f"m{i}" for i in range(11)],
                                          strategy=None, budget_usd=None)
    # Then
    assert paths(caught.value) == [("input", "models")]
    assert "at most 10" in caught.value.message


async def test_start_processing_refuses_more_than_500_sources() -> None:
    # Given
    ports = make_ports()
    # When
    with pytest.raises(InvalidInput) as caught:
        await processing.start_processing(ports, source_ids=list(range(501)),
                                          model_names=["cheap"], strategy=None,
                                          budget_usd=None)
    # Then
    assert paths(caught.value) == [("input", "sourceIds")]


@pytest.mark.parametrize("budget", ["0", "-1", "1000000.01", "NaN", "Infinity"])
async def test_start_processing_refuses_a_batch_budget_outside_its_range(budget: str) -> None:
    # Given
    ports = make_ports()
    # When
    with pytest.raises(InvalidInput) as caught:
        await processing.start_processing(ports, source_ids=[1], model_names=["cheap"],
                                          strategy=None, budget_usd=Decimal(budget))
    # Then
    assert paths(caught.value) == [("input", "budgetUsd")]
    assert fakes_of(ports).units == []


async def test_start_processing_reports_every_request_issue_at_once_under_its_path() -> None:
    # Given
    ports = make_ports()
    # When
    with pytest.raises(InvalidInput) as caught:
        await processing.start_processing(ports, source_ids=list(range(501)), model_names=[],
                                          strategy=None, budget_usd=Decimal(0), path=())
    # Then
    assert paths(caught.value) == [("models",), ("sourceIds",), ("budgetUsd",)]


async def test_start_processing_refuses_an_unknown_model_naming_its_index() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    catalog(fake)
    source = fake.add_source()
    # When
    with pytest.raises(InvalidInput) as caught:
        await processing.start_processing(ports, source_ids=[source.id or 0],
                                          model_names=["cheap", "ghost", "off"],
                                          strategy=None, budget_usd=None)
    # Then
    assert paths(caught.value) == [("input", "models", "1"), ("input", "models", "2")]
    assert "unknown model 'ghost'" in caught.value.issues[0].message
    assert "disabled" in caught.value.issues[1].message
    nothing_written(fake)
    assert [u.rolled_back for u in fake.units] == [True]


async def test_start_processing_refuses_a_disabled_model_naming_its_index() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    catalog(fake)
    source = fake.add_source()
    # When
    with pytest.raises(InvalidInput) as caught:
        await processing.start_processing(ports, source_ids=[source.id or 0],
                                          model_names=["off"], strategy=None,
                                          budget_usd=None, path=("request",))
    # Then
    assert paths(caught.value) == [("request", "models", "0")]


async def test_start_processing_names_the_request_index_of_an_unknown_model_after_a_duplicate(
        ) -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    catalog(fake)
    source = fake.add_source()
    # When
    with pytest.raises(InvalidInput) as caught:
        await processing.start_processing(ports, source_ids=[source.id or 0],
                                          model_names=["cheap", "cheap", "ghost"],
                                          strategy=None, budget_usd=None)
    # Then: "ghost" is item 2 of the request
    assert paths(caught.value) == [("input", "models", "2")]


async def test_start_processing_refuses_an_unpriced_model_under_a_batch_budget() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    catalog(fake)
    source = fake.add_source()
    # When
    with pytest.raises(InvalidInput) as caught:
        await processing.start_processing(ports, source_ids=[source.id or 0],
                                          model_names=["cheap", "free"], strategy=None,
                                          budget_usd=Decimal(1))
    # Then
    assert paths(caught.value) == [("input", "models", "1")]
    assert "no known price" in caught.value.message
    nothing_written(fake)


@pytest.mark.parametrize("where", ["environment", "settings table"])
async def test_start_processing_refuses_an_unpriced_model_under_the_daily_budget(
        where: str) -> None:
    # Given
    ports = make_ports(daily_budget_usd=Decimal(10) if where == "environment" else None)
    fake = fakes_of(ports)
    if where == "settings table":
        fake.state.settings[DAILY_BUDGET] = "3"
    catalog(fake)
    source = fake.add_source()
    # When
    with pytest.raises(InvalidInput) as caught:
        await processing.start_processing(ports, source_ids=[source.id or 0],
                                          model_names=["free"], strategy=None,
                                          budget_usd=None)
    # Then
    assert paths(caught.value) == [("input", "models", "0")]


async def test_start_processing_refuses_unknown_sources_naming_them() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    catalog(fake)
    source = fake.add_source()
    # When
    with pytest.raises(NotFound) as caught:
        await processing.start_processing(ports, source_ids=[7, source.id or 0, 9],
                                          model_names=["cheap"], strategy=None,
                                          budget_usd=None)
    # Then
    assert (caught.value.kind, caught.value.key, caught.value.path) == \
        ("Source", "7, 9", ("input", "sourceIds"))
    nothing_written(fake)


async def test_start_processing_refuses_a_model_already_busy_on_a_source() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    catalog(fake)
    a, b = fake.add_source(), fake.add_source()
    busy = fake.add_batch("mid", status="running")
    fake.add_run(busy.id or 0, b.id or 0, "mid", status="waiting_budget")
    # When
    with pytest.raises(Conflict) as caught:
        await processing.start_processing(ports, source_ids=[a.id or 0, b.id or 0],
                                          model_names=["cheap", "mid"], strategy=None,
                                          budget_usd=None)
    # Then
    assert caught.value.path == ("input", "models")
    assert f"source {b.id} is already being processed by mid" in caught.value.message
    assert list(fake.state.batches) == [busy.id]
    assert len(fake.state.runs) == 1
    assert fake.dispatched == []


async def test_start_processing_refuses_an_empty_source_list() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    catalog(fake)
    # When
    with pytest.raises(InvalidInput) as caught:
        await processing.start_processing(ports, source_ids=[], model_names=["cheap"],
                                          strategy=None, budget_usd=None)
    # Then
    assert paths(caught.value) == [("input", "sourceIds")]
    nothing_written(fake)


# --- start_processing with a strategy ---------------------------------------------------------


async def test_start_processing_with_a_strategy_opens_one_plan_per_source_type() -> None:
    # Given
    ports = make_ports(strategy_sample_sources=1)
    fake = fakes_of(ports)
    catalog(fake)
    i1, i2 = fake.add_source(), fake.add_source()
    p1 = fake.add_source(source_type="podcast")
    # When
    started = await processing.start_processing(
        ports, source_ids=[i1.id or 0, p1.id or 0, i2.id or 0],
        model_names=["dear", "cheap", "mid"], strategy="progressive", budget_usd=None)
    # Then: progressive tests the cheapest model on the sample of each type
    interview, podcast = (fake.state.batches[i] for i in started.batch_ids)
    assert (interview.model_name, interview.strategy) == ("cheap", "progressive")
    assert (interview.config["step"], interview.config["final"]) == (0, False)
    plan = Plan.from_json(interview.config["plan"])
    assert (plan.source_type, plan.source_ids, plan.sample_ids, plan.candidates,
            plan.reference_model, plan.threshold) == \
        ("interview", (i1.id, i2.id), (i1.id,), ("cheap", "mid", "dear"), "dear", 8.5)
    assert Plan.from_json(podcast.config["plan"]).threshold == 7.5
    assert [r.source_id for r in fake.state.runs.values()] == [i1.id, p1.id]
    [record] = interview.decisions
    assert (record["kind"], record["step"], record["at"], record["action"],
            record["models"]) == ("started", 0, "2025-01-15T12:00:00+00:00", "test", ["cheap"])
    assert fake.dispatched == list(fake.state.jobs)
    assert fake.timeline[-2:] == [("commit", 0), ("dispatch", list(fake.state.jobs))]


async def test_start_processing_with_a_strategy_uses_the_operators_threshold() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    catalog(fake)
    fake.state.settings["quality_thresholds"] = {"interview": 6.25}
    source = fake.add_source()
    # When
    started = await processing.start_processing(ports, source_ids=[source.id or 0],
                                                model_names=["cheap"],
                                                strategy="conservative", budget_usd=None)
    # Then
    batch = fake.state.batches[started.batch_ids[0]]
    assert Plan.from_json(batch.config["plan"]).threshold == 6.25


async def test_start_processing_conservatively_tests_the_designated_reference_too() -> None:
    # Given
    ports = make_ports(quality_reference_model="dear")
    fake = fakes_of(ports)
    catalog(fake)
    source = fake.add_source()
    # When
    started = await processing.start_processing(ports, source_ids=[source.id or 0],
                                                model_names=["mid", "cheap"],
                                                strategy="conservative", budget_usd=None)
    # Then
    models = [fake.state.batches[i].model_name for i in started.batch_ids]
    assert models == ["cheap", "mid", "dear"]
    plan = Plan.from_json(fake.state.batches[started.batch_ids[0]].config["plan"])
    assert plan.reference_model == "dear"


@pytest.mark.parametrize("reference", ["off", "ghost", "free"])
async def test_start_processing_falls_back_to_the_dearest_candidate_when_the_reference_cannot_run(
        reference: str) -> None:
    # Given: the designated reference is disabled, unknown, or unpriced under a budget
    ports = make_ports()
    fake = fakes_of(ports)
    catalog(fake)
    fake.state.settings["quality_reference_model"] = reference
    source = fake.add_source()
    # When
    started = await processing.start_processing(ports, source_ids=[source.id or 0],
                                                model_names=["mid", "cheap"],
                                                strategy="conservative",
                                                budget_usd=Decimal(50))
    # Then
    batches = [fake.state.batches[i] for i in started.batch_ids]
    assert [b.model_name for b in batches] == ["cheap", "mid"]
    assert Plan.from_json(batches[0].config["plan"]).reference_model == "mid"
    assert [u.committed for u in fake.units] == [True]


async def test_start_processing_aggressively_uses_a_model_history_vouches_for() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    catalog(fake)
    a, b = fake.add_source(), fake.add_source()
    fake.state.pooled_by_type["interview"] = [candidate("mid", 8.0, high=9.0, cost="0.5"),
                                              candidate("dear", 9.5, cost="5")]
    # When
    started = await processing.start_processing(ports, source_ids=[a.id or 0, b.id or 0],
                                                model_names=["cheap", "mid", "dear"],
                                                strategy="aggressive", budget_usd=None)
    # Then
    [batch] = [fake.state.batches[i] for i in started.batch_ids]
    assert (batch.model_name, batch.config["final"]) == ("mid", True)
    assert [r.source_id for r in fake.state.runs.values()] == [a.id, b.id]
    pooled = fake.called("performance.pooled")
    assert pooled == [((), {"source_id": None, "source_type": "interview",
                            "models": ["cheap", "mid", "dear"]})]


async def test_start_processing_with_a_strategy_refuses_a_busy_model_and_writes_nothing() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    catalog(fake)
    source = fake.add_source()
    busy = fake.add_batch("cheap", status="running")
    fake.add_run(busy.id or 0, source.id or 0, "cheap", status="processing")
    # When
    with pytest.raises(Conflict) as caught:
        await processing.start_processing(ports, source_ids=[source.id or 0],
                                          model_names=["cheap", "mid"],
                                          strategy="progressive", budget_usd=None)
    # Then
    assert caught.value.path == ("input", "models")
    assert list(fake.state.batches) == [busy.id]
    assert fake.dispatched == []


async def test_start_processing_with_an_unknown_strategy_fails_and_writes_nothing() -> None:
    # Given: GraphQL's Strategy enum keeps clients from this; the use case raises ValueError
    ports = make_ports()
    fake = fakes_of(ports)
    catalog(fake)
    source = fake.add_source()
    # When
    with pytest.raises(ValueError, match="unknown strategy"):
        await processing.start_processing(ports, source_ids=[source.id or 0],
                                          model_names=["cheap"], strategy="reckless",
                                          budget_usd=None)
    # Then
    nothing_written(fake)
    assert [u.rolled_back for u in fake.units] == [True]


# --- batches --------------------------------------------------------------------------------


async def test_batches_reads_them_in_the_order_asked_without_committing() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    first, second = fake.add_batch("a"), fake.add_batch("b")
    # When
    found = await processing.batches(ports, [second.id or 0, 99, first.id or 0])
    # Then
    assert [b.model_name for b in found] == ["b", "a"]
    assert [u.read_only for u in fake.units] == [True]


# --- cancel_batch -----------------------------------------------------------------------------


async def test_cancel_batch_refuses_an_unknown_batch() -> None:
    # Given
    ports = make_ports()
    # When
    with pytest.raises(NotFound) as caught:
        await processing.cancel_batch(ports, 404)
    # Then
    assert (caught.value.kind, caught.value.key, caught.value.path) == \
        ("Batch", "404", ("input", "batchId"))
    assert [u.rolled_back for u in fakes_of(ports).units] == [True]


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
async def test_cancel_batch_refuses_a_terminal_batch_and_leaves_its_jobs_alone(
        status: str) -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    source = fake.add_source()
    batch = fake.add_batch("m", status=status)
    run = fake.add_run(batch.id or 0, source.id or 0, status="failed")
    job = fake.new_job(kind="extract_run", priority=20, run_id=run.id, batch_id=batch.id)
    # When
    with pytest.raises(Conflict) as caught:
        await processing.cancel_batch(ports, batch.id or 0)
    # Then
    assert caught.value.path == ("input", "batchId")
    assert f"already {status}" in caught.value.message
    assert fake.state.jobs[job].status == "waiting"
    assert fake.state.batches[batch.id or 0].status == status
    assert [u.rolled_back for u in fake.units] == [True]
    assert fake.retrying_calls == 0


async def test_cancel_batch_cancels_jobs_skips_unfinished_runs_locking_in_order() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    a, b = fake.add_source(), fake.add_source()
    batch = fake.add_batch("m", status="running")
    done = fake.add_run(batch.id or 0, a.id or 0, status="completed")
    open_run = fake.add_run(batch.id or 0, b.id or 0, status="processing")
    job = fake.new_job(kind="extract_run", priority=20, run_id=open_run.id,
                       batch_id=batch.id, status="claimed")
    # When
    cancelled = await processing.cancel_batch(ports, batch.id or 0)
    # Then
    assert cancelled.status == "cancelled"
    assert fake.state.jobs[job].status == "cancelled"
    assert fake.state.runs[done.id or 0].status == "completed"
    assert fake.state.runs[open_run.id or 0].status == "skipped"
    order = [n for n in fake.call_names() if n in (
        "jobs.cancel_for_batch", "processing.lock_runs_of_batch", "processing.cancel_batch")]
    assert order == ["jobs.cancel_for_batch", "processing.lock_runs_of_batch",
                     "processing.cancel_batch"]
    assert fake.called("processing.batch")[-1] == ((batch.id,), {"lock": True})
    assert fake.retrying_calls == 0  # no plan to advance


async def test_cancel_batch_of_a_plan_records_after_commit_that_the_plan_stops() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    source = fake.add_source()
    plan = Plan("progressive", "interview", (source.id or 0,), (source.id or 0,),
                ("cheap", "dear"), "dear", 8.0)
    batch = fake.add_plan_batch(plan, 0, "cheap", status="running")
    fake.add_run(batch.id or 0, source.id or 0, "cheap", status="pending")
    # When
    await processing.cancel_batch(ports, batch.id or 0)
    # Then
    decisions = fake.state.batches[batch.id or 0].decisions
    assert [(d["kind"], d["afterStep"], d["action"], d["batchIds"]) for d in decisions] == \
        [("decided", 0, "stop", [])]
    assert fake.retrying_calls == 1
    assert [u.committed for u in fake.units] == [True, True]


# --- retry_run --------------------------------------------------------------------------------


async def test_retry_run_refuses_an_unknown_run() -> None:
    # Given
    ports = make_ports()
    # When
    with pytest.raises(NotFound) as caught:
        await processing.retry_run(ports, 5)
    # Then
    assert (caught.value.kind, caught.value.path) == ("Run", ("input", "runId"))
    assert fakes_of(ports).dispatched == []


@pytest.mark.parametrize("status", ["pending", "processing", "waiting_budget", "completed"])
async def test_retry_run_refuses_a_run_that_is_not_failed_stopped_or_skipped(
        status: str) -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    source = fake.add_source()
    batch = fake.add_batch(status="completed")
    run = fake.add_run(batch.id or 0, source.id or 0, status=status)
    # When
    with pytest.raises(Conflict) as caught:
        await processing.retry_run(ports, run.id or 0)
    # Then
    assert caught.value.path == ("input", "runId")
    assert f"is {status}" in caught.value.message
    assert fake.state.runs[run.id or 0].status == status
    assert fake.state.jobs == {}
    assert fake.dispatched == []


@pytest.mark.parametrize("status", ["failed", "stopped_cost_limit", "skipped"])
async def test_retry_run_reopens_the_run_and_dispatches_its_job_after_commit(
        status: str) -> None:
    # Given
    ports = make_ports(job_max_attempts=7)
    fake = fakes_of(ports)
    source = fake.add_source(extraction_priority="high")
    batch = fake.add_batch(status="failed")
    run = fake.add_run(batch.id or 0, source.id or 0, status=status)
    # When
    retried = await processing.retry_run(ports, run.id or 0)
    # Then
    assert retried.status == "pending"
    assert fake.state.batches[batch.id or 0].status == "running"
    [job] = fake.state.jobs.values()
    assert (job.run_id, job.batch_id, job.max_attempts, job.priority) == \
        (run.id, batch.id, 7, 30)
    assert fake.called("processing.run") == [((run.id,), {"lock": True})]
    assert fake.called("processing.batch") == [((batch.id,), {"lock": True})]
    assert fake.timeline == [("begin", 0), ("commit", 0), ("dispatch", [job.id])]


async def test_retry_run_dispatches_nothing_when_the_commit_fails() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    source = fake.add_source()
    batch = fake.add_batch(status="failed")
    run = fake.add_run(batch.id or 0, source.id or 0, status="failed")
    fake.fail_next_commit = RuntimeError("commit failed")
    # When
    with pytest.raises(RuntimeError):
        await processing.retry_run(ports, run.id or 0)
    # Then
    assert fake.dispatched == []
    assert fake.state.runs[run.id or 0].status == "failed"
    assert fake.state.jobs == {}


# --- budgets ------------------------------------------------------------------------------------


def waiting_jobs(fake: FakeUnitOfWorkFactory, needs: list[str]) -> list[int]:
    source = fake.add_source()
    batch = fake.add_batch(status="running")
    jobs = []
    for needed in needs:
        run = fake.add_run(batch.id or 0, source.id or 0, status="waiting_budget")
        jobs.append(fake.new_job(kind="extract_run", priority=20, run_id=run.id,
                                 batch_id=batch.id, payload={"needed_usd": needed},
                                 status="waiting_budget"))
    return jobs


async def test_resume_budget_waiters_resumes_the_jobs_that_fit_and_dispatches_them() -> None:
    # Given
    ports = make_ports(daily_budget_usd=Decimal(10))
    fake = fakes_of(ports)
    fake.state.budget_days[fake.today()] = (Decimal(4), Decimal(1))  # 5 remain
    small, big, exact = waiting_jobs(fake, ["1", "6", "5"])
    # When
    resumed = await processing.resume_budget_waiters(ports)
    # Then
    assert resumed == 2
    assert fake.called("jobs.resume_budget_waiters") == [((Decimal(5),), {})]
    assert [fake.state.jobs[j].status for j in (small, big, exact)] == \
        ["waiting", "waiting_budget", "waiting"]
    assert fake.timeline == [("begin", 0), ("commit", 0), ("dispatch", [small, exact])]


async def test_resume_budget_waiters_without_a_daily_limit_resumes_every_waiter() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    jobs = waiting_jobs(fake, ["100", "0.5"])
    # When
    resumed = await processing.resume_budget_waiters(ports)
    # Then
    assert resumed == 2
    assert fake.dispatched == jobs
    assert all(r.status == "pending" for r in fake.state.runs.values())


async def test_set_daily_budget_stores_the_amount_then_resumes_the_waiters_that_fit() -> None:
    # Given
    ports = make_ports(daily_budget_usd=Decimal(1))
    fake = fakes_of(ports)
    fits, too_big = waiting_jobs(fake, ["2", "30"])
    # When
    resumed = await processing.set_daily_budget(ports, Decimal("20.50"), "ops")
    # Then
    assert resumed == 1
    assert (fake.state.settings[DAILY_BUDGET], fake.state.settings_by[DAILY_BUDGET]) == \
        ("20.50", "ops")
    assert fake.state.jobs[too_big].status == "waiting_budget"
    assert fake.dispatched == [fits]
    assert [u.committed for u in fake.units] == [True, True]
    assert fake.timeline.index(("commit", 1)) < fake.timeline.index(("dispatch", [fits]))


async def test_set_daily_budget_to_null_removes_the_limit_and_resumes_every_waiter() -> None:
    # Given
    ports = make_ports(daily_budget_usd=Decimal(1))
    fake = fakes_of(ports)
    jobs = waiting_jobs(fake, ["2", "30"])
    # When
    resumed = await processing.set_daily_budget(ports, None, "ops")
    # Then
    assert resumed == 2
    assert DAILY_BUDGET in fake.state.settings and fake.state.settings[DAILY_BUDGET] is None
    assert fake.dispatched == jobs


@pytest.mark.parametrize("amount", ["-0.01", "1000000.01", "NaN", "-Infinity"])
async def test_set_daily_budget_refuses_an_amount_outside_its_range(amount: str) -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    waiting_jobs(fake, ["1"])
    # When
    with pytest.raises(InvalidInput) as caught:
        await processing.set_daily_budget(ports, Decimal(amount), "ops")
    # Then
    assert paths(caught.value) == [("input", "amountUsd")]
    assert fake.state.settings == {}
    assert fake.units == []
    assert fake.dispatched == []


async def test_set_fragment_cost_limit_stores_the_amount_or_null() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    # When
    await processing.set_fragment_cost_limit(ports, Decimal("0.002"), "ops")
    stored = fake.state.settings[FRAGMENT_COST_LIMIT]
    await processing.set_fragment_cost_limit(ports, None, "ops")
    # Then
    assert stored == "0.002"
    assert fake.state.settings[FRAGMENT_COST_LIMIT] is None
    assert fake.dispatched == []


@pytest.mark.parametrize("amount", ["-1", "1000001", "sNaN"])
async def test_set_fragment_cost_limit_refuses_an_amount_outside_its_range(amount: str) -> None:
    # Given
    ports = make_ports()
    # When
    with pytest.raises(InvalidInput) as caught:
        await processing.set_fragment_cost_limit(ports, Decimal(amount), "ops")
    # Then
    assert paths(caught.value) == [("input", "amountUsd")]
    assert fakes_of(ports).state.settings == {}


async def test_budget_reports_todays_state_with_the_fragment_cost_limit() -> None:
    # Given
    ports = make_ports(daily_budget_usd=Decimal(50), fragment_cost_limit_usd=Decimal("0.1"))
    fake = fakes_of(ports)
    fake.state.budget_days[fake.today()] = (Decimal(12), Decimal(3))
    fake.state.settings[FRAGMENT_COST_LIMIT] = "0.05"  # the operator's value wins
    # When
    summary = await processing.budget(ports)
    # Then
    assert (summary.day, summary.limit_usd, summary.spent_usd, summary.reserved_usd,
            summary.remaining_usd, summary.fragment_cost_limit_usd) == \
        (fake.today(), Decimal(50), Decimal(12), Decimal(3), Decimal(35), Decimal("0.05"))
    assert [u.read_only for u in fake.units] == [True]


async def test_budget_without_limits_has_nothing_remaining_to_count() -> None:
    # Given
    ports = make_ports()
    # When
    summary = await processing.budget(ports)
    # Then
    assert (summary.limit_usd, summary.spent_usd, summary.remaining_usd,
            summary.fragment_cost_limit_usd) == (None, Decimal(0), None, None)


# --- start_processing: BATCH mode ---------------------------------------------------------------


async def test_batch_mode_is_frozen_on_each_batch_and_its_config() -> None:
    ports = make_ports()
    fake = fakes_of(ports)
    fake.add_model("gpt", litellm_model="gpt-4o-mini")
    fake.add_model("local", litellm_model="openai/llama", api_base="http://127.0.0.1:1/v1")
    source = fake.add_source()
    started = await processing.start_processing(
        ports, source_ids=[source.id or 0], model_names=["gpt", "local"], strategy=None,
        budget_usd=None, mode="BATCH")
    batches = [fake.state.batches[i] for i in started.batch_ids]
    assert [(b.mode, b.config["mode"]) for b in batches] == [("batch", "batch")] * 2


async def test_batch_mode_is_refused_for_models_without_a_batch_api_naming_each() -> None:
    ports = make_ports()
    fake = fakes_of(ports)
    fake.add_model("gpt", litellm_model="gpt-4o-mini")
    fake.add_model("claude", litellm_model="anthropic/claude-haiku-4-5")
    fake.add_model("rules", litellm_model="mmos/rules-fast", is_local=True)
    source = fake.add_source()
    with pytest.raises(InvalidInput) as caught:
        await processing.start_processing(
            ports, source_ids=[source.id or 0], model_names=["gpt", "claude", "rules"],
            strategy=None, budget_usd=None, mode="batch")
    assert paths(caught.value) == [("input", "models", "1"), ("input", "models", "2")]
    assert "'claude' (anthropic) has no batch API" in caught.value.issues[0].message
    assert "use mode INTERACTIVE" in caught.value.issues[1].message
    nothing_written(fake)


async def test_an_unknown_mode_is_refused_on_its_field() -> None:
    ports = make_ports()
    fake = fakes_of(ports)
    fake.add_model("gpt", litellm_model="gpt-4o-mini")
    source = fake.add_source()
    with pytest.raises(InvalidInput) as caught:
        await processing.start_processing(
            ports, source_ids=[source.id or 0], model_names=["gpt"], strategy=None,
            budget_usd=None, mode="overnight")
    assert paths(caught.value) == [("input", "mode")]
    nothing_written(fake)


async def test_a_strategy_in_batch_mode_plans_every_step_in_batch_mode() -> None:
    ports = make_ports()
    fake = fakes_of(ports)
    fake.add_model("gpt", litellm_model="gpt-4o-mini", price=("0.1", "0.2"))
    fake.add_model("big", litellm_model="gpt-4o", price=("5", "15"))
    sources = [fake.add_source() for _ in range(3)]
    started = await processing.start_processing(
        ports, source_ids=[s.id or 0 for s in sources], model_names=["gpt", "big"],
        strategy="progressive", budget_usd=None, mode="batch")
    batch = fake.state.batches[started.batch_ids[0]]
    assert batch.mode == "batch"
    assert Plan.from_json(batch.config["plan"]).mode == "batch"
