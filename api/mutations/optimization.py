"""Optimization mutations: quality thresholds per source type, and how runs are measured."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from api.errors import Conflict, NotFound, ValidationError, as_payload
from api.types.enums import SourceType
from api.types.optimization import (
    QualitySettings,
    QualityThreshold,
    read_quality_settings,
    thresholds_of,
)
from domain.errors import DomainError
from domain.services import quality


@strawberry.input(description="The quality bar of one source type.")
class QualityThresholdInput:
    source_type: SourceType
    threshold: float | None = strawberry.field(
        description="0-10; null restores the default (interview 8.5, podcast 7.5, "
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


@strawberry.type
class OptimizationMutations:
    @strawberry.mutation(description="Set the quality bar of some source types; the others "
                                     "keep theirs.")
    async def set_quality_thresholds(self, info: strawberry.Info,
                                     input: list[QualityThresholdInput]
                                     ) -> SetQualityThresholdsResult:
        try:
            stored = await quality.set_quality_thresholds(
                info.context.runtime.ports,
                [quality.ThresholdChange(str(item.source_type), item.threshold)
                 for item in input], info.context.principal.name)
            return SetQualityThresholdsPayload(thresholds=thresholds_of(stored))
        except DomainError as exc:
            return as_payload(exc)

    @strawberry.mutation(description="Change how runs are measured; every measured source is "
                                     "measured again.")
    async def set_quality_settings(self, info: strawberry.Info,
                                   input: SetQualitySettingsInput) -> SetQualitySettingsResult:
        try:
            given = {k: v for k, v in vars(input).items() if v is not strawberry.UNSET}
            if "weights" in given and given["weights"] is not None:
                w = given["weights"]
                given["weights"] = {"f1": w.f1, "grounded": w.grounded, "miu": w.miu,
                                    "coverage": w.coverage, "relevance": w.relevance}
            remeasured = await quality.set_quality_settings(
                info.context.runtime.ports, info.context.principal.name, **given)
            return SetQualitySettingsPayload(settings=await read_quality_settings(info),
                                             remeasured_sources=remeasured)
        except DomainError as exc:
            return as_payload(exc)
