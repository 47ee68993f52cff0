"""A catalog model's effective cache and batch prices, as the GraphQL `Model` shows them.

LiteLLM's map is read through workers/prices.py, which imports LiteLLM on the first lookup
only (the API process starts without it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from domain.llm import ModelSpec
from domain.pricing import effective_discount


@dataclass(frozen=True, slots=True)
class ModelLevers:
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    batch_input: Decimal | None = None
    batch_output: Decimal | None = None
    discount: Decimal | None = None


def _plain(value: Decimal | None) -> Decimal | None:
    if value is None:
        return None
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


def levers_of(model: Any, discounts: Mapping[str, Decimal]) -> ModelLevers:
    """Effective cache-read/-write and batch prices of a GraphQL `Model` (per million)."""
    from workers.prices import default_discount, model_batch_rates, model_rates

    spec = ModelSpec(name=model.name, litellm_model=model.litellm_model,
                     api_base=model.api_base,
                     input_cost_per_million=model.input_cost_per_million,
                     output_cost_per_million=model.output_cost_per_million,
                     cache_read_cost_per_million=model.cache_read_cost_per_million_override,
                     cache_write_cost_per_million=model.cache_write_cost_per_million_override,
                     batch_discount=model.batch_discount_override)
    rates = model_rates(spec)
    if rates is None:
        return ModelLevers(discount=default_discount(spec, discounts))
    batch = model_batch_rates(spec, discounts)
    return ModelLevers(
        cache_read=_plain(rates.read), cache_write=_plain(rates.write),
        batch_input=_plain(batch.input) if batch else None,
        batch_output=_plain(batch.output) if batch else None,
        discount=(spec.batch_discount if spec.batch_discount is not None
                  else effective_discount(rates, batch)))
