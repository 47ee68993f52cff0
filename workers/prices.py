"""LiteLLM's prices and limits for a model string: the one reader of LiteLLM's model map.

Read through LiteLLM's public `litellm.model_cost`, so the catalog, the API and the gateway see
the same numbers (including models registered at run time, such as the offline extractors).
LiteLLM is imported on first use only: importing this module stays cheap for the API process.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from domain.llm import ModelSpec
from domain.pricing import ListedPrices, Rates, batch_rates

MILLION = Decimal(1_000_000)
# The price map's per-token keys of each kind, interactive and batch.
_LISTED_KEYS = {
    "input": "input_cost_per_token",
    "output": "output_cost_per_token",
    "cache_read": "cache_read_input_token_cost",
    "cache_write": "cache_creation_input_token_cost",
    "input_batch": "input_cost_per_token_batches",
    "output_batch": "output_cost_per_token_batches",
    "cache_read_batch": "cache_read_input_token_cost_batches",
    "cache_write_batch": "cache_creation_input_token_cost_batches",
}
_NOT_A_MODEL = "sample_spec"  # the documentation entry at the top of LiteLLM's price map


class LiteLLMPrices:
    """`PriceCatalog` over LiteLLM's model map (bundled, local: no network)."""

    def price_of(self, litellm_model: str) -> tuple[Decimal, Decimal] | None:
        """(input, output) USD per million tokens; None when unknown or not fully priced."""
        found = self.entry_of(litellm_model)
        if found is None:
            return None
        entry = found[1]
        per_input = entry.get("input_cost_per_token")
        per_output = entry.get("output_cost_per_token")
        if not (_is_number(per_input) and _is_number(per_output)):
            return None
        # str() first: Decimal(1.5e-07) would carry the float's binary error into money.
        return _plain(Decimal(str(per_input)) * MILLION), _plain(Decimal(str(per_output)) * MILLION)

    def listed_of(self, litellm_model: str) -> ListedPrices | None:
        """Every per-million price the map has for the model (cache and batch ones included),
        None when the map lacks the model."""
        found = self.entry_of(litellm_model)
        if found is None:
            return None
        entry = found[1]
        values = {kind: _per_million(entry.get(key)) for kind, key in _LISTED_KEYS.items()}
        return ListedPrices(**values)

    def provider_of(self, litellm_model: str) -> str | None:
        """LiteLLM's provider of a model string (`openai`, `anthropic`, `vertex_ai`,
        `bedrock`, …), families folded (`vertex_ai-anthropic_models` → `vertex_ai`)."""
        provider: str | None = None
        try:
            provider = str(_litellm().get_llm_provider(model=litellm_model)[1])
        except Exception:
            found = self.entry_of(litellm_model)
            value = found[1].get("litellm_provider") if found else None
            provider = value if isinstance(value, str) else None
            if provider is None and "/" in litellm_model:
                provider = litellm_model.split("/", 1)[0]
        if provider is None:
            return None
        for family in ("vertex_ai", "bedrock"):
            if provider.startswith(family):
                return family
        return provider

    def limits_of(self, litellm_model: str) -> tuple[int | None, int | None]:
        """(context window, max output tokens), each None when unknown.

        LiteLLM's legacy `max_tokens` stands in for a missing `max_input_tokens` only (it holds
        the output limit for some entries and the input one for others, so a missing
        `max_output_tokens` stays unknown and the catalog falls back to its default).
        """
        found = self.entry_of(litellm_model)
        if found is None:
            return None, None
        entry = found[1]
        return (
            _first_limit(entry, "max_input_tokens", "max_tokens"),
            _first_limit(entry, "max_output_tokens"),
        )

    def entry_of(self, litellm_model: str) -> tuple[str, Mapping[str, Any]] | None:
        """The map's key and entry for a model string: the full name, then the name after the
        provider prefix (`openai/gpt-4o-mini` → `gpt-4o-mini`); None when LiteLLM lacks it."""
        model_cost: Mapping[str, Any] = _litellm().model_cost
        for key in _lookup_keys(litellm_model):
            entry = model_cost.get(key)
            if key != _NOT_A_MODEL and isinstance(entry, Mapping):
                return key, entry
        return None


_PRICES = LiteLLMPrices()


def model_rates(spec: ModelSpec) -> Rates | None:
    """A catalog model's interactive rates: its input/output override when set, else the
    map's; cache rates from its overrides, else the map's, else the input rate (no discount).
    None when the model has no known input/output price."""
    if spec.input_cost_per_million is not None and spec.output_cost_per_million is not None:
        io: tuple[Decimal, Decimal] | None = (spec.input_cost_per_million,
                                              spec.output_cost_per_million)
    else:
        io = _PRICES.price_of(spec.litellm_model)
    if io is None:
        return None
    listed = _PRICES.listed_of(spec.litellm_model) or ListedPrices()
    read = spec.cache_read_cost_per_million
    write = spec.cache_write_cost_per_million
    return Rates(io[0], io[1],
                 read if read is not None else listed.cache_read,
                 write if write is not None else listed.cache_write)


def model_batch_rates(spec: ModelSpec, discounts: Mapping[str, Decimal]) -> Rates | None:
    """A catalog model's batch-mode rates: its own `batch_discount` when set, else the
    map's batch prices where it has them, else its provider's default discount from
    `discounts` (MMOS_BATCH_DISCOUNTS). None when nothing says what batch mode costs (or the
    model has no price)."""
    rates = model_rates(spec)
    if rates is None:
        return None
    provider = _PRICES.provider_of(spec.litellm_model)
    return batch_rates(rates, listed=_PRICES.listed_of(spec.litellm_model),
                       model_discount=spec.batch_discount,
                       provider_discount=discounts.get(provider or ""))


def default_discount(spec: ModelSpec, discounts: Mapping[str, Decimal]) -> Decimal | None:
    """The batch discount that applies to a model where the map has no batch price: its
    own, else its provider's default."""
    if spec.batch_discount is not None:
        return spec.batch_discount
    return discounts.get(_PRICES.provider_of(spec.litellm_model) or "")


def _per_million(value: object) -> Decimal | None:
    if not _is_number(value):
        return None
    return _plain(Decimal(str(value)) * MILLION)


def _litellm() -> Any:
    # No network at import, and the offline models registered.
    from workers.litellm_loader import load_litellm

    return load_litellm()


def _lookup_keys(litellm_model: str) -> Iterator[str]:
    yield litellm_model
    _, slash, bare = litellm_model.partition("/")
    if slash and bare:
        yield bare


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _first_limit(entry: Mapping[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = entry.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return int(value)
    return None


def _plain(value: Decimal) -> Decimal:
    # 3E+1 → 30: keep prices readable when printed.
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()
