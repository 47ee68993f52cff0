"""processBatch strategies in motion: start a plan per source type, take its next step when
the sample runs of the previous one have ended (DESIGN §10).

Every plan's state lives in Postgres: each batch a plan creates carries the plan, its step
number and whether the step is final in its `config`; each decision is appended to the
`decisions` of the batches it concerns. Taking a step runs under a transaction-scoped advisory
lock per (group, source type) and is recorded as `afterStep` on the finished step's batches, so
concurrent run ends, restarts and the startup catch-up take every step exactly once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from api.bootstrap import Runtime
from api.quality import policy_defaults
from api.services import checked_models, create_batch, dispatch, publish, refuse_busy
from api.settings import Settings
from db.engine import sqlstate_of
from db.performance import PerformanceRepository, plan_samples
from db.processing import NewBatch
from db.sources import SourceRepository
from db.tables import BatchRow, ModelRow, SourceRow
from domain.errors import DomainError
from domain.evaluation import by_price, price_key
from domain.optimizer import Candidate, threshold_for
from domain.strategy import Plan, Step, StrategyName, first_step, make_plan, next_step

log = logging.getLogger("mmos.strategy")

TX_RETRIES = 5
RETRYABLE_SQLSTATES = {"40P01", "40001"}
TERMINAL = ("completed", "failed", "cancelled")


async def start_plans(session: Any, settings: Settings, *, group_id: str, strategy: str,
                      catalog: Mapping[str, ModelRow], sources: list[SourceRow],
                      budget_usd: Decimal | None, path: tuple[str, ...]) -> list[NewBatch]:
    """The opening step of one plan per source type of the request."""
    repository = PerformanceRepository(session)
    prices = {name: price_key(row.input_cost_per_million, row.output_cost_per_million)
              for name, row in catalog.items()}
    candidates = by_price(prices)
    policy = await repository.policy(policy_defaults(settings))
    reference = await _usable_reference(session, settings, policy.reference_model, budget_usd)
    thresholds = await repository.thresholds()
    by_type: dict[str, list[int]] = defaultdict(list)
    for source in sources:
        by_type[source.source_type].append(source.id or 0)
    created: list[NewBatch] = []
    for source_type, ids in by_type.items():
        plan = make_plan(_strategy(strategy), source_type, ids, candidates, reference,
                         threshold_for(source_type, thresholds), settings.strategy_sample_sources)
        history = (await repository.pooled(source_type=source_type, models=candidates)
                   if plan.strategy == "aggressive" else [])
        step = first_step(plan, history)
        created += await _take(session, settings, group_id, plan, step, 0, budget_usd, path)
    return created


def _strategy(name: str) -> StrategyName:
    if name not in ("progressive", "aggressive", "conservative"):
        raise ValueError(f"unknown strategy {name!r}")
    return name  # type: ignore[return-value]


async def _usable_reference(session: Any, settings: Settings, designated: str | None,
                            budget_usd: Decimal | None) -> str | None:
    """The designated reference model when it can run now; else None (the dearest candidate)."""
    if designated is None:
        return None
    try:
        await checked_models(session, settings, [designated], budget_usd, ("referenceModel",))
    except DomainError:
        log.warning("designated reference model %r cannot run; using the dearest candidate",
                    designated)
        return None
    return designated


async def _take(session: Any, settings: Settings, group_id: str, plan: Plan, step: Step,
                number: int, budget_usd: Decimal | None,
                path: tuple[str, ...]) -> list[NewBatch]:
    """Create the step's batches (one per model over the step's sources), after every check."""
    if not step.models:
        return []
    catalog = await checked_models(session, settings, list(step.models), budget_usd, path)
    await refuse_busy(session, step.source_ids, step.models, path)
    found = await SourceRepository(session).get_many(list(step.source_ids))
    sources = [found[i] for i in step.source_ids if i in found]
    if not sources:
        return []
    record = {"kind": "started", "step": number, "at": _now(), "strategy": plan.strategy,
              "sourceType": plan.source_type, "threshold": plan.threshold, **step.to_json()}
    extra = {"plan": plan.to_json(), "step": number, "final": step.final}
    return [await create_batch(session, settings, group_id=group_id, model=catalog[model],
                               sources=sources, strategy=plan.strategy,
                               budget_usd=budget_usd, extra_config=extra, decisions=[record])
            for model in step.models]


# --- the next step ------------------------------------------------------------------------------


async def advance_strategy(runtime: Runtime, batch_id: int) -> list[int]:
    """If `batch_id` belongs to a plan whose current step has ended, take the next step.

    Returns the ids of the batches created. Safe to call any number of times, from any process.
    """
    created: list[NewBatch] = []
    for attempt in range(TX_RETRIES):
        try:
            async with runtime.transaction() as session:
                created = await _advance(session, runtime.settings, batch_id)
            break
        except sa.exc.DBAPIError as exc:
            if sqlstate_of(exc) not in RETRYABLE_SQLSTATES or attempt == TX_RETRIES - 1:
                raise
            await asyncio.sleep(0.05 * (attempt + 1) * (1 + random.random()))
    if created:
        await publish(runtime, session)
        await dispatch(runtime, [job for batch in created for job in batch.job_ids])
    return [batch.batch_id for batch in created]


async def advance_stalled_strategies(runtime: Runtime, limit: int = 100) -> int:
    """Take the steps a crash left pending: ended, non-final plan steps with no decision yet."""
    async with runtime.read() as session:
        rows = await session.execute(sa.text("""
            SELECT min(b.id) FROM processing_batches b
            WHERE b.strategy IS NOT NULL AND b.config ? 'plan'
              AND NOT coalesce((b.config ->> 'final')::boolean, false)
              AND b.status IN ('completed', 'failed', 'cancelled')
              AND NOT EXISTS (
                SELECT 1 FROM processing_batches o
                WHERE o.group_id = b.group_id
                  AND o.config -> 'plan' ->> 'sourceType' = b.config -> 'plan' ->> 'sourceType'
                  AND o.config ->> 'step' = b.config ->> 'step'
                  AND o.decisions @> jsonb_build_array(jsonb_build_object(
                        'afterStep', (b.config ->> 'step')::int)))
            GROUP BY b.group_id, b.config -> 'plan' ->> 'sourceType', b.config ->> 'step'
            LIMIT :n"""), {"n": limit})
        batch_ids = [int(row[0]) for row in rows]
    for batch_id in batch_ids:
        try:
            await advance_strategy(runtime, batch_id)
        except Exception:
            log.warning("could not advance the plan of batch %s", batch_id, exc_info=True)
    return len(batch_ids)


async def _advance(session: Any, settings: Settings, batch_id: int) -> list[NewBatch]:
    batch = await session.get(BatchRow, batch_id)
    if batch is None or not batch.strategy or "plan" not in batch.config \
            or batch.config.get("final"):
        return []
    plan = Plan.from_json(batch.config["plan"])
    number = int(batch.config.get("step", 0))
    await session.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                          {"k": f"mmos.strategy:{batch.group_id}:{plan.source_type}"})
    siblings = (await session.execute(sa.text("""
        SELECT id, status, decisions FROM processing_batches
        WHERE group_id = :g AND config -> 'plan' ->> 'sourceType' = :t
          AND (config ->> 'step')::int = :n ORDER BY id"""),
        {"g": batch.group_id, "t": plan.source_type, "n": number})).all()
    if any(s.status not in TERMINAL for s in siblings) or any(
            d.get("afterStep") == number for s in siblings for d in s.decisions or []):
        return []
    repository = PerformanceRepository(session)
    await _measure_missing(session, repository, settings, plan)
    pooled, done = await plan_samples(session, batch.group_id, plan.source_type,
                                      plan.sample_ids)
    measured = {c.model: c for c in pooled}
    if any(s.status == "cancelled" for s in siblings):
        step = Step("stop", (), (), True, None, ("a batch of this step was cancelled; the plan "
                                                 "stops here",))
    else:
        history = (await repository.pooled(source_type=plan.source_type,
                                           models=plan.candidates)
                   if plan.strategy == "aggressive" else [])
        step = next_step(plan, measured, history, done)
    created: list[NewBatch] = []
    error = None
    try:
        created = await _take(session, settings, batch.group_id, plan, step, number + 1,
                              batch.budget_usd, ("plan",))
    except DomainError as exc:  # a model disabled or busy meanwhile: say so, stop the plan
        error = exc.message
    record = {"kind": "decided", "afterStep": number, "at": _now(), "strategy": plan.strategy,
              "sourceType": plan.source_type, "threshold": plan.threshold,
              "measured": {m: _measurement(c) for m, c in sorted(measured.items())},
              **step.to_json(), "batchIds": [b.batch_id for b in created], "error": error}
    await session.execute(sa.text(
        "UPDATE processing_batches SET decisions = decisions || CAST(:d AS jsonb)"
        " WHERE id = ANY(:ids)"), {"d": _json([record]), "ids": [s.id for s in siblings]})
    log.info("plan %s/%s after step %d: %s %s", batch.group_id, plan.source_type, number,
             step.action, ", ".join(step.models) or "-")
    return created


async def _measure_missing(session: Any, repository: PerformanceRepository,
                           settings: Settings, plan: Plan) -> None:
    """Sample runs completed but not measured yet (a crash in between): measure them now."""
    rows = await session.execute(sa.text("""
        SELECT DISTINCT r.source_id FROM source_processing r
        LEFT JOIN model_performance mp ON mp.run_id = r.id
        WHERE r.source_id = ANY(:ids) AND r.status = 'completed' AND mp.id IS NULL"""),
        {"ids": list(plan.sample_ids)})
    for (source_id,) in rows.all():
        await repository.measure(int(source_id), policy_defaults(settings))


def _measurement(c: Candidate) -> dict[str, Any]:
    return {"quality": round(c.quality, 4), "low": round(c.quality_low, 4),
            "high": round(c.quality_high, 4), "provisional": c.provisional,
            "costUsd": str(c.cost_usd), "groundedFragments": c.grounded_fragments,
            "costPerFragment": None if c.cost_per_fragment is None else str(
                c.cost_per_fragment.quantize(Decimal("1e-10"))),
            "samples": c.samples}


def _json(value: Any) -> str:
    return json.dumps(value, default=str)


def _now() -> str:
    return datetime.now(UTC).isoformat()
