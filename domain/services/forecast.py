"""The forecast of a processing request before any money is spent (`estimateProcessing`,
`mmos estimate`), and the forecast each batch keeps when it starts so `comparison` can set
it against the actual cost and time. The arithmetic is domain/forecast.py's."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from domain.errors import FieldIssue, InvalidInput, NotFound
from domain.forecast import (
    Capacity,
    History,
    ModelForecast,
    SourceCalls,
    StrategyTotals,
    forecast_model,
    strategy_totals,
)
from domain.ports import Forecaster, Ports, UnitOfWork
from domain.services.batches import checked_mode
from domain.sources import stored_subject

log = logging.getLogger("mmos.forecast")

MAX_MODELS = 10
MAX_SOURCES = 500
STRATEGIES = ("progressive", "aggressive", "conservative")
LIVE_WITHIN_SECONDS = 30
STRATEGY_RULE = ("every candidate on the sample (the first strategySampleSources sources "
                 "of each type), then one model on the rest: worst case the dearest "
                 "candidate, expected the mean of the candidates")


@dataclass(frozen=True, slots=True)
class ModelEstimate:
    forecast: ModelForecast
    sample_sources: int  # sources every candidate runs on (all of them without a strategy)
    budget_covers_worst: bool | None  # None: no budget in force


@dataclass(frozen=True, slots=True)
class Estimate:
    mode: str
    strategy: str | None
    strategy_rule: str | None
    models: list[ModelEstimate]
    expected_cost_usd: Decimal | None
    worst_cost_usd: Decimal | None
    expected_seconds: float
    workers: int
    workers_assumed: bool  # no heartbeat seen: one worker assumed
    budget_remaining_usd: Decimal | None
    budget_covers_worst: bool | None


def _dedupe(values: list[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


def _forecaster(ports: Ports) -> Forecaster:
    if ports.forecaster is None:
        raise RuntimeError("no forecaster is wired (api/container.py)")
    return ports.forecaster


def _capacity(ports: Ports, row: Any, workers: int) -> Capacity:
    return Capacity(workers=workers,
                    calls_per_worker=ports.settings.worker_threads * ports.settings.llm_concurrency,
                    chunks_per_job=ports.settings.llm_concurrency,
                    rpm=getattr(row, "rpm", None), tpm=getattr(row, "tpm", None),
                    max_concurrency=getattr(row, "max_concurrency", None))


async def model_forecast(ports: Ports, uow: UnitOfWork, row: Any, sources: Sequence[Any], *,
                         mode: str, history: History, workers: int) -> ModelForecast:
    """One model's forecast over the sources (their content loaded). Counting tokens is CPU
    work (thousands of tokenizer calls for a large request): it runs off the event loop."""
    forecaster = _forecaster(ports)
    spec = uow.catalog.spec_of(row)
    max_tokens = min(row.max_output_tokens, ports.settings.max_output_tokens)
    segments = await uow.segments.of_sources([s.id or 0 for s in sources])
    items = [(s.id or 0, s.source_type, s.content, s.language, segments.get(s.id or 0, ()),
              stored_subject(s.subject_name, s.subject_aliases)) for s in sources]

    def count() -> ModelForecast:
        calls = [SourceCalls(sid, kind, forecaster.prompt_tokens(
            spec, max_tokens, content=content, language=language, source_type=kind,
            segments=layout, subject=subject))
            for sid, kind, content, language, layout, subject in items]
        return forecast_model(row.name, calls, max_tokens=max_tokens,
                              pricing=forecaster.pricing(spec, batch=mode == "batch"),
                              capacity=_capacity(ports, row, workers), history=history)

    return await asyncio.to_thread(count)


def _checked(source_ids: list[int], model_names: list[str], strategy: str | None,
             path: tuple[str, ...]) -> tuple[list[int], list[str], dict[str, int], str | None]:
    issues: list[FieldIssue] = []
    requested = [name.strip() for name in model_names]
    positions = {name: index for index, name in reversed(list(enumerate(requested)))}
    names, ids = _dedupe(requested), _dedupe(source_ids)
    if not ids:
        issues.append(FieldIssue((*path, "sourceIds"), "must not be empty"))
    if len(ids) > MAX_SOURCES:
        issues.append(FieldIssue((*path, "sourceIds"), f"may name at most {MAX_SOURCES}"))
    if not names:
        issues.append(FieldIssue((*path, "models"), "must name at least one model"))
    if len(names) > MAX_MODELS:
        issues.append(FieldIssue((*path, "models"), f"may name at most {MAX_MODELS} models"))
    chosen = None if strategy is None else strategy.strip().lower()
    if chosen is not None and chosen not in STRATEGIES:
        issues.append(FieldIssue((*path, "strategy"),
                                 f"must be one of {', '.join(s.upper() for s in STRATEGIES)}"))
    if issues:
        raise InvalidInput(issues)
    return ids, names, positions, chosen


def _sample(sources: Sequence[Any], per_type: int) -> tuple[list[Any], list[Any]]:
    """The strategy's sample (the first `per_type` sources of each type, as
    domain/strategy.py takes them) and the rest."""
    seen: dict[str, int] = {}
    sample: list[Any] = []
    rest: list[Any] = []
    for source in sources:
        taken = seen.get(source.source_type, 0)
        (sample if taken < per_type else rest).append(source)
        seen[source.source_type] = taken + 1
    return sample, rest


def _add(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    return None if a is None or b is None else a + b


def _joined(model: str, a: ModelForecast, b: ModelForecast) -> ModelForecast:
    """The sample's and the rest's forecasts of one model as one (what it costs if chosen)."""
    return ModelForecast(
        model=model, sources=[*a.sources, *b.sources], chunks=a.chunks + b.chunks,
        input_tokens=a.input_tokens + b.input_tokens,
        expected_output_tokens=a.expected_output_tokens + b.expected_output_tokens,
        worst_output_tokens=a.worst_output_tokens + b.worst_output_tokens,
        expected_cost_usd=_add(a.expected_cost_usd, b.expected_cost_usd),
        worst_cost_usd=_add(a.worst_cost_usd, b.worst_cost_usd),
        expected_seconds=a.expected_seconds + b.expected_seconds,
        output_ratio=a.output_ratio if not b.input_tokens else b.output_ratio
        if not a.input_tokens else (a.output_ratio * a.input_tokens
                                    + b.output_ratio * b.input_tokens)
        / (a.input_tokens + b.input_tokens),
        output_ratio_basis=", ".join(sorted({*a.output_ratio_basis.split(", "),
                                             *b.output_ratio_basis.split(", ")} - {""})),
        latency_ms_per_call=a.latency_ms_per_call, latency_basis=a.latency_basis,
        parallel_calls=max(a.parallel_calls, b.parallel_calls),
        cached_prefix_tokens=a.cached_prefix_tokens, bound_by=a.bound_by,
        expected_list_cost_usd=_add(a.expected_list_cost_usd, b.expected_list_cost_usd),
        expected_cache_saved_usd=_add(a.expected_cache_saved_usd, b.expected_cache_saved_usd),
        expected_batch_saved_usd=_add(a.expected_batch_saved_usd, b.expected_batch_saved_usd))


async def estimate_processing(ports: Ports, *, source_ids: list[int], model_names: list[str],
                              strategy: str | None = None, mode: str | None = None,
                              path: tuple[str, ...] = ("input",)) -> Estimate:
    """What processing the sources with the models would cost and take, per model, and
    whether today's budget covers the worst case. Refuses what startMultiModelProcessing
    refuses about the request itself (unknown or disabled models, unknown sources, bad
    mode), with the same field paths; nothing is written."""
    ids, names, positions, chosen = _checked(source_ids, model_names, strategy, path)
    async with ports.uow(read_only=True) as uow:
        catalog = await _known_models(uow, names, path, positions)
        value = checked_mode(mode, catalog, names, path, positions)
        found = await uow.sources.get_many(ids)
        missing = [sid for sid in ids if sid not in found]
        if missing:
            raise NotFound("Source", ", ".join(map(str, missing)), (*path, "sourceIds"))
        ordered = [found[sid] for sid in ids]
        history = await uow.forecasts.history(names)
        seen = await uow.forecasts.live_workers(LIVE_WITHIN_SECONDS)
        state = await uow.budget.state()
        workers = max(1, seen)
        estimates: list[ModelEstimate] = []
        if chosen is None:
            forecasts = {name: await model_forecast(ports, uow, catalog[name], ordered,
                                                    mode=value, history=history,
                                                    workers=workers)
                         for name in names}
            totals = StrategyTotals(
                _total([f.expected_cost_usd for f in forecasts.values()]),
                _total([f.worst_cost_usd for f in forecasts.values()]),
                max(f.expected_seconds for f in forecasts.values()))
            estimates = [ModelEstimate(forecasts[n], len(ordered), _covers(
                forecasts[n].worst_cost_usd, state.remaining_usd)) for n in names]
        else:
            sample, rest = _sample(ordered, ports.settings.strategy_sample_sources)
            on_sample = {n: await model_forecast(ports, uow, catalog[n], sample, mode=value,
                                                 history=history, workers=workers)
                         for n in names}
            on_rest = {n: await model_forecast(ports, uow, catalog[n], rest, mode=value,
                                               history=history, workers=workers)
                       for n in names}
            totals = strategy_totals(on_sample, on_rest)
            for n in names:
                joined = _joined(n, on_sample[n], on_rest[n])
                estimates.append(ModelEstimate(joined, len(sample),
                                               _covers(joined.worst_cost_usd,
                                                       state.remaining_usd)))
    return Estimate(mode=value, strategy=chosen, strategy_rule=STRATEGY_RULE if chosen else None,
                    models=estimates, expected_cost_usd=totals.expected_cost_usd,
                    worst_cost_usd=totals.worst_cost_usd,
                    expected_seconds=totals.expected_seconds, workers=workers,
                    workers_assumed=seen == 0, budget_remaining_usd=state.remaining_usd,
                    budget_covers_worst=_covers(totals.worst_cost_usd, state.remaining_usd))


async def _known_models(uow: UnitOfWork, names: list[str], path: tuple[str, ...],
                          positions: Mapping[str, int]) -> dict[str, Any]:
    """Known, enabled models; an unpriced model is forecast (its cost null), not refused."""
    issues: list[FieldIssue] = []
    catalog = await uow.catalog.get_many(names)
    for name in names:
        row = catalog.get(name)
        at = (*path, "models", str(positions.get(name, names.index(name))))
        if row is None:
            issues.append(FieldIssue(at, f"unknown model {name[:100]!r}; see the models query"))
        elif not row.enabled:
            issues.append(FieldIssue(at, f"model {name!r} is disabled"))
    if issues:
        raise InvalidInput(issues)
    return catalog


def _total(values: Sequence[Decimal | None]) -> Decimal | None:
    if any(v is None for v in values):
        return None
    return sum((v for v in values if v is not None), Decimal(0))


def _covers(worst: Decimal | None, remaining: Decimal | None) -> bool | None:
    if remaining is None:
        return None
    return worst is not None and worst <= remaining


async def keep_forecasts(ports: Ports, uow: UnitOfWork, batch_ids: Sequence[int],
                         catalog: Mapping[str, Any], sources: Sequence[Any], *,
                         mode: str) -> None:
    """Store each new batch's forecast (its model over its sources) on the batch, for
    `comparison`. Best effort: a forecast that cannot be made never stops a start."""
    if ports.forecaster is None or not batch_ids:
        return
    try:
        by_id = {s.id: s for s in sources}
        history = await uow.forecasts.history(list(catalog))
        workers = max(1, await uow.forecasts.live_workers(LIVE_WITHIN_SECONDS))
        of_batch = await uow.forecasts.batch_sources(batch_ids)
        batches = {b.id: b for b in await uow.processing.batches(list(batch_ids))}
        for batch_id in batch_ids:
            row = catalog.get(batches[batch_id].model_name)
            chosen = [by_id[sid] for sid in of_batch.get(batch_id, []) if sid in by_id]
            if row is None or not chosen:
                continue
            forecast = await model_forecast(ports, uow, row, chosen, mode=mode,
                                            history=history, workers=workers)
            await uow.forecasts.store(batch_id, forecast.to_record())
    except Exception:
        log.warning("no forecast kept for batches %s", list(batch_ids), exc_info=True)


async def keep_step_forecasts(ports: Ports, batch_ids: Sequence[int]) -> None:
    """Store the forecast of batches a strategy step created (their models over their
    sources), as a start does for its first batches. Best effort, after the step's commit."""
    if ports.forecaster is None or not batch_ids:
        return
    try:
        async with ports.uow() as uow:
            batches = await uow.processing.batches(list(batch_ids))
            catalog = await uow.catalog.get_many(sorted({b.model_name for b in batches}))
            of_batch = await uow.forecasts.batch_sources(list(batch_ids))
            source_ids = sorted({sid for ids in of_batch.values() for sid in ids})
            sources = list((await uow.sources.get_many(source_ids)).values())
            for mode in sorted({b.mode for b in batches}):
                await keep_forecasts(ports, uow, [b.id for b in batches if b.mode == mode],
                                     catalog, sources, mode=mode)
    except Exception:
        log.warning("no forecast kept for batches %s", list(batch_ids), exc_info=True)
