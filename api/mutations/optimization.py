"""Optimization mutations: quality thresholds per source type, and how runs are measured."""

from __future__ import annotations

import math
from typing import Annotated, Any

import strawberry

from api.errors import Conflict, NotFound, ValidationError, as_payload
from api.mutations.processing import MODEL_NAME_RE
from api.quality import recompute_all
from api.queries.optimization import read_quality_settings, thresholds_of
from api.types.enums import SourceType
from api.types.optimization import QualitySettings, QualityThreshold
from db.catalog import ModelRepository
from db.performance import MIN_VERIFIED, REFERENCE_MODEL, PerformanceRepository, merge_thresholds
from db.settings_store import QUALITY_WEIGHTS, SettingsStore
from domain.errors import DomainError, FieldIssue, InvalidInput
from domain.quality import QualityWeights

MAX_MIN_VERIFIED = 10_000


@strawberry.input(description="The quality bar of one source type.")
class QualityThresholdInput:
    source_type: SourceType
    threshold: float | None = strawberry.field(
        description="0-10; null restores the default of DESIGN (interview 8.5, podcast 7.5, "
                    "article 7.0, social_media 6.0, others 7.0).")


@strawberry.input(description="Weights of the score's terms (renormalised without a reference).")
class QualityWeightsInput:
    f1: float = 0.40
    grounded: float = 0.25
    miu: float = 0.15
    coverage: float = 0.10
    relevance: float = 0.10


@strawberry.input
class SetQualitySettingsInput:
    weights: QualityWeightsInput | None = strawberry.UNSET
    reference_model: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="A catalog model; null = the most expensive model run on each source.")
    min_verified_fragments: int | None = strawberry.UNSET


@strawberry.type
class SetQualityThresholdsPayload:
    thresholds: list[QualityThreshold]


@strawberry.type
class SetQualitySettingsPayload:
    settings: QualitySettings
    remeasured_sources: int = strawberry.field(
        description="Sources measured again because the score's definition changed.")


def _union(name: str, payload: type) -> Any:
    return Annotated[payload | ValidationError | NotFound | Conflict, strawberry.union(name)]


SetQualityThresholdsResult = _union("SetQualityThresholdsResult", SetQualityThresholdsPayload)
SetQualitySettingsResult = _union("SetQualitySettingsResult", SetQualitySettingsPayload)


def _threshold_changes(items: list[QualityThresholdInput]) -> dict[str, float | None]:
    issues: list[FieldIssue] = []
    changes: dict[str, float | None] = {}
    if not items:
        issues.append(FieldIssue(("input",), "must name at least one source type"))
    for index, item in enumerate(items):
        kind = str(item.source_type)
        if kind in changes:
            issues.append(FieldIssue(("input", str(index), "sourceType"),
                                     f"{kind} is listed twice"))
        value = item.threshold
        if value is not None and (not math.isfinite(value) or not 0.0 <= value <= 10.0):
            issues.append(FieldIssue(("input", str(index), "threshold"),
                                     "must be between 0 and 10"))
        changes[kind] = value
    if issues:
        raise InvalidInput(issues)
    return changes


def _weights(raw: QualityWeightsInput) -> dict[str, float]:
    values = {"f1": raw.f1, "grounded": raw.grounded, "miu": raw.miu,
              "coverage": raw.coverage, "relevance": raw.relevance}
    try:
        QualityWeights(**values)
    except ValueError as exc:
        raise InvalidInput.single(("input", "weights"), str(exc)) from None
    return values


@strawberry.type
class OptimizationMutations:
    @strawberry.mutation(description="Set the quality bar of some source types; the others "
                                     "keep theirs.")
    async def set_quality_thresholds(self, info: strawberry.Info,
                                     input: list[QualityThresholdInput]
                                     ) -> SetQualityThresholdsResult:
        try:
            changes = _threshold_changes(input)
            async with info.context.runtime.transaction() as session:
                await merge_thresholds(session, changes, info.context.principal.name)
                stored = await PerformanceRepository(session).thresholds()
            return SetQualityThresholdsPayload(thresholds=thresholds_of(stored))
        except DomainError as exc:
            return as_payload(exc)

    @strawberry.mutation(description="Change how runs are measured; every measured source is "
                                     "measured again.")
    async def set_quality_settings(self, info: strawberry.Info,
                                   input: SetQualitySettingsInput) -> SetQualitySettingsResult:
        try:
            runtime, who = info.context.runtime, info.context.principal.name
            given = {k: v for k, v in vars(input).items() if v is not strawberry.UNSET}
            if not given:
                raise InvalidInput.single(("input",), "names no setting to change")
            minimum = given.get("min_verified_fragments")
            if "min_verified_fragments" in given and (
                    minimum is None or not 1 <= minimum <= MAX_MIN_VERIFIED):
                raise InvalidInput.single(("input", "minVerifiedFragments"),
                                          f"must be between 1 and {MAX_MIN_VERIFIED}")
            async with runtime.transaction() as session:
                store = SettingsStore(session)
                if "weights" in given:
                    weights = QualityWeightsInput() if given["weights"] is None \
                        else given["weights"]
                    await store.put(QUALITY_WEIGHTS, _weights(weights), who)
                if "reference_model" in given:
                    name = (given["reference_model"] or "").strip() or None
                    if name is not None:
                        if not MODEL_NAME_RE.match(name):
                            raise InvalidInput.single(("input", "referenceModel"),
                                                      "is not a model name of the catalog")
                        await ModelRepository(session).require(name, ("input", "referenceModel"))
                    await store.put(REFERENCE_MODEL, name, who)
                if minimum is not None:
                    await store.put(MIN_VERIFIED, minimum, who)
            remeasured = await recompute_all(runtime)
            return SetQualitySettingsPayload(settings=await read_quality_settings(info),
                                             remeasured_sources=remeasured)
        except DomainError as exc:
            return as_payload(exc)
