"""Recovering runs (domain/services/processing.py): retry_run with and without
failedChunksOnly, and reprocess_run, against in-memory fakes."""

from __future__ import annotations

import copy
import uuid
from decimal import Decimal

import pytest

from domain.errors import Conflict, NotFound
from domain.services import processing
from tests.support.fakes import FakeUnitOfWorkFactory, RunRow, fakes_of, make_ports

ACTIVE = ["pending", "processing", "waiting_budget"]
ARG = ("runId",)  # reprocessRun's top-level argument


def a_run(fake: FakeUnitOfWorkFactory, status: str, *, model: str = "cheap",
          priority: str = "medium", **values: object) -> RunRow:
    """A run of a fresh source in a finished batch of `model` (registered)."""
    if model not in fake.state.models:
        fake.add_model(model)
    source = fake.add_source(extraction_priority=priority)
    batch = fake.add_batch(model, status="completed")
    return fake.add_run(batch.id or 0, source.id or 0, model, status=status, **values)


def current_answers(fake: FakeUnitOfWorkFactory, run_id: int) -> list[int]:
    """The chunk index of each current (not superseded) answer of a run."""
    return sorted(a.chunk_index for a in fake.state.answers
                  if a.run_id == run_id and not a.superseded)


def superseded_answers(fake: FakeUnitOfWorkFactory, run_id: int) -> list[int]:
    return sorted(a.chunk_index for a in fake.state.answers
                  if a.run_id == run_id and a.superseded)


def fragment_chunks(fake: FakeUnitOfWorkFactory, run_id: int) -> list[int]:
    """The chunk index of each fragment of a run."""
    return sorted(f.chunk_index for f in fake.state.fragments.values()
                  if f.run_id == run_id and f.chunk_index is not None)


# --- retry_run: failed chunks only ------------------------------------------------------------


async def test_retry_failed_chunks_only_forgets_the_failed_chunks_and_reopens_the_run() -> None:
    # Given: a run that completed with errors, chunks 0 and 2 done, 1 and 3 failed
    ports = make_ports(job_max_attempts=4)
    fake = fakes_of(ports)
    run = a_run(fake, "completed_with_errors", priority="high",
                error_message="2 of 4 chunks failed")
    fake.add_chunks(run.id or 0, done=[0, 2], failed=[3, 1], answers=2, fragments=1)
    batch_id = run.batch_id
    # When
    retried = await processing.retry_run(ports, run.id or 0, failed_chunks_only=True)
    # Then: only the failed chunks are forgotten; their answers are kept, superseded
    stored = fake.state.runs[run.id or 0]
    assert (retried.id, retried.status, retried.error_message) == (run.id, "pending", None)
    assert (stored.status, stored.chunks_done, stored.chunks_failed) == ("pending", 2, 0)
    assert fake.state.chunks[run.id or 0] == {0: "done", 2: "done"}
    assert current_answers(fake, run.id or 0) == [0, 0, 2, 2]
    assert superseded_answers(fake, run.id or 0) == [1, 1, 3, 3]
    assert fragment_chunks(fake, run.id or 0) == [0, 2]
    assert fake.state.batches[batch_id].status == "running"
    # one job, sent after the commit, and a QUEUED retry event
    [job] = fake.state.jobs.values()
    assert (job.kind, job.run_id, job.batch_id, job.max_attempts, job.priority) == \
        ("extract_run", run.id, batch_id, 4, 30)
    assert fake.timeline == [("begin", 0), ("commit", 0), ("dispatch", [job.id])]
    assert fake.dispatched == [job.id]
    assert [(e.batch_id, e.kind, e.run_id, e.data) for e in fake.state.events] == \
        [(batch_id, "QUEUED", run.id, {"retry": True})]
    assert fake.called("answers.supersede_failed") == [((run.id,), {})]


async def test_retry_without_failed_chunks_only_refuses_a_run_completed_with_errors() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    run = a_run(fake, "completed_with_errors")
    fake.add_chunks(run.id or 0, done=[0], failed=[1], fragments=1)
    before = copy.deepcopy(fake.state)
    # When
    with pytest.raises(Conflict) as caught:
        await processing.retry_run(ports, run.id or 0)
    # Then: the way out is named, and nothing changed
    assert caught.value.path == ("input", "runId")
    assert "is completed_with_errors" in caught.value.message
    assert "failedChunksOnly" in caught.value.message
    assert fake.state == before
    assert fake.called("answers.supersede_failed") == []
    assert fake.dispatched == []


