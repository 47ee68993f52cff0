"""Optimization queries: comparison, sweet spot, reports, thresholds and quality settings."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from api.errors import public
from api.ids import parse_id
from api.types.enums import SourceType
from api.types.optimization import (
    ModelComparison,
    OptimizationReport,
    QualitySettings,
    QualityThreshold,
    SavingsReport,
    SweetSpot,
    read_quality_settings,
    thresholds_of,
)
from domain.errors import DomainError
from domain.services import quality, reports


@strawberry.type
class OptimizationQueries:
    @strawberry.field(description="All measured runs of a source side by side: quality with "
                                  "its components, the reference, cost per grounded fragment.")
    async def comparison(self, info: strawberry.Info, source_id: strawberry.ID
                         ) -> ModelComparison:
        try:
            sid = parse_id(source_id, "Source", ("sourceId",))
            return ModelComparison.of(await reports.comparison(info.context.runtime.ports, sid))
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
                info.context.runtime.ports, source_id=sid,
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
                await reports.optimization_report(info.context.runtime.ports, sid))
        except DomainError as exc:
            raise public(exc) from None

    @strawberry.field(description="Per source type: reference model, optimized model, quality "
                                  "change, cost saving, samples and interval.")
    async def savings_report(self, info: strawberry.Info) -> SavingsReport:
        return SavingsReport.of(await reports.savings_report(info.context.runtime.ports))

    @strawberry.field(description="The quality bar of every source type.")
    async def quality_thresholds(self, info: strawberry.Info) -> list[QualityThreshold]:
        return thresholds_of(await quality.thresholds(info.context.runtime.ports))

    @strawberry.field(description="Score weights, designated reference model, verified minimum.")
    async def quality_settings(self, info: strawberry.Info) -> QualitySettings:
        return await read_quality_settings(info)
