"""Pricing of cached, written and batched tokens: hand-computed figures and the invariant
cost = list − cache saved − batch saved, exactly."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.pricing import (
    CallCost,
    CallUsage,
    ListedPrices,
    Rates,
    batch_rates,
    effective_discount,
    money,
    parse_batch_discounts,
    price,
    worst_case,
)

D = Decimal
# gpt-4o-mini and claude-haiku-4-5 as LiteLLM 1.106.2's bundled map prices them (per million).
MINI = Rates(D("0.15"), D("0.6"), cache_read=D("0.075"))
HAIKU = Rates(D("1"), D("5"), cache_read=D("0.1"), cache_write=D("1.25"))
HAIKU_BATCH = Rates(D("0.5"), D("2.5"), cache_read=D("0.05"), cache_write=D("0.625"))


def test_unknown_cache_rates_are_the_input_rate() -> None:
    rates = Rates(D("2"), D("8"))
    assert (rates.read, rates.write) == (D("2"), D("2"))
    assert rates.dearest_input == D("2")
    assert HAIKU.dearest_input == D("1.25")


def test_openai_cached_tokens_are_billed_at_the_cache_read_rate() -> None:
    # 208 uncached × 0.15 + 1792 cached × 0.075 + 300 out × 0.60 = 345.6 per million
    cost = price(CallUsage(2000, 300, cached_tokens=1792), MINI)
    assert cost == CallCost(D("0.00034560"), D("0.00048000"), D("0.00013440"), D("0"))


def test_a_call_without_cached_tokens_costs_exactly_what_it_did() -> None:
    cost = price(CallUsage(1234, 567), MINI)
    assert cost.cost_usd == D("0.0005253")  # 1234 × 0.15 + 567 × 0.60 per million
    assert cost.list_cost_usd == cost.cost_usd
    assert (cost.cache_saved_usd, cost.batch_saved_usd) == (0, 0)


def test_anthropic_cache_write_costs_more_and_reads_save() -> None:
    # first call: 100 uncached × 1 + 2900 written × 1.25 + 50 out × 5 = 3975 per million
    first = price(CallUsage(3000, 50, cache_write_tokens=2900), HAIKU)
    assert first == CallCost(D("0.00397500"), D("0.00325000"), D("-0.00072500"), D("0"))
    # repeat: 100 × 1 + 2900 read × 0.1 + 50 × 5 = 640 per million
    repeat = price(CallUsage(3000, 50, cached_tokens=2900), HAIKU)
    assert repeat == CallCost(D("0.00064000"), D("0.00325000"), D("0.00261000"), D("0"))


def test_batch_mode_saves_against_the_interactive_cached_cost() -> None:
    # 100 × 0.5 + 2900 × 0.05 + 50 × 2.5 = 320 per million; interactive 640, list 3250
    cost = price(CallUsage(3000, 50, cached_tokens=2900), HAIKU, batch_rates=HAIKU_BATCH)
    assert cost == CallCost(D("0.00032000"), D("0.00325000"), D("0.00261000"), D("0.00032000"))
    assert cost.list_cost_usd - cost.cache_saved_usd - cost.batch_saved_usd == cost.cost_usd


def test_each_figure_is_rounded_once_half_away_from_zero_to_8_decimals() -> None:
    # 3 cached × 0.075 = 0.225 per million → 0.00000023; list 3 × 0.15 = 0.45 → 0.00000045
    cost = price(CallUsage(3, 0, cached_tokens=3), MINI)
    assert cost == CallCost(D("0.00000023"), D("0.00000045"), D("0.00000022"), D("0"))
    assert money(D("0.000000005")) == D("0.00000001")


def test_inconsistent_usage_is_refused() -> None:
    with pytest.raises(ValueError, match="exceed"):
        CallUsage(100, 0, cached_tokens=80, cache_write_tokens=30)
    with pytest.raises(ValueError, match="negative"):
        CallUsage(-1, 0)


def test_worst_case_prices_prompt_tokens_at_the_dearest_rate() -> None:
    assert worst_case(HAIKU, 1000, 100) == D("0.00175")  # 1000 × 1.25 + 100 × 5
    assert worst_case(MINI, 1000, 100) == D("0.00021")  # no dearer cache rate: as before


# -- batch rates -----------------------------------------------------------------------------


MINI_LISTED = ListedPrices(input=D("0.15"), output=D("0.6"), cache_read=D("0.075"),
                           input_batch=D("0.075"), output_batch=D("0.3"))
HAIKU_LISTED = ListedPrices(D("1"), D("5"), D("0.1"), D("1.25"), D("0.5"), D("2.5"), D("0.05"),
                            D("0.625"))


def test_batch_prices_come_from_the_map_where_it_has_them() -> None:
    assert batch_rates(HAIKU, listed=HAIKU_LISTED, provider_discount=D("0.3")) == HAIKU_BATCH
    # the map has no batch cache-read price for gpt-4o-mini: the input's factor (½) applies
    mini = batch_rates(MINI, listed=MINI_LISTED)
    assert mini == Rates(D("0.075"), D("0.3"), D("0.0375"), D("0.075"))
    assert effective_discount(MINI, mini) == D("0.5")


def test_a_catalog_override_is_scaled_by_the_maps_batch_factor() -> None:
    overridden = Rates(D("0.30"), D("1.2"), cache_read=D("0.075"))
    batch = batch_rates(overridden, listed=MINI_LISTED)
    assert batch is not None
    assert (batch.input, batch.output) == (D("0.15"), D("0.6"))


def test_without_map_batch_prices_the_provider_discount_applies() -> None:
    rates = Rates(D("2"), D("8"), cache_read=D("0.5"))
    assert batch_rates(rates, provider_discount=D("0.5")) == Rates(D("1.0"), D("4.0"),
                                                                   D("0.25"), D("1.0"))
    assert batch_rates(rates) is None  # nothing says what batch mode costs


def test_the_models_own_discount_wins() -> None:
    batch = batch_rates(HAIKU, listed=HAIKU_LISTED, model_discount=D("0.25"))
    assert batch == Rates(D("0.75"), D("3.75"), D("0.075"), D("0.9375"))


def test_batch_discounts_parse_strictly() -> None:
    assert parse_batch_discounts("openai=0.5, anthropic = 0.25,") == {
        "openai": D("0.5"), "anthropic": D("0.25")}
    assert parse_batch_discounts("") == {}
    for bad, message in (("openai", "provider=discount"), ("openai=half", "not a number"),
                         ("openai=1", "below 1"), ("openai=-0.1", "at least 0"),
                         ("openai=0.5,openai=0.4", "twice"), ("op en=0.5", "provider name"),
                         ("openai=NaN", "below 1")):
        with pytest.raises(ValueError, match=message):
            parse_batch_discounts(bad)


# -- the invariant ---------------------------------------------------------------------------

_price = st.decimals(min_value=0, max_value=100, places=6, allow_nan=False,
                     allow_infinity=False)


@st.composite
def _usages(draw: st.DrawFn) -> CallUsage:
    prompt = draw(st.integers(0, 2_000_000))
    cached = draw(st.integers(0, prompt))
    written = draw(st.integers(0, prompt - cached))
    return CallUsage(prompt, draw(st.integers(0, 200_000)), cached, written)


@given(_usages(), _price, _price, _price, _price, st.one_of(st.none(), st.decimals(
    min_value=0, max_value=D("0.99"), places=4)))
def test_cost_is_list_minus_savings_exactly(usage: CallUsage, per_in: Decimal, per_out: Decimal,
                                            read: Decimal, write: Decimal,
                                            discount: Decimal | None) -> None:
    rates = Rates(per_in, per_out, read, write)
    batch = None if discount is None else batch_rates(rates, provider_discount=discount)
    cost = price(usage, rates, batch_rates=batch)
    assert cost.cost_usd == cost.list_cost_usd - cost.cache_saved_usd - cost.batch_saved_usd
    for figure in (cost.cost_usd, cost.list_cost_usd, cost.cache_saved_usd,
                   cost.batch_saved_usd):
        assert figure == money(figure)  # 8 decimals: stored as priced
    if usage.cached_tokens == usage.cache_write_tokens == 0:
        assert cost.cache_saved_usd == 0
    if batch is None:
        assert cost.batch_saved_usd == 0
