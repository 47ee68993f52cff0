"""The forecast of a processing request: tokens, cost and time before any money is spent.

Pure arithmetic over what the caller counted (each call's prompt tokens, by the model's
tokenizer) and what history says (output tokens per input token, latency per call). The
rules, in docs/ARCHITECTURE.md ("Forecasts"):

- calls: one per chunk, chunked and prompted exactly as the pipeline does; repair calls,
  splits and transient retries are not forecast.
- output per call: expected = min(max_tokens, ratio × prompt tokens), worst = max_tokens.
  The ratio is Σ output / Σ input tokens of the model's completed runs on sources of the
  type; else of all its completed runs; else the median of the other models' ratios for the
  type; else the median over all models; else `PRIOR_OUTPUT_RATIO` (0.35).
- cost: `domain.pricing.price` of each call's expected usage at the model's rates (batch
  rates in BATCH mode). Where the provider caches the stable prefix (the system prompt)
  and it is at least `CACHE_MIN_TOKENS` long, every call of a model's batch after the first
  reads it from the cache (rounded down to 128 tokens, as OpenAI does); the first call is
  priced uncached (Anthropic's cache-write premium on it is not forecast). The worst case
  prices every prompt token at its dearest rate and all of max_tokens
  (`domain.pricing.worst_case`): what the budget reserves.
- time: calls × latency per call / parallel calls, and never faster than the model's rpm
  and tpm allow: max(calls·L/P, 60·calls/rpm, 60·tokens/tpm), with P = min(maxConcurrency,
  workers × worker threads × chunks in flight, calls). Latency per call is Σ latency_ms /
  Σ llm_calls of the model's completed runs, else `PRIOR_LATENCY_MS`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from domain.pricing import CallCost, CallUsage, Rates, money, price, worst_case

PRIOR_OUTPUT_RATIO = 0.35
PRIOR_LATENCY_MS = 2000.0
CACHE_MIN_TOKENS = 1024
CACHE_BLOCK = 128


@dataclass(frozen=True, slots=True)
class Usage:
    """Summed history of completed runs (of one model, or one model and source type)."""

    input_tokens: int = 0
    output_tokens: int = 0
    llm_calls: int = 0
    latency_ms: int = 0
    runs: int = 0


@dataclass(frozen=True, slots=True)
class History:
    """What completed runs say: usage per (model, source type)."""

    usage: Mapping[tuple[str, str], Usage] = field(default_factory=dict)

    def of_model(self, model: str) -> Usage:
        parts = [u for (m, _), u in self.usage.items() if m == model]
        return Usage(sum(u.input_tokens for u in parts), sum(u.output_tokens for u in parts),
                     sum(u.llm_calls for u in parts), sum(u.latency_ms for u in parts),
                     sum(u.runs for u in parts))


def _ratio(usage: Usage | None) -> float | None:
    if usage is None or usage.input_tokens <= 0 or usage.runs <= 0:
        return None
    return usage.output_tokens / usage.input_tokens


def output_ratio(history: History, model: str, source_type: str) -> tuple[float, str]:
    """Expected output tokens per input token of `model` on `source_type`, and its basis."""
    own = _ratio(history.usage.get((model, source_type)))
    if own is not None:
        return own, "history"
    overall = _ratio(history.of_model(model))
    if overall is not None:
        return overall, "model history"
    others = [r for (m, t), u in history.usage.items()
              if m != model and t == source_type and (r := _ratio(u)) is not None]
    if others:
        return statistics.median(others), "other models' median"
    models = {m for m, _ in history.usage}
    every = [r for m in models if (r := _ratio(history.of_model(m))) is not None]
    if every:
        return statistics.median(every), "all models' median"
    return PRIOR_OUTPUT_RATIO, "prior"


def latency_per_call(history: History, model: str) -> tuple[float, str]:
    """Observed milliseconds per call of `model`, and its basis."""
    usage = history.of_model(model)
    if usage.llm_calls > 0 and usage.latency_ms > 0:
        return usage.latency_ms / usage.llm_calls, "history"
    return PRIOR_LATENCY_MS, "prior"


@dataclass(frozen=True, slots=True)
class SourceCalls:
    """One source's calls: the prompt tokens of each, counted with the model's tokenizer."""

    source_id: int
    source_type: str
    prompt_tokens: Sequence[int]


@dataclass(frozen=True, slots=True)
class Pricing:
    """What a call of the model costs: rates (batch rates in BATCH mode, else None), and
    whether and how much of the prompt the provider caches."""

    rates: Rates | None
    batch_rates: Rates | None = None
    cached_prefix_tokens: int = 0  # tokens of the stable prefix read from the cache


@dataclass(frozen=True, slots=True)
class Capacity:
    """What bounds the wall time: live workers, their parallelism, the model's limits."""

    workers: int
    calls_per_worker: int
    chunks_per_job: int
    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None


