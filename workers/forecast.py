"""`domain.ports.Forecaster` over LiteLLM: a request's calls counted with each model's
tokenizer (LiteLLM's `token_counter`, through `LiteLLMClient.count_tokens`), chunked and
prompted exactly as the pipeline does, and priced with the gateway's rates. LiteLLM is
imported on the first count, never when the API starts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from domain.documents import Segment
from domain.forecast import Pricing, cacheable_prefix
from domain.llm import ModelSpec
from domain.locations import SegmentIndex
from domain.prompt import SYSTEM_PROMPT
from domain.subjects import Subject

# Providers that cache a repeated prompt prefix on their own (OpenAI and the providers
# following it, Gemini's implicit caching); Anthropic's models cache only the prefix the
# gateway marks (`needs_cache_marker`).
_AUTOMATIC_CACHING = ("openai", "azure", "deepseek", "gemini", "xai")


class LiteLLMForecaster:
    def __init__(self, settings: Any) -> None:
        """`settings`: the process's settings, read at each count (chunk_max_tokens,
        chunk_overlap_tokens, batch_discount_map), as the pipeline reads them."""
        from workers.gateway import LiteLLMClient

        self.settings = settings
        self.client = LiteLLMClient(settings.batch_discount_map)

    def prompt_tokens(self, model: ModelSpec, max_tokens: int, *, content: str,
                      language: str, source_type: str, segments: Sequence[Segment] = (),
                      subject: Subject | None = None) -> list[int]:
        from workers.pipeline import chunk_messages, plan_chunks

        counts = []
        layout = SegmentIndex(content, segments) if segments else None
        for chunk in plan_chunks(content, model, max_tokens,
                                 chunk_max_tokens=self.settings.chunk_max_tokens,
                                 chunk_overlap_tokens=self.settings.chunk_overlap_tokens,
                                 layout=layout):
            messages = chunk_messages(chunk, language=language, source_type=source_type,
                                      layout=layout, subject=subject)
            # As Pipeline._call counts a prompt before reserving it.
            counts.append(self.client.count_tokens(
                model, "\n".join(m["content"] for m in messages)))
        return counts

    def pricing(self, model: ModelSpec, *, batch: bool) -> Pricing:
        from workers.gateway import batch_rates_for, needs_cache_marker, rates_for
        from workers.prices import LiteLLMPrices

        rates = rates_for(model)
        batch_rates = batch_rates_for(model, self.settings.batch_discount_map) if batch else None
        provider = LiteLLMPrices().provider_of(model.litellm_model)
        caches = provider in _AUTOMATIC_CACHING or needs_cache_marker(model)
        prefix = cacheable_prefix(self.client.count_tokens(model, SYSTEM_PROMPT)) if caches else 0
        return Pricing(rates, batch_rates, prefix)
