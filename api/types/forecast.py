"""What `estimateProcessing` returns: per model, the calls, tokens, cost and time a request
would take (domain/forecast.py), and the forecast each run's batch kept when it started
against the run's actual cost and time (`ComparisonEntry.forecast`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import strawberry

from api.types.enums import ProcessingMode, Strategy
from domain.services.forecast import Estimate, ModelEstimate


@strawberry.input
class EstimateProcessingInput:
    source_ids: list[strawberry.ID]
    models: list[str]
    strategy: Strategy | None = strawberry.field(
        default=None, description="Forecast what processBatch with this strategy would run; "
                                  "null: every model on every source (startMultiModelProcessing).")
    mode: ProcessingMode = strawberry.field(
        default=ProcessingMode.INTERACTIVE, description="BATCH prices at the batch rates.")


@strawberry.type(description="One model's forecast over the request's sources.")
class ModelEstimateType:
    model: str
    sources: int = strawberry.field(description="Sources the model may run on.")
    sample_sources: int = strawberry.field(
        description="Sources every candidate runs on (with a strategy, the sample).")
    chunks: int = strawberry.field(description="Calls: one per chunk, chunked as the "
                                               "pipeline chunks; repairs and retries excluded.")
    input_tokens: int = strawberry.field(
        description="Prompt tokens of every call, counted with the model's tokenizer.")
    expected_output_tokens: int
    worst_output_tokens: int = strawberry.field(description="max_tokens on every call.")
    output_ratio: float = strawberry.field(
        description="Expected output tokens per input token (learned from completed runs).")
    output_ratio_basis: str = strawberry.field(
        description="history (model and source type), model history, other models' median, "
                    "all models' median, or prior (0.35).")
    expected_cost_usd: Decimal | None = strawberry.field(
        description="At current prices (batch rates in BATCH mode, cached prefix where the "
                    "provider caches it); null when the model has no known price.")
    worst_cost_usd: Decimal | None = strawberry.field(
        description="Every prompt token at its dearest rate and max_tokens on every call: "
                    "what the budget reserves.")
    expected_list_cost_usd: Decimal | None = strawberry.field(
        description="The same calls interactive and uncached (the levers' baseline): "
                    "expectedCostUsd = this - expectedCacheSavedUsd - expectedBatchSavedUsd.")
    expected_cache_saved_usd: Decimal | None = strawberry.field(
        description="What prompt caching is expected to take off.")
    expected_batch_saved_usd: Decimal | None = strawberry.field(
        description="What BATCH mode is expected to take off (0 when INTERACTIVE).")
    expected_seconds: float = strawberry.field(
        description="Wall time under the model's rate limits and the live workers.")
    bound_by: str = strawberry.field(description="What sets the time: latency, rpm or tpm.")
    latency_ms_per_call: float
    latency_basis: str = strawberry.field(description="history or prior (2,000 ms).")
    parallel_calls: int
    cached_prefix_tokens: int = strawberry.field(
        description="Prompt-prefix tokens forecast as read from the provider's cache on every "
                    "call but the first.")
    budget_covers_worst_case: bool | None = strawberry.field(
        description="Today's remaining budget covers this model's worst case; null without a "
                    "daily budget.")

    @classmethod
    def of(cls, e: ModelEstimate) -> ModelEstimateType:
        f = e.forecast
        return cls(model=f.model, sources=len(f.sources), sample_sources=e.sample_sources,
                   chunks=f.chunks, input_tokens=f.input_tokens,
                   expected_output_tokens=f.expected_output_tokens,
                   worst_output_tokens=f.worst_output_tokens, output_ratio=f.output_ratio,
                   output_ratio_basis=f.output_ratio_basis,
                   expected_cost_usd=f.expected_cost_usd, worst_cost_usd=f.worst_cost_usd,
                   expected_list_cost_usd=f.expected_list_cost_usd,
                   expected_cache_saved_usd=f.expected_cache_saved_usd,
                   expected_batch_saved_usd=f.expected_batch_saved_usd,
                   expected_seconds=round(f.expected_seconds, 3), bound_by=f.bound_by,
                   latency_ms_per_call=f.latency_ms_per_call, latency_basis=f.latency_basis,
                   parallel_calls=f.parallel_calls, cached_prefix_tokens=f.cached_prefix_tokens,
                   budget_covers_worst_case=e.budget_covers_worst)


@strawberry.type(name="ProcessingEstimate",
                 description="What a processing request would cost and take, before any money "
                             "is spent.")
class ProcessingEstimate:
    mode: ProcessingMode
    strategy: Strategy | None
    strategy_rule: str | None = strawberry.field(
        description="How a strategy's cost is forecast (null without a strategy).")
    models: list[ModelEstimateType]
    expected_cost_usd: Decimal | None
    worst_cost_usd: Decimal | None
    expected_seconds: float
    workers: int = strawberry.field(description="Workers seen in the last 30 s (at least 1).")
    workers_assumed: bool = strawberry.field(
        description="No worker heartbeat was seen: one worker is assumed.")
    budget_remaining_usd: Decimal | None
    budget_covers_worst_case: bool | None = strawberry.field(
        description="Today's remaining budget covers the request's worst case; null without "
                    "a daily budget.")

    @classmethod
    def of(cls, e: Estimate) -> ProcessingEstimate:
        return cls(mode=ProcessingMode(e.mode),
                   strategy=None if e.strategy is None else Strategy(e.strategy),
                   strategy_rule=e.strategy_rule, models=[ModelEstimateType.of(m)
                                                          for m in e.models],
                   expected_cost_usd=e.expected_cost_usd, worst_cost_usd=e.worst_cost_usd,
                   expected_seconds=round(e.expected_seconds, 3), workers=e.workers,
                   workers_assumed=e.workers_assumed,
                   budget_remaining_usd=e.budget_remaining_usd,
                   budget_covers_worst_case=e.budget_covers_worst)


@strawberry.type(description="What the run's batch forecast for this source when it started, "
                             "against what the run cost and took.")
class ForecastCheck:
    expected_cost_usd: Decimal | None
    worst_cost_usd: Decimal | None
    actual_cost_usd: Decimal | None = strawberry.field(description="Null until the run ends.")
    cost_error: float | None = strawberry.field(
        description="(actual − expected) / expected; null without both.")
    expected_seconds: float | None
    actual_seconds: float | None = strawberry.field(
        description="From the run's start to its end.")

    @classmethod
    def of(cls, check: dict[str, Any]) -> ForecastCheck:
        expected, actual = check["expected_cost_usd"], check["actual_cost_usd"]
        error = (None if expected is None or actual is None or expected == 0
                 else round(float((actual - expected) / expected), 4))
        return cls(expected_cost_usd=expected, worst_cost_usd=check["worst_cost_usd"],
                   actual_cost_usd=actual, cost_error=error,
                   expected_seconds=check["expected_seconds"],
                   actual_seconds=None if check["actual_seconds"] is None
                   else round(check["actual_seconds"], 3))
