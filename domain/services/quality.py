"""Quality: measure a source's runs when one ends and again when its reference moves (a new
run, a verification, new settings); the operator's thresholds and scoring settings
(docs/ARCHITECTURE.md, "Quality").

The worker's run-end path calls `run_finished`; the graph use cases call `recompute_source`
after a verdict changes; start-up calls `catch_up`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from domain.errors import FieldIssue, InvalidInput
from domain.evaluation import QualityPolicy, policy_defaults
from domain.model import FINISHED_RUN
from domain.ports import Ports
from domain.quality import QualityWeights
from domain.services.catalog import MODEL_NAME_RE
from domain.services.strategies import advance_stalled_strategies, advance_strategy
from domain.settings_keys import MIN_VERIFIED, QUALITY_WEIGHTS, REFERENCE_MODEL

log = logging.getLogger("mmos.quality")

CATCH_UP_LIMIT = 100
MAX_MIN_VERIFIED = 10_000
_UNSET: Any = object()


async def recompute_source(ports: Ports, source_id: int) -> int:
    """Measure every completed run of a source again; returns the number of runs measured."""
    async with ports.uow() as uow:
        return await uow.performance.measure(source_id, policy_defaults(ports.settings))


async def recompute_all(ports: Ports) -> int:
    """Measure every source with completed runs again (after weights or reference changed)."""
    async with ports.uow(read_only=True) as uow:
        source_ids = await uow.performance.measured_sources()
    for source_id in source_ids:
        await recompute_source(ports, source_id)
    return len(source_ids)


async def run_finished(ports: Ports, run_id: int, status: str) -> None:
    """A run ended with `status`: measure its source when it completed, then let the strategy
    plan it belongs to (if any) take its next step."""
    async with ports.uow(read_only=True) as uow:
        origin = await uow.processing.run_origin(run_id)
    if origin is None:
        return
    source_id, batch_id = origin
    if status in FINISHED_RUN:
        await recompute_source(ports, source_id)
    await advance_strategy(ports, batch_id)


async def feed_verdicts(ports: Ports, source_ids: set[int]) -> None:
    """Verified and rejected fragments are the quality reference: measure their sources again.
    The verdicts are committed already; a failure leaves a stale score that the next run end
    or catch-up measures again."""
    for source_id in sorted(source_ids):
        try:
            await recompute_source(ports, source_id)
        except Exception:
            log.warning("quality could not be recomputed for source %s", source_id,
                        exc_info=True)


async def catch_up(ports: Ports) -> None:
    """After a crash between a run's end and its measurement: measure, then advance plans."""
    async with ports.uow(read_only=True) as uow:
        pending = await uow.performance.unmeasured_sources(CATCH_UP_LIMIT)
    for source_id in pending:
        await recompute_source(ports, source_id)
    await advance_stalled_strategies(ports, CATCH_UP_LIMIT)


# --- operator settings ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ThresholdChange:
    source_type: str
    threshold: float | None  # None restores the default


async def set_quality_thresholds(ports: Ports, items: list[ThresholdChange],
                                 who: str) -> dict[str, float]:
    """Set the bar of some source types (others keep theirs); returns every stored one."""
    issues: list[FieldIssue] = []
    changes: dict[str, float | None] = {}
    if not items:
        issues.append(FieldIssue(("input",), "must name at least one source type"))
    for index, item in enumerate(items):
        if item.source_type in changes:
            issues.append(FieldIssue(("input", str(index), "sourceType"),
                                     f"{item.source_type} is listed twice"))
        value = item.threshold
        if value is not None and (not math.isfinite(value) or not 0.0 <= value <= 10.0):
            issues.append(FieldIssue(("input", str(index), "threshold"),
                                     "must be between 0 and 10"))
        changes[item.source_type] = value
    if issues:
        raise InvalidInput(issues)
    async with ports.uow() as uow:
        await uow.performance.merge_thresholds(changes, who)
        return await uow.performance.thresholds()


async def thresholds(ports: Ports) -> dict[str, float]:
    """The operator-set thresholds per source type (others are the domain's defaults)."""
    async with ports.uow(read_only=True) as uow:
        return await uow.performance.thresholds()


async def quality_policy(ports: Ports) -> QualityPolicy:
    """Weights, verified minimum and designated reference in force."""
    async with ports.uow(read_only=True) as uow:
        return await uow.performance.policy(policy_defaults(ports.settings))


def checked_weights(values: Mapping[str, float]) -> dict[str, float]:
    try:
        QualityWeights(**values)
    except ValueError as exc:
        raise InvalidInput.single(("input", "weights"), str(exc)) from None
    return dict(values)


async def set_quality_settings(ports: Ports, who: str, *,
                               weights: Mapping[str, float] | None = _UNSET,
                               reference_model: str | None = _UNSET,
                               min_verified_fragments: int | None = _UNSET) -> int:
    """Change how runs are measured (a setting left out stays; weights None restores the
    defaults); every measured source is measured again. Returns how many were."""
    if weights is _UNSET and reference_model is _UNSET and min_verified_fragments is _UNSET:
        raise InvalidInput.single(("input",), "names no setting to change")
    if min_verified_fragments is not _UNSET and (
            min_verified_fragments is None
            or not 1 <= min_verified_fragments <= MAX_MIN_VERIFIED):
        raise InvalidInput.single(("input", "minVerifiedFragments"),
                                  f"must be between 1 and {MAX_MIN_VERIFIED}")
    async with ports.uow() as uow:
        if weights is not _UNSET:
            values = checked_weights(weights) if weights is not None else _default_weights()
            await uow.settings_store.put(QUALITY_WEIGHTS, values, who)
        if reference_model is not _UNSET:
            name = (reference_model or "").strip() or None
            if name is not None:
                if not MODEL_NAME_RE.match(name):
                    raise InvalidInput.single(("input", "referenceModel"),
                                              "is not a model name of the catalog")
                await uow.catalog.require(name, ("input", "referenceModel"))
            await uow.settings_store.put(REFERENCE_MODEL, name, who)
        if min_verified_fragments is not _UNSET and min_verified_fragments is not None:
            await uow.settings_store.put(MIN_VERIFIED, min_verified_fragments, who)
    return await recompute_all(ports)


def _default_weights() -> dict[str, float]:
    w = QualityWeights()
    return {"f1": w.f1, "grounded": w.grounded, "miu": w.miu, "coverage": w.coverage,
            "relevance": w.relevance}
