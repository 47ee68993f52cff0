"""Application use cases behind the processing mutations (validate, write in one transaction,
dispatch after commit)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from api.bootstrap import Runtime
from api.settings import Settings
from db.budget import BudgetLedger
from db.catalog import ModelRepository, spec_of
from db.jobs import JobQueue
from db.processing import NewBatch, ProcessingRepository
from db.sources import SourceRepository
from db.tables import BatchRow, ModelRow, RunRow, SourceRow
from domain.errors import Conflict, FieldIssue, InvalidInput, NotFound
from domain.prompt import PROMPT_VERSION, prompt_hash

MAX_MODELS = 10
MAX_SOURCES = 500
MAX_BATCH_BUDGET = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class StartedBatches:
    group_id: str
    batch_ids: list[int]


def _dedupe(values: list[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


async def start_processing(runtime: Runtime, *, source_ids: list[int], model_names: list[str],
                           strategy: str | None, budget_usd: Decimal | None,
                           path: tuple[str, ...] = ("input",)) -> StartedBatches:
    """One batch per model over the sources, or, with a strategy, the first step of a plan per
    source type (DESIGN §10); every row in one transaction, then wake workers."""
    issues: list[FieldIssue] = []
    model_names = _dedupe([name.strip() for name in model_names])
    source_ids = _dedupe(source_ids)
    if not model_names:
        issues.append(FieldIssue((*path, "models"), "must name at least one model"))
    if len(model_names) > MAX_MODELS:
        issues.append(FieldIssue((*path, "models"), f"may name at most {MAX_MODELS} models"))
    if len(source_ids) > MAX_SOURCES:
        issues.append(FieldIssue((*path, "sourceIds"), f"may name at most {MAX_SOURCES}"))
    if budget_usd is not None and (not budget_usd.is_finite() or not
                                   Decimal(0) < budget_usd <= MAX_BATCH_BUDGET):
        issues.append(FieldIssue((*path, "budgetUsd"),
                                 f"must be a positive amount up to {MAX_BATCH_BUDGET}"))
    if issues:
        raise InvalidInput(issues)
    async with runtime.transaction() as session:
        catalog = await checked_models(session, runtime.settings, model_names, budget_usd, path)
        sources = await SourceRepository(session).get_many(source_ids)
        missing = [sid for sid in source_ids if sid not in sources]
        if missing:
            raise NotFound("Source", ", ".join(map(str, missing)), (*path, "sourceIds"))
        ordered = [sources[sid] for sid in source_ids]
        group_id = str(uuid.uuid4())
        if strategy is None:
            await refuse_busy(session, source_ids, model_names, path)
            created = [await create_batch(session, runtime.settings, group_id=group_id,
                                          model=catalog[name], sources=ordered, strategy=None,
                                          budget_usd=budget_usd) for name in model_names]
        else:
            from api.strategies import start_plans

            created = await start_plans(session, runtime.settings, group_id=group_id,
                                        strategy=strategy, catalog=catalog, sources=ordered,
                                        budget_usd=budget_usd, path=path)
    await publish(runtime, session)
    await dispatch(runtime, [job for batch in created for job in batch.job_ids])
    return StartedBatches(group_id, [batch.batch_id for batch in created])


async def checked_models(session: Any, settings: Settings, model_names: list[str],
                         budget_usd: Decimal | None, path: tuple[str, ...]
                         ) -> dict[str, ModelRow]:
    """Catalog rows of the named models; unknown, disabled, or unpriced under a budget refused."""
    issues: list[FieldIssue] = []
    catalog = await ModelRepository(session).get_many(model_names)
    for index, name in enumerate(model_names):
        row = catalog.get(name)
        if row is None:
            issues.append(FieldIssue((*path, "models", str(index)),
                                     f"unknown model {name[:100]!r}; see the models query"))
        elif not row.enabled:
            issues.append(FieldIssue((*path, "models", str(index)),
                                     f"model {name!r} is disabled"))
    if issues:
        raise InvalidInput(issues)
    daily = await BudgetLedger(session, settings.daily_budget_usd).daily_limit()
    if daily is not None or budget_usd is not None:
        for index, name in enumerate(model_names):
            if not spec_of(catalog[name]).is_priced:
                issues.append(FieldIssue(
                    (*path, "models", str(index)),
                    f"model {name!r} has no known price and a budget is in force; "
                    "set its prices with updateModel first"))
    if issues:
        raise InvalidInput(issues)
    return catalog


async def refuse_busy(session: Any, source_ids: Sequence[int], model_names: Sequence[str],
                      path: tuple[str, ...]) -> None:
    """Conflict when one of the models is already processing one of the sources."""
    runs = RunRow.__table__.c  # type: ignore[attr-defined]
    active = await session.execute(sa.select(runs.source_id, runs.model_name).where(
        runs.source_id.in_(list(source_ids)), runs.model_name.in_(list(model_names)),
        runs.status.in_(["pending", "processing", "waiting_budget"])))
    busy = active.first()
    if busy is not None:
        raise Conflict(f"source {busy.source_id} is already being processed by "
                       f"{busy.model_name}; wait for that batch or cancel it",
                       (*path, "models"))


async def create_batch(session: Any, settings: Settings, *, group_id: str, model: ModelRow,
                       sources: list[SourceRow], strategy: str | None,
                       budget_usd: Decimal | None, extra_config: dict[str, Any] | None = None,
                       decisions: list[Any] | None = None) -> NewBatch:
    """One batch of one model over the sources, with its frozen config snapshot."""
    config = {"promptVersion": PROMPT_VERSION, "promptHash": prompt_hash(),
              "temperature": 0.0,
              "maxOutputTokens": min(model.max_output_tokens, settings.max_output_tokens),
              "chunkMaxTokens": settings.chunk_max_tokens,
              "chunkOverlapTokens": settings.chunk_overlap_tokens,
              "strategy": strategy, "litellmModel": model.litellm_model,
              **(extra_config or {})}
    return await ProcessingRepository(session).create_batch(
        group_id=group_id, model=model, sources=sources, strategy=strategy, config=config,
        budget_usd=budget_usd, max_attempts=settings.job_max_attempts, decisions=decisions)


async def publish(runtime: Runtime, session: Any) -> None:
    """Hand the progress events a committed transaction appended to the event bus."""
    from workers.pipeline import publish_committed

    events = list(session.info.get("mmos_events", []))
    if events:
        await publish_committed(runtime, events)


async def dispatch(runtime: Runtime, job_ids: list[int]) -> None:
    """Wake workers for committed jobs (a worker host's runtime has no dispatcher of its own:
    one is made on the spot when this process has a broker)."""
    if not job_ids:
        return
    dispatcher = runtime.services.get("dispatcher")
    if dispatcher is None:
        from workers.broker import current_broker

        if current_broker() is None:
            return  # no broker here: the sweeper sends messages for unsent jobs
        from workers.dispatch import Dispatcher

        dispatcher = Dispatcher(runtime)
    await dispatcher.send(job_ids)


async def cancel_batch(runtime: Runtime, batch_id: int) -> BatchRow:
    """Stop a batch: open jobs cancelled, unfinished runs skipped, CANCELLED event."""
    async with runtime.transaction() as session:
        current = await session.get(BatchRow, batch_id)
        if current is None:
            raise NotFound("Batch", batch_id, ("input", "batchId"))
        # The workers' lock order is job → run → batch: take them in that order too.
        await JobQueue(session).cancel_for_batch(batch_id)
        runs = RunRow.__table__.c  # type: ignore[attr-defined]
        await session.execute(sa.select(runs.id).where(runs.batch_id == batch_id)
                              .order_by(runs.id).with_for_update())
        batch = await session.get(BatchRow, batch_id, with_for_update=True,
                                  populate_existing=True)
        assert batch is not None
        if batch.status in ("completed", "failed", "cancelled"):
            raise Conflict(f"batch {batch_id} is already {batch.status}", ("input", "batchId"))
        await session.execute(sa.update(RunRow).where(
            runs.batch_id == batch_id, runs.status.in_(["pending", "processing",
                                                        "waiting_budget"])
        ).values(status="skipped", error_message="cancelled", completed_at=sa.func.now()))
        batch.status = "cancelled"
        batch.completed_at = sa.func.now()  # type: ignore[assignment]
        batch.error_message = "cancelled by request"
        repository = ProcessingRepository(session)
        await repository.append_event(batch_id, "CANCELLED", None, {"message": "cancelled"})
        source_ids = (await session.execute(sa.select(runs.source_id).where(
            runs.batch_id == batch_id))).scalars().all()
        for source_id in source_ids:
            await repository._source_status(source_id)
        await session.flush()
        await session.refresh(batch)
    await publish(runtime, session)
    if batch.strategy is not None:
        from api.strategies import advance_strategy

        await advance_strategy(runtime, batch_id)  # its plan records that it stops here
    return batch


async def retry_run(runtime: Runtime, run_id: int) -> RunRow:
    """Run again a failed, stopped or skipped run; chunks already paid for are kept."""
    async with runtime.transaction() as session:
        run = await session.get(RunRow, run_id, with_for_update=True)
        if run is None:
            raise NotFound("Run", run_id, ("input", "runId"))
        if run.status not in ("failed", "stopped_cost_limit", "skipped"):
            raise Conflict(f"run {run_id} is {run.status}; only failed, stopped or skipped runs "
                           "can be retried", ("input", "runId"))
        batch = await session.get(BatchRow, run.batch_id, with_for_update=True)
        source = await SourceRepository(session).require(run.source_id)
        assert batch is not None
        run.status = "pending"
        run.error_message = None
        run.completed_at = None
        batch.status = "running"
        batch.completed_at = None
        batch.error_message = None
        from domain.model import ExtractionPriority, JobKind

        job_id = await JobQueue(session).enqueue(
            kind=JobKind.EXTRACT_RUN.value, priority=ExtractionPriority(
                source.extraction_priority).rank, run_id=run_id, batch_id=batch.id,
            max_attempts=runtime.settings.job_max_attempts)
        await ProcessingRepository(session).append_event(batch.id or 0, "QUEUED", run_id,
                                                         {"retry": True})
        await session.flush()
        await session.refresh(run)
    await publish(runtime, session)
    await dispatch(runtime, [job_id])
    return run


async def resume_budget_waiters(runtime: Runtime) -> int:
    """After a budget change: paused jobs whose next call now fits go back to the queue."""
    async with runtime.transaction() as session:
        ledger = BudgetLedger(session, runtime.settings.daily_budget_usd)
        state = await ledger.state()
        resumed = await JobQueue(session).resume_budget_waiters(state.remaining_usd)
    await dispatch(runtime, resumed)
    return len(resumed)
