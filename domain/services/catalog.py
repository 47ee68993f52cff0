"""The model catalog: register a model (priced from LiteLLM's map unless both prices are
given), change an entry, seed the built-in line-up."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from domain.api_bases import problem_with_base, problem_with_key_env
from domain.errors import FieldIssue, InvalidInput
from domain.ports import Ports

MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,99}$")
LITELLM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$")
API_BASE_RE = re.compile(r"^https?://[^\s]{1,490}$")
# A custom apiBase is an OpenAI-compatible server (vLLM, Ollama, a proxy): LiteLLM's openai/
# route, whose client MMOS builds itself (its own key, no redirects followed).
CUSTOM_BASE_PREFIX = "openai/"
MAX_PRICE = Decimal(10_000)
DEFAULT_CONTEXT_WINDOW = 8192
DEFAULT_MAX_OUTPUT = 4096
# Upper bounds of the per-model limits: beyond them a value is a typo, not a provider tier.
LIMIT_BOUNDS = (("rpm", "rpm", 1_000_000), ("tpm", "tpm", 1_000_000_000),
                ("max_concurrency", "maxConcurrency", 10_000))


def _price(value: Any, field: str, issues: list[FieldIssue]) -> Decimal | None:
    if value is None:
        return None
    try:
        price = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        issues.append(FieldIssue(("input", field), "must be a decimal number"))
        return None
    if not price.is_finite() or price < 0 or price > MAX_PRICE:
        issues.append(FieldIssue(("input", field), f"must be between 0 and {MAX_PRICE}"))
        return None
    return price


def _discount(value: Any, issues: list[FieldIssue]) -> Decimal | None:
    if value is None:
        return None
    try:
        discount = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        issues.append(FieldIssue(("input", "batchDiscount"), "must be a decimal number"))
        return None
    if not discount.is_finite() or not 0 <= discount < 1:
        issues.append(FieldIssue(("input", "batchDiscount"),
                                 "must be at least 0 and below 1 (a share of the price)"))
        return None
    if discount != discount.quantize(Decimal("0.0001")):
        issues.append(FieldIssue(("input", "batchDiscount"), "takes at most 4 decimals"))
        return None
    return discount


def _limit(value: Any, field: str, top: int, issues: list[FieldIssue]) -> int | None:
    """A per-model limit: a whole number from 1 to `top`; None (no limit) clears it."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        issues.append(FieldIssue(("input", field), "must be a whole number"))
        return None
    if not 1 <= value <= top:
        issues.append(FieldIssue(("input", field), f"must be between 1 and {top:,} "
                                 "(null for no limit)"))
        return None
    return value


def model_values(raw: dict[str, Any], *, creating: bool,
                 allowed_bases: tuple[str, ...] = ()) -> dict[str, Any]:
    """Checked column values of a register or update request (only keys present change); a
    custom apiBase must be on `allowed_bases` (and is never link-local or cloud metadata)."""
    issues: list[FieldIssue] = []
    values: dict[str, Any] = {}
    if creating:
        name = (raw.get("name") or "").strip()
        if not MODEL_NAME_RE.match(name):
            issues.append(FieldIssue(("input", "name"), "must be 1-100 characters of letters, "
                                     "digits and . _ : / @ -"))
        values["name"] = name
    if "litellm_model" in raw:
        model = (raw["litellm_model"] or "").strip()
        if not LITELLM_RE.match(model):
            issues.append(FieldIssue(("input", "litellmModel"), "must be a LiteLLM model "
                                     "string such as gpt-4o-mini or openai/my-model"))
        values["litellm_model"] = model
    if "api_base" in raw:
        base = (raw["api_base"] or "").strip() or None
        if base is not None and not API_BASE_RE.match(base):
            issues.append(FieldIssue(("input", "apiBase"), "must be an http(s) URL"))
        elif base is not None and (problem := problem_with_base(base, allowed_bases)):
            issues.append(FieldIssue(("input", "apiBase"), problem))
        values["api_base"] = base
    if "api_key_env" in raw:
        name = (raw["api_key_env"] or "").strip() or None
        if name is not None and (problem := problem_with_key_env(name)):
            issues.append(FieldIssue(("input", "apiKeyEnv"), problem))
        values["api_key_env"] = name
    for key, field in (("input_cost_per_million", "inputCostPerMillion"),
                       ("output_cost_per_million", "outputCostPerMillion"),
                       ("cache_read_cost_per_million", "cacheReadCostPerMillion"),
                       ("cache_write_cost_per_million", "cacheWriteCostPerMillion")):
        if key in raw:
            values[key] = _price(raw[key], field, issues)
    if "batch_discount" in raw:
        values["batch_discount"] = _discount(raw["batch_discount"], issues)
    for key, field, top in (("context_window", "contextWindow", 10_000_000),
                            ("max_output_tokens", "maxOutputTokens", 1_000_000)):
        if key in raw and raw[key] is not None:
            if not 256 <= raw[key] <= top:
                issues.append(FieldIssue(("input", field), f"must be between 256 and {top}"))
            values[key] = raw[key]
    for key, field, top in LIMIT_BOUNDS:
        if key in raw:
            values[key] = _limit(raw[key], field, top, issues)
    if "enabled" in raw and raw["enabled"] is not None:
        values["enabled"] = raw["enabled"]
    if "notes" in raw:
        values["notes"] = (raw["notes"] or "")[:2000] or None
    if issues:
        raise InvalidInput(issues)
    return values


