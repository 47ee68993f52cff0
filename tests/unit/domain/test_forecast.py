"""The forecast's arithmetic (domain/forecast.py): output ratios and their priors, cost at
interactive, batch and cached rates, the worst case, wall time under limits, strategies."""

from __future__ import annotations

from decimal import Decimal

from domain.forecast import (
    PRIOR_LATENCY_MS,
    PRIOR_OUTPUT_RATIO,
    Capacity,
    History,
    Pricing,
    SourceCalls,
    Usage,
    cacheable_prefix,
    forecast_model,
    latency_per_call,
    output_ratio,
    strategy_totals,
)
from domain.pricing import Rates

RATES = Rates(Decimal(1), Decimal(4))  # $1 / $4 per million
ONE = Capacity(workers=1, calls_per_worker=32, chunks_per_job=8)


def test_output_ratio_falls_back_from_model_and_type_to_the_prior() -> None:
    # Given: a history for model a on interviews, b on interviews and articles
    history = History({("a", "interview"): Usage(1000, 200, 4, 400, 2),
                       ("b", "interview"): Usage(1000, 600, 4, 400, 1),
                       ("b", "article"): Usage(1000, 100, 2, 200, 1)})
    # Then: own type, own model, other models of the type, all models, the prior
    assert output_ratio(history, "a", "interview") == (0.2, "history")
    assert output_ratio(history, "a", "article") == (0.2, "model history")
    assert output_ratio(history, "c", "interview") == (0.4, "other models' median")
    assert output_ratio(history, "c", "podcast") == (0.275, "all models' median")
    assert output_ratio(History(), "c", "podcast") == (PRIOR_OUTPUT_RATIO, "prior")


def test_latency_is_observed_per_call_else_the_prior() -> None:
    history = History({("a", "interview"): Usage(1000, 200, 4, 1000, 2)})
    assert latency_per_call(history, "a") == (250.0, "history")
    assert latency_per_call(history, "b") == (PRIOR_LATENCY_MS, "prior")


def test_cost_is_the_sum_of_each_call_priced_with_expected_output() -> None:
    # Given: two calls of 1,000 and 2,000 prompt tokens, ratio 0.5, max_tokens 4,000
    history = History({("m", "interview"): Usage(1000, 500, 1, 100, 1)})
    calls = [SourceCalls(1, "interview", [1000, 2000])]
    # When
    f = forecast_model("m", calls, max_tokens=4000, pricing=Pricing(RATES), capacity=ONE,
                       history=history)
    # Then: 3,000 in at $1/M + 1,500 out at $4/M; worst: 8,000 out
    assert (f.chunks, f.input_tokens, f.expected_output_tokens) == (2, 3000, 1500)
    assert f.expected_cost_usd == Decimal("0.00900000")
    assert f.worst_output_tokens == 8000
    assert f.worst_cost_usd == Decimal("0.03500000")
    assert f.sources[0].expected_cost_usd == f.expected_cost_usd


def test_expected_output_never_exceeds_max_tokens() -> None:
    history = History({("m", "interview"): Usage(100, 1000, 1, 100, 1)})  # ratio 10
    f = forecast_model("m", [SourceCalls(1, "interview", [1000])], max_tokens=500,
                       pricing=Pricing(RATES), capacity=ONE, history=history)
    assert f.expected_output_tokens == 500 == f.worst_output_tokens
    assert f.expected_cost_usd == f.worst_cost_usd


