"""processBatch strategies in motion: start a plan per source type, take its next step when
the sample runs of the previous one have ended (docs/ARCHITECTURE.md, "Optimization").

Every plan's state lives in the database: each batch a plan creates carries the plan, its
step number and whether the step is final in its `config`; each decision is appended to the
`decisions` of the batches it concerns. Taking a step runs under a lock per (group, source
type) and is recorded as `afterStep` on the finished step's batches, so concurrent run ends,
restarts and the start-up catch-up take every step exactly once.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from domain.errors import DomainError
from domain.evaluation import by_price, policy_defaults, price_key
from domain.optimizer import Candidate, threshold_for
from domain.ports import Ports, Settings, UnitOfWork
from domain.services.batches import checked_models, create_batch, refuse_busy
from domain.services.forecast import keep_step_forecasts
from domain.strategy import Plan, Step, StrategyName, first_step, make_plan, next_step

log = logging.getLogger("mmos.strategy")

TERMINAL = ("completed", "failed", "cancelled")


async def start_plans(uow: UnitOfWork, settings: Settings, *, group_id: str, strategy: str,
                      catalog: Mapping[str, Any], sources: list[Any],
                      budget_usd: Decimal | None, path: tuple[str, ...], at: str,
                      mode: str = "interactive") -> list[Any]:
    """The opening step of one plan per source type of the request (`at`: when, ISO)."""
    prices = {name: price_key(row.input_cost_per_million, row.output_cost_per_million)
              for name, row in catalog.items()}
    candidates = by_price(prices)
    policy = await uow.performance.policy(policy_defaults(settings))
    reference = await _usable_reference(uow, policy.reference_model, budget_usd, settings)
    thresholds = await uow.performance.thresholds()
    by_type: dict[str, list[int]] = defaultdict(list)
    for source in sources:
        by_type[source.source_type].append(source.id or 0)
    created: list[Any] = []
    for source_type, ids in by_type.items():
        plan = make_plan(_strategy(strategy), source_type, ids, candidates, reference,
                         threshold_for(source_type, thresholds), settings.strategy_sample_sources,
                         mode=mode)
        history = (await uow.performance.pooled(source_type=source_type, models=candidates)
                   if plan.strategy == "aggressive" else [])
        step = first_step(plan, history)
        created += await _take(uow, settings, group_id, plan, step, 0, budget_usd, path,
                               at=at)
    return created


def _strategy(name: str) -> StrategyName:
    if name not in ("progressive", "aggressive", "conservative"):
        raise ValueError(f"unknown strategy {name!r}")
    return name  # type: ignore[return-value]


async def _usable_reference(uow: UnitOfWork, designated: str | None,
                            budget_usd: Decimal | None, settings: Settings) -> str | None:
    """The designated reference model when it can run now (the start's pre-flight included:
    the live workers hold its key, its context window holds a call); else None (the dearest
    candidate)."""
    if designated is None:
        return None
    try:
        await checked_models(uow, [designated], budget_usd, ("referenceModel",),
                             settings=settings)
    except DomainError:
        log.warning("designated reference model %r cannot run; using the dearest candidate",
                    designated)
        return None
    return designated


async def _take(uow: UnitOfWork, settings: Settings, group_id: str, plan: Plan, step: Step,
                number: int, budget_usd: Decimal | None, path: tuple[str, ...], *,
                at: str) -> list[Any]:
    """Create the step's batches (one per model over the step's sources), after every check."""
    if not step.models:
        return []
    catalog = await checked_models(uow, list(step.models), budget_usd, path)
    await refuse_busy(uow, step.source_ids, step.models, path)
    found = await uow.sources.get_many(list(step.source_ids))
    sources = [found[i] for i in step.source_ids if i in found]
    if not sources:
        return []
    record = {"kind": "started", "step": number, "at": at, "strategy": plan.strategy,
              "sourceType": plan.source_type, "threshold": plan.threshold, **step.to_json()}
    extra = {"plan": plan.to_json(), "step": number, "final": step.final}
    return [await create_batch(uow, settings, group_id=group_id, model=catalog[model],
                               sources=sources, strategy=plan.strategy,
                               budget_usd=budget_usd, extra_config=extra, decisions=[record],
                               mode=plan.mode)
            for model in step.models]


# --- the next step ------------------------------------------------------------------------------


async def advance_strategy(ports: Ports, batch_id: int) -> list[int]:
    """If `batch_id` belongs to a plan whose current step has ended, take the next step.

    Returns the ids of the batches created. Safe to call any number of times, from any process.
    """

    async def work(uow: UnitOfWork) -> list[Any]:
        created = await _advance(uow, ports, batch_id)
        uow.dispatch(job for batch in created for job in batch.job_ids)
        return created

    created = await ports.uow.retrying(work)
    batch_ids = [batch.batch_id for batch in created]
    # Each step's batches keep their forecast, as the first step's do (comparison).
    await keep_step_forecasts(ports, batch_ids)
    return batch_ids


async def advance_stalled_strategies(ports: Ports, limit: int = 100) -> int:
    """Take the steps a crash left pending: ended, non-final plan steps with no decision yet."""
    async with ports.uow(read_only=True) as uow:
        batch_ids = await uow.strategies.stalled_steps(limit)
    for batch_id in batch_ids:
        try:
            await advance_strategy(ports, batch_id)
        except Exception:
            log.warning("could not advance the plan of batch %s", batch_id, exc_info=True)
    return len(batch_ids)


async def _advance(uow: UnitOfWork, ports: Ports, batch_id: int) -> list[Any]:
    settings = ports.settings
    batch = await uow.processing.batch(batch_id)
    if batch is None or not batch.strategy or "plan" not in batch.config \
            or batch.config.get("final"):
        return []
    plan = Plan.from_json(batch.config["plan"])
    number = int(batch.config.get("step", 0))
    await uow.strategies.lock_plan(batch.group_id, plan.source_type)
    siblings = await uow.strategies.step_siblings(batch.group_id, plan.source_type, number)
    if any(s.status not in TERMINAL for s in siblings) or any(
            d.get("afterStep") == number for s in siblings for d in s.decisions or []):
        return []
    # Sample runs completed but not measured yet (a crash in between): measure them now.
    for source_id in await uow.strategies.unmeasured_samples(plan.sample_ids):
        await uow.performance.measure(source_id, policy_defaults(settings))
    pooled, done = await uow.strategies.plan_samples(batch.group_id, plan.source_type,
                                                     plan.sample_ids)
    measured = {c.model: c for c in pooled}
    if any(s.status == "cancelled" for s in siblings):
        step = Step("stop", (), (), True, None, ("a batch of this step was cancelled; the plan "
                                                 "stops here",))
    else:
        history = (await uow.performance.pooled(source_type=plan.source_type,
                                                models=plan.candidates)
                   if plan.strategy == "aggressive" else [])
        step = next_step(plan, measured, history, done)
    created: list[Any] = []
    error = None
    at = ports.clock.now().isoformat()
    try:
        created = await _take(uow, settings, batch.group_id, plan, step, number + 1,
                              batch.budget_usd, ("plan",), at=at)
    except DomainError as exc:  # a model disabled or busy meanwhile: say so, stop the plan
        error = exc.message
    record = {"kind": "decided", "afterStep": number, "at": at, "strategy": plan.strategy,
              "sourceType": plan.source_type, "threshold": plan.threshold,
              "measured": {m: _measurement(c) for m, c in sorted(measured.items())},
              **step.to_json(), "batchIds": [b.batch_id for b in created], "error": error}
    await uow.strategies.record_decision([s.id for s in siblings], record)
    log.info("plan %s/%s after step %d: %s %s", batch.group_id, plan.source_type, number,
             step.action, ", ".join(step.models) or "-")
    return created


def _measurement(c: Candidate) -> dict[str, Any]:
    return {"quality": round(c.quality, 4), "low": round(c.quality_low, 4),
            "high": round(c.quality_high, 4), "provisional": c.provisional,
            "costUsd": str(c.cost_usd), "groundedFragments": c.grounded_fragments,
            "costPerFragment": None if c.cost_per_fragment is None else str(
                c.cost_per_fragment.quantize(Decimal("1e-10"))),
            "samples": c.samples}