def _refuse_foreign_route(litellm_model: str, api_base: str | None) -> None:
    if api_base is not None and not litellm_model.startswith(CUSTOM_BASE_PREFIX):
        raise InvalidInput.single(("input", "litellmModel"), (
            f"a model with an apiBase is an OpenAI-compatible server: use "
            f"{CUSTOM_BASE_PREFIX}<name> (e.g. {CUSTOM_BASE_PREFIX}llama3.1)"))


async def register_model(ports: Ports, raw: dict[str, Any]) -> Any:
    """Add a model: both prices given (an override), neither (LiteLLM's bundled price, or
    none known), never one alone; limits default to LiteLLM's, else 8192 / 4096."""
    values = model_values(raw, creating=True,
                          allowed_bases=ports.settings.api_base_allow_list)
    _refuse_foreign_route(values["litellm_model"], values.get("api_base"))
    given = (values.get("input_cost_per_million"), values.get("output_cost_per_million"))
    bundled = ports.prices.price_of(values["litellm_model"])
    if given[0] is not None and given[1] is not None:
        values["price_source"] = "override"
    elif given[0] is None and given[1] is None:
        if bundled is not None:
            values["input_cost_per_million"], values["output_cost_per_million"] = bundled
            values["price_source"] = "litellm"
        else:
            values["price_source"] = "none"
    else:
        raise InvalidInput.single(("input", "outputCostPerMillion" if given[0] is not None
                                   else "inputCostPerMillion"),
                                  "give both prices, or neither to use LiteLLM's")
    window, output = ports.prices.limits_of(values["litellm_model"])
    values["context_window"] = values.get("context_window") or window or DEFAULT_CONTEXT_WINDOW
    values["max_output_tokens"] = values.get("max_output_tokens") or output or DEFAULT_MAX_OUTPUT
    async with ports.uow() as uow:
        return await uow.catalog.register(values)


async def update_model(ports: Ports, name: str, raw: dict[str, Any]) -> Any:
    """Change a catalog entry; prices change together (set both, or clear both)."""
    values = model_values(raw, creating=False,
                          allowed_bases=ports.settings.api_base_allow_list)
    if not values:
        raise InvalidInput.single(("input",), "names no field to change")
    if "input_cost_per_million" in values or "output_cost_per_million" in values:
        values["price_source"] = "override"
    async with ports.uow() as uow:
        current = await uow.catalog.require(name, ("input", "name"))
        _refuse_foreign_route(values.get("litellm_model", current.litellm_model),
                              values.get("api_base", current.api_base))
        merged_in = values.get("input_cost_per_million", current.input_cost_per_million)
        merged_out = values.get("output_cost_per_million", current.output_cost_per_million)
        if (merged_in is None) != (merged_out is None):
            raise InvalidInput.single(("input", "outputCostPerMillion"),
                                      "set both prices, or clear both")
        if merged_in is None:
            values["price_source"] = "none"
        return await uow.catalog.update(name, values)


async def seed_catalog(ports: Ports) -> None:
    """Insert the built-in models that are missing (operator changes are kept)."""
    async with ports.uow() as uow:
        await uow.catalog.seed(ports.prices)
