"""Which models can use a provider batch API, and how chunks are named inside a submission."""

from __future__ import annotations

import pytest

from domain.batching import (
    BatchLine,
    BatchState,
    batch_provider,
    chunk_of,
    custom_id,
    provider_of,
    served_name,
)


@pytest.mark.parametrize(("model", "provider", "batch"), [
    ("gpt-4o-mini", "openai", "openai"),
    ("o3-mini", "openai", "openai"),
    ("openai/llama3.1", "openai", "openai"),
    ("azure/gpt-4o", "azure", "azure"),
    ("vertex_ai/gemini-2.5-flash", "vertex_ai", "vertex_ai"),
    ("bedrock/anthropic.claude-3", "bedrock", "bedrock"),
    ("anthropic/claude-haiku-4-5", "anthropic", None),
    ("gemini/gemini-2.5-flash", "gemini", None),
    ("mmos/rules-fast", "mmos", None),
    ("claude-3-haiku", None, None),
])
def test_the_batch_provider_of_a_model(model: str, provider: str | None,
                                       batch: str | None) -> None:
    assert provider_of(model) == provider
    assert batch_provider(model) == batch


def test_lines_carry_the_served_model_name() -> None:
    assert served_name("openai/fake-batched") == "fake-batched"
    assert served_name("gpt-4o-mini") == "gpt-4o-mini"
    assert served_name("azure/my-deployment") == "my-deployment"


def test_chunk_ids_round_trip_and_foreign_ids_are_ignored() -> None:
    assert [chunk_of(custom_id(i)) for i in (0, 7, 123456)] == [0, 7, 123456]
    assert chunk_of("request-1") is None and chunk_of("chunk-") is None
    assert chunk_of("chunk-1x") is None
    with pytest.raises(ValueError):
        custom_id(-1)


def test_batch_states_and_lines() -> None:
    assert BatchState("in_progress").in_flight and not BatchState("in_progress").ended
    for status in ("completed", "expired", "failed", "cancelled"):
        assert BatchState(status).ended and not BatchState(status).in_flight
    assert BatchLine(1, 200, {"choices": []}).ok
    assert not BatchLine(1, 500, {"error": {}}).ok
    assert not BatchLine(1, 200, None).ok
    assert not BatchLine(1, 200, {"choices": []}, error="expired").ok
