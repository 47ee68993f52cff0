"""Model catalog use cases (domain/services/catalog.py) against in-memory fakes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from domain.errors import Conflict, InvalidInput, NotFound
from domain.services import catalog
from tests.support.fakes import FakePrices, fakes_of, make_ports

PRICES = FakePrices(prices={"gpt-4o-mini": (Decimal("0.15"), Decimal("0.6"))},
                    limits={"gpt-4o-mini": (128_000, 16_384), "half/known": (None, 2048)})


def raw(name: str = "mini", litellm: str = "gpt-4o-mini", **values: Any) -> dict[str, Any]:
    return {"name": name, "litellm_model": litellm, **values}


def paths(exc: InvalidInput) -> list[tuple[str, ...]]:
    return [issue.path for issue in exc.issues]


# --- register_model: prices -----------------------------------------------------------------


async def test_register_model_with_both_prices_stores_them_as_an_override() -> None:
    # Given
    ports = make_ports(prices=PRICES)
    # When
    row = await catalog.register_model(ports, raw(input_cost_per_million="1.5",
                                                  output_cost_per_million=Decimal(3)))
    # Then
    assert (row.input_cost_per_million, row.output_cost_per_million, row.price_source) == \
        (Decimal("1.5"), Decimal(3), "override")
    assert fakes_of(ports).state.models["mini"] is row


async def test_register_model_with_free_prices_given_is_still_an_override() -> None:
    # Given
    ports = make_ports(prices=PRICES)
    # When
    row = await catalog.register_model(ports, raw(input_cost_per_million=0,
                                                  output_cost_per_million=0))
    # Then
    assert (row.input_cost_per_million, row.output_cost_per_million, row.price_source) == \
        (Decimal(0), Decimal(0), "override")


async def test_register_model_without_prices_takes_litellms_price_when_known() -> None:
    # Given
    ports = make_ports(prices=PRICES)
    # When
    row = await catalog.register_model(ports, raw(input_cost_per_million=None,
                                                  output_cost_per_million=None))
    # Then
    assert (row.input_cost_per_million, row.output_cost_per_million, row.price_source) == \
        (Decimal("0.15"), Decimal("0.6"), "litellm")


async def test_register_model_without_prices_and_none_known_is_unpriced() -> None:
    # Given
    ports = make_ports(prices=PRICES)
    # When
    row = await catalog.register_model(ports, raw("local", "openai/my-model"))
    # Then
    assert (row.input_cost_per_million, row.output_cost_per_million, row.price_source) == \
        (None, None, "none")


@pytest.mark.parametrize(("given", "path"), [
    ({"input_cost_per_million": "1"}, ("input", "outputCostPerMillion")),
    ({"output_cost_per_million": "1"}, ("input", "inputCostPerMillion")),
    ({"input_cost_per_million": "1", "output_cost_per_million": None},
     ("input", "outputCostPerMillion")),
])
async def test_register_model_refuses_one_price_alone_naming_the_other_field(
        given: dict[str, Any], path: tuple[str, ...]) -> None:
    # Given
    ports = make_ports(prices=PRICES)
    # When
    with pytest.raises(InvalidInput) as caught:
        await catalog.register_model(ports, raw(**given))
    # Then
    assert paths(caught.value) == [path]
    assert fakes_of(ports).state.models == {}
    assert fakes_of(ports).units == []


# --- register_model: limits -----------------------------------------------------------------


async def test_register_model_limits_default_from_the_price_catalog() -> None:
    # Given
    ports = make_ports(prices=PRICES)
    # When
    row = await catalog.register_model(ports, raw())
    # Then
    assert (row.context_window, row.max_output_tokens) == (128_000, 16_384)


async def test_register_model_limits_default_to_8192_and_4096_when_unknown() -> None:
    # Given
    ports = make_ports(prices=PRICES)
    # When
    unknown = await catalog.register_model(ports, raw("a", "openai/unknown"))
    half = await catalog.register_model(ports, raw("b", "half/known"))
    # Then
    assert (unknown.context_window, unknown.max_output_tokens) == (8192, 4096)
    assert (half.context_window, half.max_output_tokens) == (8192, 2048)


async def test_register_model_keeps_the_limits_given() -> None:
    # Given
    ports = make_ports(prices=PRICES)
    # When
    row = await catalog.register_model(ports, raw(context_window=32_000, max_output_tokens=1000))
    # Then
    assert (row.context_window, row.max_output_tokens) == (32_000, 1000)


# --- register_model: other fields --------------------------------------------------------------


async def test_register_model_trims_the_name_and_blanks_an_empty_api_base() -> None:
    # Given
    ports = make_ports(prices=PRICES)
    # When
    row = await catalog.register_model(ports, raw("  mini  ", " gpt-4o-mini ", api_base="  ",
                                                  notes="n" * 2500))
    # Then
    assert (row.name, row.litellm_model, row.api_base) == ("mini", "gpt-4o-mini", None)
    assert row.notes == "n" * 2000


@pytest.mark.parametrize(("change", "path"), [
    ({"name": ""}, ("input", "name")),
    ({"name": "-starts-with-dash"}, ("input", "name")),
    ({"name": "x" * 101}, ("input", "name")),
    ({"litellm_model": "has space"}, ("input", "litellmModel")),
    ({"litellm_model": None}, ("input", "litellmModel")),
    ({"api_base": "ftp://host"}, ("input", "apiBase")),
    ({"input_cost_per_million": "cheap", "output_cost_per_million": "1"},
     ("input", "inputCostPerMillion")),
    ({"input_cost_per_million": "1", "output_cost_per_million": "-1"},
     ("input", "outputCostPerMillion")),
    ({"input_cost_per_million": "10001", "output_cost_per_million": "1"},
     ("input", "inputCostPerMillion")),
    ({"input_cost_per_million": "NaN", "output_cost_per_million": "1"},
     ("input", "inputCostPerMillion")),
    ({"context_window": 255}, ("input", "contextWindow")),
    ({"context_window": 10_000_001}, ("input", "contextWindow")),
    ({"max_output_tokens": 1_000_001}, ("input", "maxOutputTokens")),
])
async def test_register_model_refuses_an_invalid_field_naming_it(
        change: dict[str, Any], path: tuple[str, ...]) -> None:
    # Given
    ports = make_ports(prices=PRICES)
    # When
    with pytest.raises(InvalidInput) as caught:
        await catalog.register_model(ports, raw(**change))
    # Then
    assert paths(caught.value) == [path]
    assert fakes_of(ports).units == []


async def test_register_model_reports_every_invalid_field_at_once() -> None:
    # Given
    ports = make_ports(prices=PRICES)
    # When
    with pytest.raises(InvalidInput) as caught:
        await catalog.register_model(ports, raw("", "", api_base="x", context_window=1))
    # Then
    assert paths(caught.value) == [("input", "name"), ("input", "litellmModel"),
                                   ("input", "apiBase"), ("input", "contextWindow")]


async def test_register_model_refuses_a_name_already_registered() -> None:
    # Given
    ports = make_ports(prices=PRICES)
    fake = fakes_of(ports)
    fake.add_model("mini", litellm_model="other")
    # When
    with pytest.raises(Conflict) as caught:
        await catalog.register_model(ports, raw())
    # Then
    assert (caught.value.path, caught.value.existing_id) == (("input", "name"), "mini")
    assert fake.state.models["mini"].litellm_model == "other"
    assert [u.rolled_back for u in fake.units] == [True]


# --- update_model -------------------------------------------------------------------------------


async def test_update_model_refuses_a_request_naming_no_field() -> None:
    # Given
    ports = make_ports()
    fakes_of(ports).add_model("mini")
    # When
    with pytest.raises(InvalidInput) as caught:
        await catalog.update_model(ports, "mini", {"enabled": None, "context_window": None})
    # Then
    assert paths(caught.value) == [("input",)]
    assert fakes_of(ports).units == []


async def test_update_model_refuses_an_unknown_model() -> None:
    # Given
    ports = make_ports()
    # When
    with pytest.raises(NotFound) as caught:
        await catalog.update_model(ports, "ghost", {"enabled": False})
    # Then
    assert (caught.value.kind, caught.value.key, caught.value.path) == \
        ("Model", "ghost", ("input", "name"))


async def test_update_model_refuses_invalid_values_naming_them() -> None:
    # Given
    ports = make_ports()
    fakes_of(ports).add_model("mini")
    # When
    with pytest.raises(InvalidInput) as caught:
        await catalog.update_model(ports, "mini", {"max_output_tokens": 10,
                                                   "litellm_model": "bad model"})
    # Then
    assert paths(caught.value) == [("input", "litellmModel"), ("input", "maxOutputTokens")]


async def test_update_model_setting_both_prices_marks_them_an_override() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    fake.add_model("mini", price=None)
    # When
    row = await catalog.update_model(ports, "mini", {"input_cost_per_million": "2",
                                                     "output_cost_per_million": "4"})
    # Then
    assert (row.input_cost_per_million, row.output_cost_per_million, row.price_source) == \
        (Decimal(2), Decimal(4), "override")


async def test_update_model_changing_one_price_of_a_priced_model_keeps_the_other() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    fake.add_model("mini", price=("1", "2"), )
    fake.state.models["mini"].price_source = "litellm"
    # When
    row = await catalog.update_model(ports, "mini", {"output_cost_per_million": "5"})
    # Then
    assert (row.input_cost_per_million, row.output_cost_per_million, row.price_source) == \
        (Decimal(1), Decimal(5), "override")


@pytest.mark.parametrize("given", [{"input_cost_per_million": "1"},
                                   {"output_cost_per_million": "1"}])
async def test_update_model_refuses_one_price_on_an_unpriced_model(
        given: dict[str, Any]) -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    fake.add_model("mini", price=None)
    # When
    with pytest.raises(InvalidInput) as caught:
        await catalog.update_model(ports, "mini", given)
    # Then
    assert paths(caught.value) == [("input", "outputCostPerMillion")]
    row = fake.state.models["mini"]
    assert (row.input_cost_per_million, row.output_cost_per_million) == (None, None)
    assert [u.rolled_back for u in fake.units] == [True]


async def test_update_model_refuses_clearing_one_price_of_a_priced_model() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    fake.add_model("mini", price=("1", "2"))
    # When
    with pytest.raises(InvalidInput) as caught:
        await catalog.update_model(ports, "mini", {"input_cost_per_million": None,
                                                   "enabled": False})
    # Then
    assert paths(caught.value) == [("input", "outputCostPerMillion")]
    row = fake.state.models["mini"]
    assert (row.input_cost_per_million, row.enabled) == (Decimal(1), True)


async def test_update_model_clearing_both_prices_marks_it_unpriced() -> None:
    # Given
    ports = make_ports()
    fakes_of(ports).add_model("mini", price=("1", "2"))
    # When
    row = await catalog.update_model(ports, "mini", {"input_cost_per_million": None,
                                                     "output_cost_per_million": None})
    # Then
    assert (row.input_cost_per_million, row.output_cost_per_million, row.price_source) == \
        (None, None, "none")


async def test_update_model_changing_other_fields_keeps_the_price_source() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    fake.add_model("mini", price=("1", "2"))
    fake.state.models["mini"].price_source = "litellm"
    # When
    row = await catalog.update_model(ports, "mini", {"enabled": False, "notes": "",
                                                     "context_window": 4096})
    # Then
    assert (row.enabled, row.notes, row.context_window, row.price_source) == \
        (False, None, 4096, "litellm")
    assert fake.called("catalog.update")[0][0][1] == {"enabled": False, "notes": None,
                                                      "context_window": 4096}


# --- seed_catalog ---------------------------------------------------------------------------


async def test_seed_catalog_adds_missing_models_priced_by_the_catalog_and_keeps_others() -> None:
    # Given
    ports = make_ports(prices=PRICES)
    fake = fakes_of(ports)
    fake.add_model("claude-3-opus", price=("1", "1"), enabled=False)
    # When
    await catalog.seed_catalog(ports)
    # Then
    models = fake.state.models
    assert fake.called("catalog.seed") == [((PRICES,), {})]
    assert (models["gpt-4o-mini"].input_cost_per_million, models["gpt-4o-mini"].price_source) \
        == (Decimal("0.15"), "litellm")
    assert (models["claude-3-opus"].enabled,
            models["claude-3-opus"].input_cost_per_million) == (False, Decimal(1))
    assert [u.committed for u in fake.units] == [True]