@pytest.mark.parametrize("status", ["completed_with_errors", "failed"])
async def test_retry_failed_chunks_only_refuses_a_run_without_failed_chunks(
        status: str) -> None:
    # Given: every stored chunk of the run is done
    ports = make_ports()
    fake = fakes_of(ports)
    run = a_run(fake, status)
    fake.add_chunks(run.id or 0, done=[0, 1], fragments=1)
    before = copy.deepcopy(fake.state)
    # When
    with pytest.raises(Conflict) as caught:
        await processing.retry_run(ports, run.id or 0, failed_chunks_only=True)
    # Then
    assert caught.value.path == ("input", "failedChunksOnly")
    assert "no failed chunks" in caught.value.message
    assert fake.state == before
    assert fake.state.jobs == {}
    assert [u.rolled_back for u in fake.units] == [True]
    assert fake.dispatched == []


async def test_retry_failed_chunks_only_writes_nothing_when_the_commit_fails() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    run = a_run(fake, "completed_with_errors")
    fake.add_chunks(run.id or 0, done=[0], failed=[1])
    before = copy.deepcopy(fake.state)
    fake.fail_next_commit = RuntimeError("commit failed")
    # When
    with pytest.raises(RuntimeError):
        await processing.retry_run(ports, run.id or 0, failed_chunks_only=True)
    # Then: the failed chunk is still stored, its answer still current
    assert fake.state == before
    assert fake.state.chunks[run.id or 0] == {0: "done", 1: "failed"}
    assert fake.dispatched == []


# --- retry_run: a failed run ------------------------------------------------------------------


@pytest.mark.parametrize("failed_chunks_only", [False, True])
async def test_retry_of_a_failed_run_also_forgets_its_failed_chunks(
        failed_chunks_only: bool) -> None:
    # Given: a run that failed with most of its chunks failed
    ports = make_ports()
    fake = fakes_of(ports)
    run = a_run(fake, "failed", error_message="3 of 4 chunks failed")
    fake.add_chunks(run.id or 0, done=[2], failed=[0, 1, 3], fragments=2)
    # When
    retried = await processing.retry_run(ports, run.id or 0,
                                         failed_chunks_only=failed_chunks_only)
    # Then
    stored = fake.state.runs[run.id or 0]
    assert (retried.status, stored.status, stored.chunks_failed) == ("pending", "pending", 0)
    assert fake.state.chunks[run.id or 0] == {2: "done"}
    assert current_answers(fake, run.id or 0) == [2]
    assert superseded_answers(fake, run.id or 0) == [0, 1, 3]
    assert fragment_chunks(fake, run.id or 0) == [2, 2]
    [job] = fake.state.jobs.values()
    assert fake.dispatched == [job.id]
    assert fake.timeline == [("begin", 0), ("commit", 0), ("dispatch", [job.id])]


async def test_retry_leaves_the_chunks_of_other_runs_alone() -> None:
    # Given: two failed runs with failed chunks
    ports = make_ports()
    fake = fakes_of(ports)
    run = a_run(fake, "failed")
    other = a_run(fake, "failed")
    fake.add_chunks(run.id or 0, failed=[0])
    fake.add_chunks(other.id or 0, done=[0], failed=[1], fragments=1)
    before = copy.deepcopy(fake.state)
    # When
    await processing.retry_run(ports, run.id or 0)
    # Then
    assert fake.state.chunks[other.id or 0] == {0: "done", 1: "failed"}
    assert fake.state.runs[other.id or 0] == before.runs[other.id or 0]
    assert current_answers(fake, other.id or 0) == [0, 1]
    assert fragment_chunks(fake, other.id or 0) == [0, 1]


# --- retry_run: refusals ----------------------------------------------------------------------


@pytest.mark.parametrize("failed_chunks_only", [False, True])
async def test_retry_refuses_an_unknown_run(failed_chunks_only: bool) -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    a_run(fake, "failed")
    before = copy.deepcopy(fake.state)
    # When
    with pytest.raises(NotFound) as caught:
        await processing.retry_run(ports, 99, failed_chunks_only=failed_chunks_only)
    # Then
    assert (caught.value.kind, caught.value.path) == ("Run", ("input", "runId"))
    assert fake.state == before
    assert fake.dispatched == []


@pytest.mark.parametrize("failed_chunks_only", [False, True])
@pytest.mark.parametrize("status", [*ACTIVE, "completed"])
async def test_retry_refuses_an_active_or_completed_run_and_keeps_its_chunks(
        status: str, failed_chunks_only: bool) -> None:
    # Given: a run with a failed chunk that is still running (or completed cleanly)
    ports = make_ports()
    fake = fakes_of(ports)
    run = a_run(fake, status)
    fake.add_chunks(run.id or 0, done=[0], failed=[1])
    before = copy.deepcopy(fake.state)
    # When
    with pytest.raises(Conflict) as caught:
        await processing.retry_run(ports, run.id or 0, failed_chunks_only=failed_chunks_only)
    # Then
    assert caught.value.path == ("input", "runId")
    assert f"is {status}" in caught.value.message
    assert fake.state == before
    assert fake.called("answers.supersede_failed") == []
    assert fake.dispatched == []


