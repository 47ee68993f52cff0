"""The offline rule-based extractors served through LiteLLM as the custom provider "mmos".

After `register_local_models()`, `litellm.acompletion(model="mmos/rules-fast", messages=...)`
answers like any chat model, at zero cost, with no network. LiteLLM is imported only when
registering, so importing this module (e.g. for `LOCAL_MODEL_NAMES`) stays cheap.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from domain.local_extractors import EXTRACTORS, extract
from domain.prompt import source_text_of, subject_of

if TYPE_CHECKING:
    from types import ModuleType

    from litellm.types.utils import ModelResponse

PROVIDER = "mmos"
LOCAL_MODEL_NAMES: tuple[str, ...] = tuple(f"{PROVIDER}/{name}" for name in EXTRACTORS)

# Limits large enough never to be the binding constraint: the rules read any chunk.
CONTEXT_WINDOW = 1_000_000
MAX_OUTPUT_TOKENS = 100_000
CHARS_PER_TOKEN = 4


def register_local_models() -> None:
    """Register the "mmos" provider and price its models at exactly zero (idempotent)."""
    litellm = _import_litellm()
    if not any(item.get("provider") == PROVIDER for item in litellm.custom_provider_map):
        handler = _handler_class()()
        litellm.custom_provider_map.append({"provider": PROVIDER, "custom_handler": handler})
    litellm.register_model({name: _price_card() for name in LOCAL_MODEL_NAMES})


def _import_litellm() -> ModuleType:
    # Without this LiteLLM fetches its price map from the internet at import time.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


def _price_card() -> dict[str, Any]:
    return {
        "input_cost_per_token": 0.0,
        "output_cost_per_token": 0.0,
        # Declared so LiteLLM does not warn that cache pricing defaults to zero.
        "cache_creation_input_token_cost": 0.0,
        "cache_read_input_token_cost": 0.0,
        "litellm_provider": PROVIDER,
        "mode": "chat",
        "max_tokens": MAX_OUTPUT_TOKENS,
        "max_input_tokens": CONTEXT_WINDOW,
        "max_output_tokens": MAX_OUTPUT_TOKENS,
    }


def _handler_class() -> type:
    # Defined on demand because its base class lives in LiteLLM, which is imported lazily.
    from litellm.llms.custom_llm import CustomLLM

    class LocalRulesLLM(CustomLLM):
        """Answers chat completions by running a local rule-based extractor."""

        def completion(self, *args: Any, **kwargs: Any) -> ModelResponse:
            return _answer(kwargs["model"], kwargs["messages"], kwargs["model_response"])

        async def acompletion(self, *args: Any, **kwargs: Any) -> ModelResponse:
            return _answer(kwargs["model"], kwargs["messages"], kwargs["model_response"])

    return LocalRulesLLM


def _answer(model: str, messages: list[dict[str, Any]], response: ModelResponse) -> ModelResponse:
    from litellm.llms.custom_llm import CustomLLMError
    from litellm.types.utils import Usage

    name = model.removeprefix(f"{PROVIDER}/")
    if name not in EXTRACTORS:
        # LiteLLM maps this status to NotFoundError: a deterministic failure, never retried.
        raise CustomLLMError(404, f"unknown local model {model!r}")  # type: ignore[no-untyped-call]
    flat = [{"role": str(m.get("role", "")), "content": _text_of(m)} for m in messages]
    source = source_text_of(flat)
    if source is None:
        source = next((m["content"] for m in reversed(flat) if m["role"] == "user"), "")
    # As a real model would: with a subject named, only the subject's turns are material.
    subject, opening = subject_of(flat)
    answer = extract(name, source, subject=subject, opening_speaker=opening)
    content = json.dumps(answer, ensure_ascii=False)
    response.choices[0].message.content = content
    response.choices[0].finish_reason = "stop"
    response.model = f"{PROVIDER}/{name}"
    prompt_tokens = _estimate_tokens("".join(m["content"] for m in flat))
    completion_tokens = _estimate_tokens(content)
    usage = Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )
    setattr(response, "usage", usage)  # noqa: B010 - undeclared in ModelResponse's type
    return response


def _text_of(message: dict[str, Any]) -> str:
    # Content is a string, or (multimodal form) a list of parts of which only text counts here.
    content = message.get("content") or ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // CHARS_PER_TOKEN)