def test_batch_mode_prices_at_the_batch_rates_and_caching_reads_the_prefix() -> None:
    # Given: half-price batch rates; a 1,100-token cached prefix at a tenth of the input rate
    cached = Rates(Decimal(1), Decimal(4), cache_read=Decimal("0.1"))
    half = Rates(Decimal("0.5"), Decimal(2), cache_read=Decimal("0.05"))
    calls = [SourceCalls(1, "interview", [2000, 2000])]
    history = History({("m", "interview"): Usage(1000, 0, 1, 100, 1)})  # no output
    # When
    plain = forecast_model("m", calls, max_tokens=10, pricing=Pricing(cached), capacity=ONE,
                           history=history)
    batch = forecast_model("m", calls, max_tokens=10, pricing=Pricing(cached, half),
                           capacity=ONE, history=history)
    prefix = cacheable_prefix(1100)
    caching = forecast_model("m", calls, max_tokens=10,
                             pricing=Pricing(cached, None, prefix), capacity=ONE,
                             history=history)
    # Then
    assert plain.expected_cost_usd == Decimal("0.00400000")
    assert batch.expected_cost_usd == Decimal("0.00200000")
    assert prefix == 1024
    # the first call uncached; the second reads 1,024 tokens at $0.1/M
    assert caching.expected_cost_usd == Decimal("0.00400000") - Decimal(1024) * Decimal(
        "0.9") / 1_000_000
    assert cacheable_prefix(1000) == 0
    # Each lever on its own, as runs show them: cost = list - cache saved - batch saved
    for forecast in (plain, batch, caching):
        assert forecast.expected_list_cost_usd == Decimal("0.00400000")
        assert forecast.expected_cost_usd == (forecast.expected_list_cost_usd
                                              - forecast.expected_cache_saved_usd
                                              - forecast.expected_batch_saved_usd)
    assert (plain.expected_cache_saved_usd, plain.expected_batch_saved_usd) == (0, 0)
    assert (batch.expected_cache_saved_usd, batch.expected_batch_saved_usd) == \
        (0, Decimal("0.00200000"))
    assert caching.expected_cache_saved_usd == Decimal(1024) * Decimal("0.9") / 1_000_000


def test_unpriced_model_has_no_cost() -> None:
    f = forecast_model("m", [SourceCalls(1, "interview", [100])], max_tokens=10,
                       pricing=Pricing(None), capacity=ONE, history=History())
    assert f.expected_cost_usd is None and f.worst_cost_usd is None
    assert f.expected_list_cost_usd is None


def test_wall_time_is_latency_over_parallel_calls_or_the_rate_limits() -> None:
    # Given: 40 calls of 1,000 tokens, 1 s each, prior ratio 0.35
    history = History({("m", "interview"): Usage(1000, 350, 10, 10_000, 1)})
    calls = [SourceCalls(i, "interview", [1000] * 4) for i in range(10)]

    def seconds(**limits: int) -> tuple[float, str]:
        capacity = Capacity(workers=2, calls_per_worker=4, chunks_per_job=2, **limits)
        f = forecast_model("m", calls, max_tokens=1000, pricing=Pricing(RATES),
                           capacity=capacity, history=history)
        return f.expected_seconds, f.bound_by

    # Then: 8 calls in parallel → 5 s; maxConcurrency 2 → 20 s; rpm 60 → 40 s;
    # tpm 27,000 (40 × 1,350 tokens = 54,000) → 120 s
    assert seconds() == (5.0, "latency")
    assert seconds(max_concurrency=2) == (20.0, "latency")
    assert seconds(rpm=60) == (40.0, "rpm")
    assert seconds(tpm=27_000) == (120.0, "tpm")


def test_strategy_runs_every_candidate_on_the_sample_and_the_dearest_on_the_rest() -> None:
    history = History()
    sample = [SourceCalls(1, "interview", [1000])]
    rest = [SourceCalls(2, "interview", [1000]), SourceCalls(3, "interview", [1000])]
    cheap, dear = Pricing(Rates(Decimal(1), Decimal(1))), Pricing(Rates(Decimal(9),
                                                                         Decimal(9)))

    def f(pricing: Pricing, calls: list[SourceCalls]) -> object:
        return forecast_model("x", calls, max_tokens=100, pricing=pricing, capacity=ONE,
                              history=history)

    on_sample = {"cheap": f(cheap, sample), "dear": f(dear, sample)}
    on_rest = {"cheap": f(cheap, rest), "dear": f(dear, rest)}
    totals = strategy_totals(on_sample, on_rest)  # type: ignore[arg-type]
    worst = sum((x.worst_cost_usd for x in on_sample.values()), Decimal(0)) \
        + on_rest["dear"].worst_cost_usd  # type: ignore[attr-defined]
    assert totals.worst_cost_usd == worst
    expected_rest = (on_rest["cheap"].expected_cost_usd  # type: ignore[attr-defined]
                     + on_rest["dear"].expected_cost_usd) / 2  # type: ignore[attr-defined]
    assert totals.expected_cost_usd == sum(
        (x.expected_cost_usd for x in on_sample.values()), Decimal(0)) + expected_rest
