"""Prompt caching through the gateway against the loopback fake: cached and cache-write tokens
recorded and priced at their own rates, to 8 decimals, as LiteLLM's completion_cost prices
them; the Anthropic `cache_control` marker sent where it is needed and nowhere else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from domain.llm import ModelRequest, ModelSpec
from domain.pricing import money
from domain.prompt import SYSTEM_PROMPT, build_messages
from tests.support.fake_provider import FakeProvider, Scripted, answer_json
from workers.gateway import LiteLLMClient, batch_rates_for, needs_cache_marker, rates_for

SOURCE = "I grew up in Porto. My father fixed boats.\nBut I hated the sea."
MINI = "openai/gpt-4o-mini"
HAIKU = "anthropic/claude-haiku-4-5"
D = Decimal


@pytest.fixture
async def client() -> AsyncIterator[LiteLLMClient]:
    gateway = LiteLLMClient()
    yield gateway
    await gateway.aclose()


def _spec(model: str, base: str) -> ModelSpec:
    return ModelSpec(name=model, litellm_model=model, api_base=base)


def _anthropic_base(provider: FakeProvider) -> str:
    return provider.url.removesuffix("/v1")  # LiteLLM calls {api_base}/v1/messages


def _request(spec: ModelSpec, messages: list[dict[str, str]] | None = None) -> ModelRequest:
    return ModelRequest(model=spec, max_tokens=800,
                        messages=messages or build_messages(SOURCE, language="en",
                                                            source_type="interview"))


async def _litellm_cost(model: str, base: str, **extra: Any) -> Decimal:
    """LiteLLM's own completion_cost of the same scripted answer, called directly."""
    import litellm

    response = await litellm.acompletion(model=model, api_base=base, api_key="sk-fake",
                                         num_retries=0, max_retries=0, max_tokens=800,
                                         messages=[{"role": "user", "content": "hi"}], **extra)
    return money(Decimal(repr(litellm.completion_cost(completion_response=response))))


async def test_openai_cached_tokens_cost_the_formula_and_litellms_price(
        provider: FakeProvider, client: LiteLLMClient) -> None:
    scripted = Scripted(content='{"fragments": []}', prompt_tokens=2000, completion_tokens=300,
                        cached_tokens=1792)
    provider.script("gpt-4o-mini", scripted, scripted)

    response = await client.complete(_request(_spec(MINI, provider.url)))

    assert (response.input_tokens, response.cached_input_tokens, response.output_tokens,
            response.cache_write_tokens) == (2000, 1792, 300, 0)
    # 208 uncached × $0.15/M + 1792 cached × $0.075/M + 300 out × $0.60/M
    assert response.cost_usd == D("0.00034560")
    assert response.list_cost_usd == D("0.00048000")  # 2000 × 0.15 + 300 × 0.60
    assert response.cache_saved_usd == D("0.00013440")
    assert response.batch_saved_usd == 0
    assert response.cost_usd == await _litellm_cost(MINI, provider.url)


async def test_anthropic_cache_writes_and_reads_cost_the_formula_and_litellms_price(
        provider: FakeProvider, client: LiteLLMClient) -> None:
    base = _anthropic_base(provider)
    spec = _spec(HAIKU, base)
    system = SYSTEM_PROMPT * 5  # ≥ 1,024 estimated tokens: the fake caches it
    messages = [{"role": "system", "content": system},
                {"role": "user", "content": build_messages(
                    SOURCE, language="en", source_type="interview")[1]["content"]}]
    content = answer_json([])
    provider.script("claude-haiku-4-5", Scripted(content=content, completion_tokens=50),
                    Scripted(content=content, completion_tokens=50))

    first = await client.complete(_request(spec, messages))
    second = await client.complete(_request(spec, messages))

    prefix = len(system) // 4
    total = sum(len(m["content"]) for m in messages) // 4 + 1
    assert (first.input_tokens, first.cache_write_tokens, first.cached_input_tokens) == (
        total, prefix, 0)
    assert (second.input_tokens, second.cache_write_tokens, second.cached_input_tokens) == (
        total, 0, prefix)
    uncached = total - prefix
    # uncached × $1/M + writes × $1.25/M (reads × $0.10/M) + 50 out × $5/M
    assert first.cost_usd == money((D(uncached) + D(prefix) * D("1.25") + 250) / 10**6)
    assert second.cost_usd == money((D(uncached) + D(prefix) * D("0.1") + 250) / 10**6)
    for response in (first, second):
        assert response.list_cost_usd == money((D(total) + 250) / 10**6)
        assert response.cost_usd == (response.list_cost_usd - response.cache_saved_usd
                                     - response.batch_saved_usd)
    assert first.cache_saved_usd < 0 < second.cache_saved_usd  # a write costs 1.25× input

    sent = provider.requests_for("claude-haiku-4-5")
    assert [r.body["system"][0]["cache_control"] for r in sent] == [{"type": "ephemeral"}] * 2
    assert sent[0].body["system"][0]["text"] == system

    # LiteLLM prices the same usage the same way.
    provider.script("claude-haiku-4-5", Scripted(
        content=content, prompt_tokens=total, completion_tokens=50, cache_write_tokens=prefix),
        Scripted(content=content, prompt_tokens=total, completion_tokens=50,
                 cached_tokens=prefix))
    assert first.cost_usd == await _litellm_cost(HAIKU, base)
    assert second.cost_usd == await _litellm_cost(HAIKU, base)