@dataclass(frozen=True, slots=True)
class SourceForecast:
    source_id: int
    chunks: int
    input_tokens: int
    expected_output_tokens: int
    worst_output_tokens: int
    expected_cost_usd: Decimal | None
    worst_cost_usd: Decimal | None
    expected_seconds: float


@dataclass(frozen=True, slots=True)
class ModelForecast:
    model: str
    sources: list[SourceForecast]
    chunks: int
    input_tokens: int
    expected_output_tokens: int
    worst_output_tokens: int
    expected_cost_usd: Decimal | None
    worst_cost_usd: Decimal | None
    expected_seconds: float
    output_ratio: float
    output_ratio_basis: str
    latency_ms_per_call: float
    latency_basis: str
    parallel_calls: int
    cached_prefix_tokens: int
    bound_by: str  # "latency", "rpm" or "tpm": what sets the expected time
    # The expected cost's levers, as runs show them: the same calls interactive and
    # uncached, and what caching and batch mode take off (cost = list - cache - batch).
    expected_list_cost_usd: Decimal | None = None
    expected_cache_saved_usd: Decimal | None = None
    expected_batch_saved_usd: Decimal | None = None

    def to_record(self) -> dict[str, object]:
        """The JSON a batch keeps (processing_batches.forecast)."""
        def text(value: Decimal | None) -> str | None:
            return None if value is None else str(value)
        return {
            "model": self.model, "chunks": self.chunks, "inputTokens": self.input_tokens,
            "expectedOutputTokens": self.expected_output_tokens,
            "worstOutputTokens": self.worst_output_tokens,
            "expectedCostUsd": text(self.expected_cost_usd),
            "worstCostUsd": text(self.worst_cost_usd),
            "expectedListCostUsd": text(self.expected_list_cost_usd),
            "expectedCacheSavedUsd": text(self.expected_cache_saved_usd),
            "expectedBatchSavedUsd": text(self.expected_batch_saved_usd),
            "expectedSeconds": round(self.expected_seconds, 3),
            "outputRatio": self.output_ratio, "outputRatioBasis": self.output_ratio_basis,
            "latencyMsPerCall": self.latency_ms_per_call,
            "sources": {str(s.source_id): {
                "chunks": s.chunks, "inputTokens": s.input_tokens,
                "expectedCostUsd": text(s.expected_cost_usd),
                "worstCostUsd": text(s.worst_cost_usd),
                "expectedSeconds": round(s.expected_seconds, 3)} for s in self.sources},
        }


def _call_cost(pricing: Pricing, prompt: int, output: int, cached: int) -> CallCost | None:
    if pricing.rates is None:
        return None
    usage = CallUsage(prompt, output, cached_tokens=min(cached, prompt))
    return price(usage, pricing.rates, batch_rates=pricing.batch_rates)


def _worst_cost(pricing: Pricing, prompt: int, max_tokens: int) -> Decimal | None:
    rates = pricing.batch_rates or pricing.rates
    if rates is None:
        return None
    return money(worst_case(rates, prompt, max_tokens))


def _sum(values: Sequence[Decimal | None]) -> Decimal | None:
    if any(v is None for v in values):
        return None
    return sum((v for v in values if v is not None), Decimal(0))


def cacheable_prefix(prefix_tokens: int) -> int:
    """Prefix tokens a caching provider reads from its cache: none under CACHE_MIN_TOKENS,
    else rounded down to a multiple of CACHE_BLOCK."""
    if prefix_tokens < CACHE_MIN_TOKENS:
        return 0
    return prefix_tokens // CACHE_BLOCK * CACHE_BLOCK


