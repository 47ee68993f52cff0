"""Processing: start batches (one per model, or a strategy's first step), cancel a batch,
retry a run, and the budgets that steer them (docs/ARCHITECTURE.md, "Jobs"
and "Budgets")."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from domain.errors import Conflict, FieldIssue, InvalidInput, NotFound
from domain.ports import Ports
from domain.services.batches import checked_mode, checked_models, create_batch, refuse_busy
from domain.services.forecast import keep_forecasts
from domain.services.strategies import advance_strategy, start_plans
from domain.settings_keys import DAILY_BUDGET, FRAGMENT_COST_LIMIT

log = logging.getLogger("mmos.processing")

MAX_MODELS = 10
MAX_SOURCES = 500
MAX_BATCH_BUDGET = Decimal(1_000_000)
MAX_AMOUNT = Decimal(1_000_000)
TERMINAL_BATCH = ("completed", "failed", "cancelled")
RETRYABLE_RUN = ("failed", "stopped_cost_limit", "skipped")


@dataclass(frozen=True, slots=True)
class StartedBatches:
    group_id: str
    batch_ids: list[int]


@dataclass(frozen=True, slots=True)
class BudgetSummary:
    """Today's budget (UTC) and the cost limit per grounded fragment in force."""

    day: date
    limit_usd: Decimal | None
    spent_usd: Decimal
    reserved_usd: Decimal
    remaining_usd: Decimal | None
    fragment_cost_limit_usd: Decimal | None


