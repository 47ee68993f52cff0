"""LiteLLM's prices and limits for a model string: the one reader of LiteLLM's model map.

Read through LiteLLM's public `litellm.model_cost`, so the catalog, the API and the gateway see
the same numbers (including models registered at run time, such as the offline extractors).
LiteLLM is imported on first use only: importing this module stays cheap for the API process.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

MILLION = Decimal(1_000_000)
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