def forecast_model(model: str, calls: Sequence[SourceCalls], *, max_tokens: int,
                   pricing: Pricing, capacity: Capacity, history: History) -> ModelForecast:
    """The forecast of one model over the sources' calls (see the module docstring)."""
    latency, latency_basis = latency_per_call(history, model)
    ratios: list[tuple[float, str]] = []
    per_source: list[SourceForecast] = []
    all_levers: list[CallCost | None] = []
    first = True
    for source in calls:
        ratio, basis = output_ratio(history, model, source.source_type)
        ratios.append((ratio, basis))
        expected_out, costs, worst = 0, [], []
        levers: list[CallCost | None] = []
        for prompt in source.prompt_tokens:
            out = min(max_tokens, round(ratio * prompt))
            expected_out += out
            cached = 0 if first else pricing.cached_prefix_tokens
            first = False
            call = _call_cost(pricing, prompt, out, cached)
            costs.append(None if call is None else call.cost_usd)
            levers.append(call)
            worst.append(_worst_cost(pricing, prompt, max_tokens))
        all_levers.extend(levers)
        n = len(source.prompt_tokens)
        inner = max(1, min(n, capacity.chunks_per_job, capacity.max_concurrency or n))
        per_source.append(SourceForecast(
            source.source_id, n, sum(source.prompt_tokens), expected_out, n * max_tokens,
            _sum(costs), _sum(worst), math.ceil(n / inner) * latency / 1000))
    n_calls = sum(s.chunks for s in per_source)
    input_tokens = sum(s.input_tokens for s in per_source)
    expected_out = sum(s.expected_output_tokens for s in per_source)
    parallel = max(1, min(capacity.workers * capacity.calls_per_worker,
                          capacity.max_concurrency or n_calls or 1, n_calls or 1))
    bounds = {"latency": n_calls * latency / 1000 / parallel}
    if capacity.rpm:
        bounds["rpm"] = 60 * n_calls / capacity.rpm
    if capacity.tpm:
        bounds["tpm"] = 60 * (input_tokens + expected_out) / capacity.tpm
    bound_by = max(bounds, key=lambda k: bounds[k])
    # The ratio shown: the input-weighted mean of the sources' ratios.
    weighted = (sum(r * s.input_tokens for (r, _), s in zip(ratios, per_source, strict=True))
                / input_tokens) if input_tokens else (ratios[0][0] if ratios
                                                      else PRIOR_OUTPUT_RATIO)
    bases = sorted({b for _, b in ratios}) or ["prior"]
    return ModelForecast(
        model=model, sources=per_source, chunks=n_calls, input_tokens=input_tokens,
        expected_output_tokens=expected_out, worst_output_tokens=n_calls * max_tokens,
        expected_cost_usd=_sum([s.expected_cost_usd for s in per_source]),
        worst_cost_usd=_sum([s.worst_cost_usd for s in per_source]),
        expected_seconds=bounds[bound_by], output_ratio=round(weighted, 6),
        output_ratio_basis=", ".join(bases), latency_ms_per_call=round(latency, 3),
        latency_basis=latency_basis, parallel_calls=parallel,
        cached_prefix_tokens=pricing.cached_prefix_tokens, bound_by=bound_by,
        **_lever_sums(all_levers))


def _lever_sums(calls: Sequence[CallCost | None]) -> dict[str, Decimal | None]:
    if any(c is None for c in calls):
        return {"expected_list_cost_usd": None, "expected_cache_saved_usd": None,
                "expected_batch_saved_usd": None}
    priced = [c for c in calls if c is not None]
    return {"expected_list_cost_usd": sum((c.list_cost_usd for c in priced), Decimal(0)),
            "expected_cache_saved_usd": sum((c.cache_saved_usd for c in priced), Decimal(0)),
            "expected_batch_saved_usd": sum((c.batch_saved_usd for c in priced), Decimal(0))}


@dataclass(frozen=True, slots=True)
class StrategyTotals:
    expected_cost_usd: Decimal | None
    worst_cost_usd: Decimal | None
    expected_seconds: float


def strategy_totals(sample: Mapping[str, ModelForecast], rest: Mapping[str, ModelForecast]
                    ) -> StrategyTotals:
    """What a strategy runs: every candidate on the sample, then one model on the rest.
    Worst: the sample by every candidate plus the rest by the dearest candidate (its worst
    cost). Expected: the sample by every candidate plus the rest at the mean of the
    candidates' expected costs (which one wins is not known before the sample is measured).
    Time: the sample's slowest candidate (they run side by side), then the rest's mean."""
    sample_expected = _sum([f.expected_cost_usd for f in sample.values()])
    sample_worst = _sum([f.worst_cost_usd for f in sample.values()])
    rest_expected = [f.expected_cost_usd for f in rest.values()]
    rest_worst = [f.worst_cost_usd for f in rest.values()]
    mean_rest = _sum(rest_expected)
    if mean_rest is not None and rest_expected:
        mean_rest = money(mean_rest / len(rest_expected))
    dearest = None if any(w is None for w in rest_worst) else max(
        (w for w in rest_worst if w is not None), default=Decimal(0))
    expected = None if sample_expected is None or mean_rest is None else (
        sample_expected + mean_rest)
    worst = None if sample_worst is None or dearest is None else sample_worst + dearest
    seconds = max((f.expected_seconds for f in sample.values()), default=0.0)
    if rest:
        seconds += sum(f.expected_seconds for f in rest.values()) / len(rest)
    return StrategyTotals(expected, worst, seconds)