# --- reprocess_run ----------------------------------------------------------------------------


async def test_reprocess_makes_a_new_version_in_a_batch_of_its_own() -> None:
    # Given: version 2 of a run (itself a reprocess of version 1), in a strategy's step
    ports = make_ports(job_max_attempts=5)
    fake = fakes_of(ports)
    fake.add_model("cheap")
    source = fake.add_source(extraction_priority="high")
    old_batch = fake.add_batch(
        "cheap", group_id="plan-group", status="completed", strategy="cheapest",
        budget_usd=Decimal(3),
        config={"promptVersion": "v9", "chunkMaxTokens": 900,
                "plan": {"sourceType": "interview"}, "step": 1, "final": True})
    first = fake.add_run(old_batch.id or 0, source.id or 0, "cheap", status="completed")
    run = fake.add_run(
        old_batch.id or 0, source.id or 0, "cheap", status="completed_with_errors",
        version=2, reprocessed_from_id=first.id, input_tokens=1200, output_tokens=340,
        cost_usd=Decimal("0.0123"), llm_calls=5, latency_ms=4200, repair_calls=2,
        repair_cost_usd=Decimal("0.0021"), answers_read=6)
    fake.add_chunks(run.id or 0, done=[0, 1], failed=[2], answers=2, fragments=1)
    before = copy.deepcopy(fake.state)
    # When
    new = await processing.reprocess_run(ports, run.id or 0)
    # Then: a new run in a new batch, the next version of the old one, with its usage
    assert new.id not in before.runs
    assert new is fake.state.runs[new.id or 0]
    assert (new.source_id, new.model_name, new.status) == (source.id, "cheap", "pending")
    assert (new.reprocessed_from_id, new.version) == (run.id, 3)
    assert (new.input_tokens, new.output_tokens, new.cost_usd, new.llm_calls, new.latency_ms,
            new.repair_calls, new.repair_cost_usd) == \
        (1200, 340, Decimal("0.0123"), 5, 4200, 2, Decimal("0.0021"))
    assert (new.chunks_done, new.chunks_failed, new.answers_read) == (0, 0, 0)
    batch = fake.state.batches[new.batch_id]
    assert batch.id not in before.batches
    assert [r.id for r in fake.state.runs.values() if r.batch_id == batch.id] == [new.id]
    assert (batch.model_name, batch.status, batch.strategy, batch.budget_usd) == \
        ("cheap", "queued", None, None)
    assert batch.group_id != "plan-group"
    uuid.UUID(batch.group_id)
    assert batch.config == {"promptVersion": "v9", "chunkMaxTokens": 900,
                            "reprocessOf": run.id}
    # the old run, its batch, chunks and answers are untouched
    assert fake.state.runs[run.id or 0] == before.runs[run.id or 0]
    assert fake.state.runs[first.id or 0] == before.runs[first.id or 0]
    assert fake.state.batches[old_batch.id or 0] == before.batches[old_batch.id or 0]
    assert fake.state.chunks == before.chunks
    assert fake.state.answers == before.answers
    assert fake.state.fragments == before.fragments
    # one job, sent after the commit, and the new batch's QUEUED event
    [job] = fake.state.jobs.values()
    assert (job.kind, job.run_id, job.batch_id, job.max_attempts, job.priority) == \
        ("extract_run", new.id, batch.id, 5, 30)
    assert fake.timeline == [("begin", 0), ("commit", 0), ("dispatch", [job.id])]
    assert fake.dispatched == [job.id]
    assert [(e.batch_id, e.kind, e.run_id) for e in fake.state.events] == \
        [(batch.id, "QUEUED", None)]


@pytest.mark.parametrize("status", ["completed", "failed", "stopped_cost_limit"])
async def test_reprocess_reads_again_any_finished_run_with_answers(status: str) -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    run = a_run(fake, status)
    fake.add_chunks(run.id or 0, done=[0])
    # When
    new = await processing.reprocess_run(ports, run.id or 0)
    # Then
    assert (new.reprocessed_from_id, new.version, new.status) == (run.id, 2, "pending")
    assert fake.state.runs[run.id or 0].status == status
    assert len(fake.dispatched) == 1


