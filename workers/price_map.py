"""LiteLLM's bundled price map, read as JSON: prices without importing LiteLLM (API process)."""

from __future__ import annotations

import importlib.util
import json
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

MILLION = Decimal(1_000_000)


@lru_cache(maxsize=1)
def _bundled() -> dict[str, Any]:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations)))
    path = path / "model_prices_and_context_window_backup.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data


def _entry(litellm_model: str) -> dict[str, Any] | None:
    table = _bundled()
    candidates = [litellm_model]
    if "/" in litellm_model:
        candidates.append(litellm_model.split("/", 1)[1])
    for key in candidates:
        entry = table.get(key)
        if isinstance(entry, dict):
            return entry
    return None


def bundled_price(litellm_model: str) -> tuple[Decimal, Decimal] | None:
    """(input, output) USD per million tokens from the bundled map, or None when unknown."""
    entry = _entry(litellm_model)
    if not entry:
        return None
    inp, out = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
    if inp is None or out is None:
        return None
    return _plain(Decimal(str(inp)) * MILLION), _plain(Decimal(str(out)) * MILLION)


def bundled_limits(litellm_model: str) -> tuple[int | None, int | None]:
    """(context window, max output tokens) from the bundled map."""
    entry = _entry(litellm_model) or {}
    window = entry.get("max_input_tokens") or entry.get("max_tokens")
    output = entry.get("max_output_tokens")
    return (int(window) if window else None, int(output) if output else None)


def _plain(value: Decimal) -> Decimal:
    # 3E+1 → 30: keep prices readable when printed.
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()
