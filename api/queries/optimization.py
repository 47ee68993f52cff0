"""Optimization queries: comparison, sweet spot, reports, thresholds and quality settings."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from api import reports
from api.errors import public
from api.ids import parse_id
from api.quality import policy_defaults
from api.types.enums import SourceType
from api.types.optimization import (
    ModelComparison,
    OptimizationReport,
    QualitySettings,
    QualityThreshold,
    QualityWeightsType,
    SavingsReport,
    SweetSpot,
)
from db.performance import PerformanceRepository
from domain import model as m
from domain.errors import DomainError
from domain.optimizer import threshold_for
from domain.quality import QualityWeights


def thresholds_of(stored: dict[str, float]) -> list[QualityThreshold]:
    """The bar of every source type, saying which ones are operator-set."""
    return [QualityThreshold(source_type=t, threshold=threshold_for(t.value, stored),
                             is_default=t.value not in stored) for t in m.SourceType]


def settings_of(weights: QualityWeights, reference: str | None,
                minimum: int) -> QualitySettings:
    """The quality settings in force as a GraphQL object."""
    return QualitySettings(
        weights=QualityWeightsType(f1=weights.f1, grounded=weights.grounded, miu=weights.miu,
                                   coverage=weights.coverage, relevance=weights.relevance),
        reference_model=reference, min_verified_fragments=minimum)


async def read_quality_settings(info: strawberry.Info) -> QualitySettings:
    runtime = info.context.runtime
    async with runtime.read() as session:
        policy = await PerformanceRepository(session).policy(policy_defaults(runtime.settings))
    return settings_of(policy.weights, policy.reference_model, policy.min_verified)


@strawberry.type
class OptimizationQueries:
    @strawberry.field(description="All measured runs of a source side by side: quality with "
                                  "its components, the reference, cost per grounded fragment.")
    async def comparison(self, info: strawberry.Info, source_id: strawberry.ID
                         ) -> ModelComparison:
        try:
            sid = parse_id(source_id, "Source", ("sourceId",))
            return ModelComparison.of(await reports.comparison(info.context.runtime, sid))
        except DomainError as exc:
            raise public(exc) from None

    @strawberry.field(description="The cheapest model meeting the quality bar within the cost "
                                  "limit, for one source or one source type. Omitted limits "
                                  "are the configured ones (reported back).")
    async def sweet_spot(self, info: strawberry.Info, source_id: strawberry.ID | None = None,
                         source_type: SourceType | None = None,
                         quality_threshold: float | None = None,
                         budget_per_fragment: Decimal | None = None) -> SweetSpot:
        try:
            sid = None if source_id is None else parse_id(source_id, "Source", ("sourceId",))
            report = await reports.sweet_spot_report(
                info.context.runtime, source_id=sid,
                source_type=None if source_type is None else str(source_type),
                threshold=quality_threshold, budget=budget_per_fragment)
            return SweetSpot.of(report)
        except DomainError as exc:
            raise public(exc) from None

    @strawberry.field(description="A source's comparison, sweet spot and saving against its "
                                  "reference model, with a recommendation.")
    async def optimization_report(self, info: strawberry.Info, source_id: strawberry.ID
                                  ) -> OptimizationReport:
        try:
            sid = parse_id(source_id, "Source", ("sourceId",))
            return OptimizationReport.of(
                await reports.optimization_report(info.context.runtime, sid))
        except DomainError as exc:
            raise public(exc) from None

    @strawberry.field(description="Per source type: reference model, optimized model, quality "
                                  "change, cost saving, samples and interval.")
    async def savings_report(self, info: strawberry.Info) -> SavingsReport:
        return SavingsReport.of(await reports.savings_report(info.context.runtime))

    @strawberry.field(description="The quality bar of every source type.")
    async def quality_thresholds(self, info: strawberry.Info) -> list[QualityThreshold]:
        async with info.context.runtime.read() as session:
            stored = await PerformanceRepository(session).thresholds()
        return thresholds_of(stored)

    @strawberry.field(description="Score weights, designated reference model, verified minimum.")
    async def quality_settings(self, info: strawberry.Info) -> QualitySettings:
        return await read_quality_settings(info)
