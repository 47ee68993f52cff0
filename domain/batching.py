"""Provider batch APIs as the domain sees them: which models can use one, how chunks are named
inside a submission, and what a provider batch's state means (docs/ARCHITECTURE.md, "Batch
mode").

A run in BATCH mode submits its chunks (the ones not stored yet) as one provider batch, waits for
it, stores every result that came back at the batch price, and submits again exactly the chunks
that did not come back (failed lines, expiry). A chunk stored once is never submitted again,
and a result is settled at most once, so nothing is paid twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# LiteLLM's batch functions (create_file, create_batch, retrieve_batch, file_content) cover
# these providers with OpenAI's batch format; others (Anthropic's Message Batches, Gemini) are
# refused with a clear error rather than half supported.
BATCH_PROVIDERS = frozenset({"openai", "azure", "vertex_ai", "bedrock", "hosted_vllm",
                             "mistral", "xai"})

# Provider batch states (OpenAI's names; LiteLLM maps the other providers onto them).
IN_FLIGHT = frozenset({"validating", "in_progress", "finalizing", "cancelling"})
ENDED = frozenset({"completed", "expired", "failed", "cancelled"})

COMPLETION_WINDOW = "24h"
WINDOW_SECONDS = 24 * 3600

_PREFIX = re.compile(r"^([a-z0-9_]+)/")
_OPENAI_NAME = re.compile(r"^(gpt-|o\d|chatgpt-|ft:gpt-)")
_CUSTOM_ID = re.compile(r"^chunk-(\d{1,9})$")


def provider_of(litellm_model: str) -> str | None:
    """The LiteLLM provider of a model string: its routing prefix ("azure/gpt-4o" -> azure), or
    openai for OpenAI's bare model names; None when it cannot be told."""
    found = _PREFIX.match(litellm_model)
    if found:
        return found.group(1)
    return "openai" if _OPENAI_NAME.match(litellm_model) else None


def batch_provider(litellm_model: str) -> str | None:
    """The provider whose batch API the model's runs would use; None when it has none MMOS
    can drive."""
    provider = provider_of(litellm_model)
    return provider if provider in BATCH_PROVIDERS else None


def served_name(litellm_model: str) -> str:
    """The model name inside a batch line (without LiteLLM's routing prefix)."""
    provider = provider_of(litellm_model)
    if provider and litellm_model.startswith(provider + "/"):
        return litellm_model[len(provider) + 1:]
    return litellm_model


def custom_id(chunk_index: int) -> str:
    """The id of a chunk's line in a submission."""
    if chunk_index < 0:
        raise ValueError("a chunk index is never negative")
    return f"chunk-{chunk_index}"


def chunk_of(line_id: str) -> int | None:
    """The chunk a result line answers; None for a line MMOS did not write."""
    found = _CUSTOM_ID.match(line_id)
    return int(found.group(1)) if found else None


@dataclass(frozen=True, slots=True)
class BatchState:
    """What the provider says of a batch."""

    status: str
    output_file_id: str | None = None
    error_file_id: str | None = None

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    @property
    def in_flight(self) -> bool:
        return self.status in IN_FLIGHT or self.status not in ENDED


@dataclass(frozen=True, slots=True)
class BatchLine:
    """One result line: the chunk it answers, and the chat completion body or the error."""

    chunk_index: int
    status_code: int
    body: dict[str, object] | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code == 200 and self.body is not None and self.error is None
