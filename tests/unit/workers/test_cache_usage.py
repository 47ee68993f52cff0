"""Cached-token usage as LiteLLM normalises each provider's answer, read by the gateway: every
provider's own usage shape goes through LiteLLM's own transformation, not a hand-made copy."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from workers.gateway import cache_usage_of


def test_gemini_cached_content_is_read_as_cache_reads() -> None:
    from litellm.llms.vertex_ai.gemini.vertex_and_google_ai_studio_gemini import (
        VertexGeminiConfig,
    )

    usage = VertexGeminiConfig._calculate_usage({"usageMetadata": {
        "promptTokenCount": 2000, "candidatesTokenCount": 100, "totalTokenCount": 2100,
        "cachedContentTokenCount": 1500}})
    assert usage.prompt_tokens == 2000  # Gemini's prompt count includes the cached content
    assert cache_usage_of(usage) == (1500, 0)


def test_gemini_without_a_cache_reads_nothing() -> None:
    from litellm.llms.vertex_ai.gemini.vertex_and_google_ai_studio_gemini import (
        VertexGeminiConfig,
    )

    usage = VertexGeminiConfig._calculate_usage({"usageMetadata": {
        "promptTokenCount": 800, "candidatesTokenCount": 50, "totalTokenCount": 850}})
    assert cache_usage_of(usage) == (0, 0)


def test_openai_cached_tokens_are_read_as_cache_reads() -> None:
    from litellm.types.utils import Usage

    usage = Usage(prompt_tokens=2000, completion_tokens=10, total_tokens=2010,
                  prompt_tokens_details={"cached_tokens": 1792})
    assert cache_usage_of(usage) == (1792, 0)
