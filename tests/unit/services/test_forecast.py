"""estimate_processing and the forecasts batches keep (domain/services/forecast.py) against
in-memory fakes: refusals with field paths, per-model figures, budget coverage, strategies."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.errors import InvalidInput, NotFound
from domain.forecast import Pricing, Usage
from domain.pricing import Rates
from domain.services import forecast, processing
from tests.support.fakes import FakeForecaster, fakes_of, make_ports

PRICING = {"cheap": Pricing(Rates(Decimal(1), Decimal(2))),
           "dear": Pricing(Rates(Decimal(10), Decimal(20)), Rates(Decimal(5), Decimal(10)))}


def setup(**overrides: object) -> tuple[object, object]:
    ports = make_ports(forecaster=FakeForecaster(dict(PRICING)), **overrides)
    fake = fakes_of(ports)
    fake.add_model("cheap", price=("1", "2"), max_output_tokens=1000)
    fake.add_model("dear", price=("10", "20"), max_output_tokens=1000)
    fake.add_model("off", enabled=False)
    return ports, fake


def paths(exc: InvalidInput) -> list[tuple[str, ...]]:
    return [issue.path for issue in exc.issues]


async def test_estimate_gives_each_models_tokens_cost_and_time() -> None:
    # Given: two sources (8,000 and 2,000 characters), history for cheap on interviews
    ports, fake = setup()
    a = fake.add_source(content="x" * 8000)
    b = fake.add_source(content="y" * 2000, source_type="article")
    fake.state.forecast_usage[("cheap", "interview")] = Usage(10_000, 2_000, 10, 5_000, 2)
    fake.state.live_workers = 2
    # When
    found = await forecast.estimate_processing(ports, source_ids=[a.id, b.id],
                                               model_names=["cheap", "dear"])
    # Then: 3 calls of 300 + 1,000 / 300 + 1,000 / 300 + 500 tokens
    cheap, dear = (m.forecast for m in found.models)
    assert (cheap.chunks, cheap.input_tokens) == (3, 3400)
    assert cheap.sources[0].expected_output_tokens == 520  # ratio 0.2 on interviews
    assert "history" in cheap.output_ratio_basis and cheap.latency_ms_per_call == 500
    assert dear.output_ratio_basis == "all models' median, other models' median"
    assert found.workers == 2 and not found.workers_assumed
    assert found.expected_cost_usd == cheap.expected_cost_usd + dear.expected_cost_usd
    assert found.worst_cost_usd == cheap.worst_cost_usd + dear.worst_cost_usd
    assert cheap.worst_cost_usd == Decimal("0.00940000")  # 3,400 × $1/M + 3,000 × $2/M
    assert found.budget_covers_worst is None  # no budget
    assert fake.state.batches == {}  # nothing written


async def test_batch_mode_uses_batch_rates() -> None:
    ports, fake = setup()
    fake.add_model("dear-openai", price=("10", "20"), litellm_model="openai/gpt-4o")
    forecaster = ports.forecaster
    assert isinstance(forecaster, FakeForecaster)
    forecaster.rates["dear-openai"] = PRICING["dear"]
    a = fake.add_source(content="x" * 4000)
    interactive = await forecast.estimate_processing(ports, source_ids=[a.id],
                                                     model_names=["dear-openai"])
    batch = await forecast.estimate_processing(ports, source_ids=[a.id],
                                               model_names=["dear-openai"], mode="BATCH")
    assert batch.mode == "batch"
    assert batch.worst_cost_usd * 2 == interactive.worst_cost_usd


async def test_budget_coverage_of_the_worst_case() -> None:
    ports, fake = setup(daily_budget_usd=Decimal("0.01"))
    a = fake.add_source(content="x" * 8000)
    found = await forecast.estimate_processing(ports, source_ids=[a.id],
                                               model_names=["cheap", "dear"])
    cheap, dear = found.models
    assert cheap.budget_covers_worst is True and dear.budget_covers_worst is False
    assert found.budget_covers_worst is False
    assert found.budget_remaining_usd == Decimal("0.01")


async def test_strategy_forecasts_every_candidate_on_the_sample_and_the_dearest_on_the_rest(
) -> None:
    ports, fake = setup(strategy_sample_sources=1)
    ids = [fake.add_source(content="x" * 4000).id for _ in range(3)]
    found = await forecast.estimate_processing(ports, source_ids=ids,
                                               model_names=["cheap", "dear"],
                                               strategy="conservative")
    cheap, dear = (m.forecast for m in found.models)
    per_source_worst = {m.forecast.model: m.forecast.sources[0].worst_cost_usd
                        for m in found.models}
    assert found.strategy == "conservative" and found.strategy_rule
    assert [m.sample_sources for m in found.models] == [1, 1]
    assert found.worst_cost_usd == (per_source_worst["cheap"] + per_source_worst["dear"]
                                    + 2 * per_source_worst["dear"])
    assert cheap.chunks == dear.chunks == 3


@pytest.mark.parametrize(("sources", "models", "strategy", "mode", "wanted"), [
    ([], ["cheap"], None, None, [("input", "sourceIds")]),
    ([1], [], None, None, [("input", "models")]),
    ([1], ["cheap"], "greedy", None, [("input", "strategy")]),
    ([1], ["cheap"], None, "turbo", [("input", "mode")]),
    ([1], ["cheap", "nope", "off"], None, None, [("input", "models", "1"),
                                                 ("input", "models", "2")]),
    ([1], ["cheap"], None, "batch", [("input", "models", "0")]),  # no batch API
])
async def test_bad_requests_are_refused_with_field_paths(
        sources: list[int], models: list[str], strategy: str | None, mode: str | None,
        wanted: list[tuple[str, ...]]) -> None:
    ports, fake = setup()
    fake.add_source()
    with pytest.raises(InvalidInput) as caught:
        await forecast.estimate_processing(ports, source_ids=sources, model_names=models,
                                           strategy=strategy, mode=mode)
    assert paths(caught.value) == wanted


async def test_unknown_source_is_not_found() -> None:
    ports, fake = setup()
    fake.add_source()
    with pytest.raises(NotFound) as caught:
        await forecast.estimate_processing(ports, source_ids=[1, 99], model_names=["cheap"])
    assert caught.value.path == ("input", "sourceIds")


async def test_start_processing_keeps_each_batchs_forecast() -> None:
    # Given
    ports, fake = setup()
    a = fake.add_source(content="x" * 8000)
    b = fake.add_source(content="y" * 100)
    # When
    started = await processing.start_processing(
        ports, source_ids=[a.id, b.id], model_names=["cheap", "dear"], strategy=None,
        budget_usd=None)
    # Then: each batch holds its model's forecast, per source
    estimate = await forecast.estimate_processing(ports, source_ids=[a.id, b.id],
                                                  model_names=["cheap", "dear"])
    for batch_id, item in zip(started.batch_ids, estimate.models, strict=True):
        kept = fake.state.batches[batch_id].forecast
        assert kept is not None and kept["model"] == item.forecast.model
        assert kept["expectedCostUsd"] == str(item.forecast.expected_cost_usd)
        assert set(kept["sources"]) == {str(a.id), str(b.id)}


async def test_a_start_without_a_forecaster_keeps_no_forecast() -> None:
    ports = make_ports()
    fake = fakes_of(ports)
    fake.add_model("cheap")
    a = fake.add_source()
    started = await processing.start_processing(ports, source_ids=[a.id],
                                                model_names=["cheap"], strategy=None,
                                                budget_usd=None)
    assert fake.state.batches[started.batch_ids[0]].forecast is None
