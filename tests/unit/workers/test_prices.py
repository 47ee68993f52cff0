"""LiteLLMPrices: LiteLLM's own model map, read exactly, with the catalog's lookup rules."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest

from db.catalog import SEED_MODELS, seed_values
from domain.ports import PriceCatalog
from workers.prices import LiteLLMPrices

ROOT = Path(__file__).resolve().parents[3]
MILLION = Decimal(1_000_000)


@pytest.fixture(scope="module")
def litellm() -> ModuleType:
    import litellm

    return litellm


@pytest.fixture
def prices() -> LiteLLMPrices:
    return LiteLLMPrices()


def test_implements_the_price_catalog_port(prices: LiteLLMPrices) -> None:
    catalog: PriceCatalog = prices  # checked by mypy; the call proves the shape at run time
    assert catalog.limits_of("no-such-model") == (None, None)


def test_known_model_is_priced_exactly_as_litellm_says(
    prices: LiteLLMPrices, litellm: ModuleType
) -> None:
    entry = litellm.model_cost["gpt-4o-mini"]
    expected = (
        Decimal(str(entry["input_cost_per_token"])) * MILLION,
        Decimal(str(entry["output_cost_per_token"])) * MILLION,
    )

    price = prices.price_of("gpt-4o-mini")

    assert price == expected == (Decimal("0.15"), Decimal("0.6"))
    # No float error carried into money, and printed plainly.
    assert [str(value) for value in price] == ["0.15", "0.6"]


def test_provider_prefixed_name_falls_back_to_the_bare_name(prices: LiteLLMPrices) -> None:
    assert prices.price_of("openai/gpt-4o-mini") == prices.price_of("gpt-4o-mini")
    assert prices.limits_of("openai/gpt-4o-mini") == prices.limits_of("gpt-4o-mini")


def test_full_name_wins_over_the_bare_name(prices: LiteLLMPrices, litellm: ModuleType) -> None:
    full, bare = litellm.model_cost["azure/gpt-4-turbo"], litellm.model_cost["gpt-4-turbo"]
    assert full["input_cost_per_token"] != bare["input_cost_per_token"]

    price = prices.price_of("azure/gpt-4-turbo")

    assert price is not None
    assert price[0] == Decimal(str(full["input_cost_per_token"])) * MILLION


def test_whole_number_prices_print_without_exponent(prices: LiteLLMPrices) -> None:
    price = prices.price_of("gpt-4-turbo")  # 1e-05 per token: 10 per million

    assert price is not None
    assert str(price[0]) == "10"


def test_unknown_model_has_no_price_and_no_limits(prices: LiteLLMPrices) -> None:
    assert prices.price_of("openai/no-such-model") is None
    assert prices.price_of("no-such-model") is None
    assert prices.limits_of("openai/no-such-model") == (None, None)


def test_the_map_documentation_entry_is_not_a_model(prices: LiteLLMPrices) -> None:
    assert prices.price_of("sample_spec") is None
    assert prices.limits_of("sample_spec") == (None, None)


def test_limits_are_the_context_window_and_max_output(
    prices: LiteLLMPrices, litellm: ModuleType
) -> None:
    entry = litellm.model_cost["gpt-4o-mini"]

    assert prices.limits_of("gpt-4o-mini") == (128_000, 16_384)
    assert prices.limits_of("gpt-4o-mini") == (entry["max_input_tokens"],
                                                entry["max_output_tokens"])


def test_offline_models_are_priced_at_zero(prices: LiteLLMPrices) -> None:
    assert prices.price_of("mmos/rules-fast") == (Decimal(0), Decimal(0))


def test_catalog_seeding_takes_prices_and_limits_from_the_catalog(
    prices: LiteLLMPrices,
) -> None:
    seed = next(seed for seed in SEED_MODELS if seed.name == "gpt-4o-mini")

    values = seed_values(seed, prices)

    assert (values["input_cost_per_million"], values["output_cost_per_million"]) == (
        Decimal("0.15"), Decimal("0.6"))
    assert values["price_source"] == "litellm"
    assert (values["context_window"], values["max_output_tokens"]) == (128_000, 16_384)


def test_importing_the_module_does_not_import_litellm() -> None:
    # The API process imports the catalog's reader; LiteLLM loads on the first lookup only.
    code = "import sys, workers.prices; print('litellm' in sys.modules)"

    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "False"