def _dedupe(values: list[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


async def start_processing(ports: Ports, *, source_ids: list[int], model_names: list[str],
                           strategy: str | None, budget_usd: Decimal | None,
                           path: tuple[str, ...] = ("input",),
                           mode: str | None = None) -> StartedBatches:
    """One batch per model over the sources, or, with a strategy, the first step of a plan per
    source type; every row in one transaction, workers woken after it commits. `mode` BATCH
    sends the chunks through the providers' batch APIs (refused for providers without one)."""
    issues: list[FieldIssue] = []
    requested = [name.strip() for name in model_names]
    positions = {name: index for index, name in reversed(list(enumerate(requested)))}
    model_names = _dedupe(requested)
    source_ids = _dedupe(source_ids)
    if not source_ids:
        issues.append(FieldIssue((*path, "sourceIds"), "must not be empty"))
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
    async with ports.uow() as uow:
        # Known, enabled, priced under a budget, callable by the live workers, fitting the
        # context window: every refusal before anything is queued (domain/preflight.py).
        catalog = await checked_models(uow, model_names, budget_usd, path, positions,
                                       settings=ports.settings)
        chosen = checked_mode(mode, catalog, model_names, path, positions)
        sources = await uow.sources.get_many(source_ids)
        missing = [sid for sid in source_ids if sid not in sources]
        if missing:
            raise NotFound("Source", ", ".join(map(str, missing)), (*path, "sourceIds"))
        ordered = [sources[sid] for sid in source_ids]
        group_id = str(uuid.uuid4())
        if strategy is None:
            await refuse_busy(uow, source_ids, model_names, path)
            created = [await create_batch(uow, ports.settings, group_id=group_id,
                                          model=catalog[name], sources=ordered, strategy=None,
                                          budget_usd=budget_usd, mode=chosen)
                       for name in model_names]
        else:
            created = await start_plans(uow, ports.settings, group_id=group_id,
                                        strategy=strategy, catalog=catalog, sources=ordered,
                                        budget_usd=budget_usd, path=path,
                                        at=ports.clock.now().isoformat(), mode=chosen)
        uow.dispatch(job for batch in created for job in batch.job_ids)
    # What estimateProcessing forecasts for each batch, kept for `comparison`: after the
    # commit, so no row stays locked while the tokens of the sources are counted. Best
    # effort: a forecast that cannot be kept never undoes a start.
    batch_ids = [batch.batch_id for batch in created]
    if ports.forecaster is None:
        return StartedBatches(group_id, batch_ids)
    try:
        async with ports.uow() as uow:
            await keep_forecasts(ports, uow, batch_ids, catalog, ordered, mode=chosen)
    except Exception:
        log.warning("no forecast kept for batches %s", batch_ids, exc_info=True)
    return StartedBatches(group_id, batch_ids)


async def batches(ports: Ports, batch_ids: Sequence[int]) -> list[Any]:
    """Batches by id, in the order asked."""
    async with ports.uow(read_only=True) as uow:
        return await uow.processing.batches(batch_ids)


async def cancel_batch(ports: Ports, batch_id: int) -> Any:
    """Stop a batch: open jobs cancelled, unfinished runs skipped, CANCELLED event; a plan the
    batch belongs to records that it stops here."""
    path = ("input", "batchId")
    async with ports.uow() as uow:
        if await uow.processing.batch(batch_id) is None:
            raise NotFound("Batch", batch_id, path)
        # The workers' lock order is job → run → batch: take them in that order too.
        await uow.jobs.cancel_for_batch(batch_id)
        await uow.processing.lock_runs_of_batch(batch_id)
        batch = await uow.processing.batch(batch_id, lock=True)
        if batch.status in TERMINAL_BATCH:
            raise Conflict(f"batch {batch_id} is already {batch.status}", path)
        batch = await uow.processing.cancel_batch(batch)
        # BATCH mode: what was reserved for submissions in flight is released now, and a
        # worker asks the provider to stop them.
        uow.dispatch(await uow.processing.abandon_provider_batches(
            batch_id, ports.settings.job_max_attempts))
    if batch.strategy is not None:
        await advance_strategy(ports, batch_id)
    return batch


async def retry_run(ports: Ports, run_id: int, *, failed_chunks_only: bool = False) -> Any:
    """Run again a failed, stopped or skipped run; chunks already paid for are kept. With
    `failed_chunks_only`, only the chunks whose answers stayed unreadable are called again
    (the way to retry a run that completed with errors)."""
    path = ("input", "runId")
    async with ports.uow() as uow:
        run = await uow.processing.run(run_id, lock=True)
        if run is None:
            raise NotFound("Run", run_id, path)
        allowed = RETRYABLE_RUN + (("completed_with_errors",) if failed_chunks_only else ())
        if run.status not in allowed:
            hint = ("; retry its failed chunks with failedChunksOnly: true"
                    if run.status == "completed_with_errors" else "")
            raise Conflict(f"run {run_id} is {run.status}; only failed, stopped or skipped "
                           f"runs can be retried{hint}", path)
        # Failed chunks are forgotten (their answers kept, superseded) so the new job calls
        # them again; done chunks are never called twice.
        failed = await uow.answers.supersede_failed(run_id)
        if failed_chunks_only and not failed:
            raise Conflict(f"run {run_id} has no failed chunks to retry",
                           ("input", "failedChunksOnly"))
        batch = await uow.processing.batch(run.batch_id, lock=True)
        job_id = await uow.processing.reopen_run(run, batch,
                                                 max_attempts=ports.settings.job_max_attempts)
        uow.dispatch([job_id])
    return run


REPROCESSABLE_RUN = ("completed", "completed_with_errors", "failed", "stopped_cost_limit")


async def reprocess_run(ports: Ports, run_id: int,
                        path: tuple[str, ...] = ("input", "runId")) -> Any:
    """Read a run again from its stored answers into a new run version (a batch of its own),
    after a parser or grounder upgrade: no provider call, no spend. The old run is kept for
    comparison. Returns the new run."""
    async with ports.uow() as uow:
        run = await uow.processing.run(run_id, lock=True)
        if run is None:
            raise NotFound("Run", run_id, path)
        if run.status not in REPROCESSABLE_RUN:
            raise Conflict(f"run {run_id} is {run.status}; only a finished run can be read "
                           "again", path)
        if await uow.answers.count_of_run(run_id) == 0:
            raise Conflict(f"run {run_id} has no stored answers (they are kept "
                           f"{ports.settings.answer_retention_days} days; runs made before "
                           "answers were kept have none)", path)
        if await uow.processing.busy_pair([run.source_id], [run.model_name]) is not None:
            raise Conflict(f"source {run.source_id} is being processed by {run.model_name}; "
                           "wait for that run or cancel its batch", path)
        created = await uow.processing.reprocess(
            run, group_id=str(uuid.uuid4()), max_attempts=ports.settings.job_max_attempts)
        uow.dispatch(created.job_ids)
        new_run = await uow.processing.run(created.run_ids[0])
    return new_run


async def resume_budget_waiters(ports: Ports) -> int:
    """Paused jobs whose next call now fits the budget go back to the queue."""
    async with ports.uow() as uow:
        state = await uow.budget.state()
        resumed = await uow.jobs.resume_budget_waiters(state.remaining_usd)
        uow.dispatch(resumed)
    return len(resumed)


def checked_amount(value: Decimal | None, path: tuple[str, ...]) -> Decimal | None:
    """An operator amount: null (no limit) or 0..1,000,000."""
    if value is None:
        return None
    if not value.is_finite() or value < 0 or value > MAX_AMOUNT:
        raise InvalidInput.single(path, f"must be between 0 and {MAX_AMOUNT}")
    return value


async def _store_amount(ports: Ports, key: str, value: Decimal | None, who: str) -> None:
    amount = checked_amount(value, ("input", "amountUsd"))
    async with ports.uow() as uow:
        await uow.settings_store.put(key, None if amount is None else str(amount), who)


async def set_daily_budget(ports: Ports, amount: Decimal | None, who: str) -> int:
    """Set today's and every following day's budget (null: none); returns the runs that were
    waiting for money and now resume."""
    await _store_amount(ports, DAILY_BUDGET, amount, who)
    return await resume_budget_waiters(ports)


async def set_fragment_cost_limit(ports: Ports, amount: Decimal | None, who: str) -> None:
    """Set the cost limit per grounded fragment (null: none)."""
    await _store_amount(ports, FRAGMENT_COST_LIMIT, amount, who)


async def budget(ports: Ports) -> BudgetSummary:
    """Today's spend, reservations and what remains, with the per-fragment limit."""
    async with ports.uow(read_only=True) as uow:
        state = await uow.budget.state()
        limit = await uow.budget.fragment_cost_limit()
    return BudgetSummary(state.day, state.limit_usd, state.spent_usd, state.reserved_usd,
                         state.remaining_usd, limit)