async def test_openai_style_models_never_get_a_cache_marker(
        provider: FakeProvider, client: LiteLLMClient) -> None:
    provider.script("gpt-4o-mini", Scripted(content='{"fragments": []}'))
    await client.complete(_request(_spec(MINI, provider.url)))

    (sent,) = provider.requests_for("gpt-4o-mini")
    assert sent.messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert "cache_control" not in repr(sent.body)
    assert not needs_cache_marker(ModelSpec(name="g", litellm_model="gemini/gemini-2.5-flash"))
    assert needs_cache_marker(ModelSpec(name="c", litellm_model=HAIKU))


async def test_the_fake_caches_repeated_prefixes_deterministically_when_asked(
        provider: FakeProvider, client: LiteLLMClient) -> None:
    spec = _spec(MINI, provider.url)
    long = [{"role": "system", "content": SYSTEM_PROMPT * 5},
            {"role": "user", "content": "Source: <source_text>\nA.\n</source_text>"}]
    short = build_messages(SOURCE, language="en", source_type="interview")

    before = await client.complete(_request(spec, long))
    again = await client.complete(_request(spec, long))
    assert (before.cached_input_tokens, again.cached_input_tokens) == (0, 0)  # off: as before

    provider.prompt_cache.enable()
    first = await client.complete(_request(spec, long))
    repeat = await client.complete(_request(spec, long))
    await client.complete(_request(spec, short))
    short_repeat = await client.complete(_request(spec, short))

    prefix = len(SYSTEM_PROMPT * 5) // 4
    assert first.cached_input_tokens == 0
    assert repeat.cached_input_tokens == prefix // 128 * 128
    assert repeat.input_tokens == first.input_tokens
    assert short_repeat.cached_input_tokens == 0  # under 1,024 tokens: never cached
    # 0.15/M for the uncached rest, 0.075/M for the cached block, 0.60/M out
    uncached = repeat.input_tokens - repeat.cached_input_tokens
    assert repeat.cost_usd == money((D(uncached) * D("0.15") + D(repeat.cached_input_tokens)
                                     * D("0.075") + D(repeat.output_tokens) * D("0.6")) / 10**6)


def test_model_rates_and_batch_rates_from_the_map() -> None:
    mini = rates_for(ModelSpec(name="m", litellm_model=MINI))
    assert mini is not None
    assert (mini.input, mini.output, mini.read, mini.write) == (D("0.15"), D("0.6"),
                                                                D("0.075"), D("0.15"))
    discounts = {"openai": D("0.5"), "anthropic": D("0.5")}
    batch = batch_rates_for(ModelSpec(name="h", litellm_model=HAIKU), discounts)
    assert batch is not None
    assert (batch.input, batch.output, batch.read, batch.write) == (
        D("0.5"), D("2.5"), D("0.05"), D("0.625"))
    overridden = ModelSpec(name="x", litellm_model="openai/my-llama", api_base="http://x/v1",
                           input_cost_per_million=D("2"), output_cost_per_million=D("8"),
                           cache_read_cost_per_million=D("0.5"), batch_discount=D("0.25"))
    rates = rates_for(overridden)
    assert rates is not None and (rates.read, rates.write) == (D("0.5"), D("2"))
    assert batch_rates_for(overridden, discounts) == type(rates)(D("1.50"), D("6.00"),
                                                                 D("0.375"), D("1.50"))
    assert batch_rates_for(ModelSpec(name="y", litellm_model="openai/my-llama",
                                     input_cost_per_million=D("2"),
                                     output_cost_per_million=D("8")), {}) is None