async def test_reprocess_refuses_an_unknown_run_at_the_input_by_default() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    a_run(fake, "completed")
    before = copy.deepcopy(fake.state)
    # When
    with pytest.raises(NotFound) as caught:
        await processing.reprocess_run(ports, 99)
    # Then
    assert (caught.value.kind, caught.value.path) == ("Run", ("input", "runId"))
    assert fake.state == before
    assert fake.dispatched == []


async def test_reprocess_refuses_an_unknown_run_at_the_path_given() -> None:
    # Given: the mutation's top-level runId argument
    ports = make_ports()
    fake = fakes_of(ports)
    a_run(fake, "completed")
    before = copy.deepcopy(fake.state)
    # When
    with pytest.raises(NotFound) as caught:
        await processing.reprocess_run(ports, 99, path=ARG)
    # Then
    assert (caught.value.kind, caught.value.path) == ("Run", ARG)
    assert fake.state == before
    assert fake.dispatched == []


@pytest.mark.parametrize("status", [*ACTIVE, "skipped"])
async def test_reprocess_refuses_a_run_that_is_not_finished(status: str) -> None:
    # Given: the run has stored answers, but is still running (or was skipped)
    ports = make_ports()
    fake = fakes_of(ports)
    run = a_run(fake, status)
    fake.add_chunks(run.id or 0, done=[0])
    before = copy.deepcopy(fake.state)
    # When
    with pytest.raises(Conflict) as caught:
        await processing.reprocess_run(ports, run.id or 0, path=ARG)
    # Then
    assert caught.value.path == ARG
    assert f"is {status}" in caught.value.message
    assert fake.state == before
    assert fake.called("processing.reprocess") == []
    assert fake.dispatched == []


@pytest.mark.parametrize("stored", ["none", "superseded", "of another run"])
async def test_reprocess_refuses_a_run_without_stored_answers(stored: str) -> None:
    # Given: the run's answers were never kept, are all superseded, or belong elsewhere
    ports = make_ports(answer_retention_days=30)
    fake = fakes_of(ports)
    run = a_run(fake, "completed")
    if stored == "superseded":
        fake.add_chunks(run.id or 0, done=[0], answers=0)
        fake.add_answers(run.id or 0, 0, 2, superseded=True)
    elif stored == "of another run":
        other = a_run(fake, "completed")
        fake.add_chunks(other.id or 0, done=[0])
    before = copy.deepcopy(fake.state)
    # When
    with pytest.raises(Conflict) as caught:
        await processing.reprocess_run(ports, run.id or 0, path=ARG)
    # Then: the message says how long answers are kept
    assert caught.value.path == ARG
    assert "no stored answers" in caught.value.message
    assert "30 days" in caught.value.message
    assert fake.state == before
    assert fake.dispatched == []


async def test_reprocess_refuses_while_another_run_of_the_source_and_model_is_active() -> None:
    # Given: a finished run, and another batch processing the same source with the same model
    ports = make_ports()
    fake = fakes_of(ports)
    run = a_run(fake, "completed")
    fake.add_chunks(run.id or 0, done=[0])
    busy = fake.add_batch("cheap", status="running")
    fake.add_run(busy.id or 0, run.source_id, "cheap", status="processing")
    before = copy.deepcopy(fake.state)
    # When
    with pytest.raises(Conflict) as caught:
        await processing.reprocess_run(ports, run.id or 0, path=ARG)
    # Then
    assert caught.value.path == ARG
    assert f"source {run.source_id} is being processed by cheap" in caught.value.message
    assert fake.state == before
    assert fake.dispatched == []


async def test_reprocess_is_not_held_up_by_other_models_or_other_sources() -> None:
    # Given: active runs of the same source with another model, and of another source
    ports = make_ports()
    fake = fakes_of(ports)
    run = a_run(fake, "completed")
    fake.add_chunks(run.id or 0, done=[0])
    fake.add_model("mid")
    busy = fake.add_batch("mid", status="running")
    fake.add_run(busy.id or 0, run.source_id, "mid", status="processing")
    elsewhere = a_run(fake, "processing")
    # When
    new = await processing.reprocess_run(ports, run.id or 0)
    # Then
    assert new.reprocessed_from_id == run.id
    assert fake.called("processing.busy_pair") == [(([run.source_id], ["cheap"]), {})]
    assert fake.state.runs[elsewhere.id or 0].status == "processing"
    assert len(fake.dispatched) == 1


async def test_reprocess_creates_nothing_when_the_commit_fails() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    run = a_run(fake, "completed")
    fake.add_chunks(run.id or 0, done=[0])
    before = copy.deepcopy(fake.state)
    fake.fail_next_commit = RuntimeError("commit failed")
    # When
    with pytest.raises(RuntimeError):
        await processing.reprocess_run(ports, run.id or 0)
    # Then
    assert fake.state == before
    assert fake.dispatched == []
