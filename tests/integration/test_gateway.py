"""The LiteLLM gateway against the loopback fake provider: real HTTP, no patched SDK."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime

import pytest

from domain.llm import (
    DeterministicModelError,
    ModelRequest,
    ModelSpec,
    TransientModelError,
)
from domain.parsing import FRAGMENTS_JSON_SCHEMA, AnswerFormatError, parse_answer
from domain.prompt import build_messages
from tests.support.fake_provider import (
    FakeProvider,
    Scripted,
    answer_json,
    fragment_for,
    half_responder,
    inventing_responder,
)
from workers.gateway import LiteLLMClient, map_error, retry_after_of

SOURCE = (
    "I grew up in Porto. My father fixed boats, and I watched him for hours.\nBut I hated the sea."
)
BUNDLED = "openai/gpt-4o-mini"
SERVED = "gpt-4o-mini"


# `provider` (the session's fake provider, reset for each test) is in tests/conftest.py.


@pytest.fixture
async def client() -> AsyncIterator[LiteLLMClient]:
    gateway = LiteLLMClient()
    yield gateway
    await gateway.aclose()  # the custom bases' connections


def spec(
    provider: FakeProvider,
    model: str = BUNDLED,
    *,
    input_cost_per_million: Decimal | None = None,
    output_cost_per_million: Decimal | None = None,
) -> ModelSpec:
    return ModelSpec(
        name=model,
        litellm_model=model,
        api_base=provider.url,
        input_cost_per_million=input_cost_per_million,
        output_cost_per_million=output_cost_per_million,
    )


def request_for(model: ModelSpec, **options: object) -> ModelRequest:
    messages = build_messages(SOURCE, language="en", source_type="interview")
    return ModelRequest(model=model, messages=messages, max_tokens=800, **options)  # type: ignore[arg-type]


def bundled_cost(input_tokens: int, output_tokens: int) -> Decimal:
    import litellm  # already imported by the gateway, with the local price map

    entry = litellm.model_cost[SERVED]
    return Decimal(input_tokens) * Decimal(str(entry["input_cost_per_token"])) + Decimal(
        output_tokens
    ) * Decimal(str(entry["output_cost_per_token"]))


# -- success ---------------------------------------------------------------------------------------


async def test_answer_carries_usage_and_the_exact_bundled_price(
    provider: FakeProvider, client: LiteLLMClient
) -> None:
    provider.script(
        SERVED, Scripted(content='{"fragments": []}', prompt_tokens=1234, completion_tokens=567)
    )

    response = await client.complete(request_for(spec(provider)))

    assert response.content == '{"fragments": []}'
    assert (response.input_tokens, response.output_tokens) == (1234, 567)
    assert response.cost_usd == bundled_cost(1234, 567)
    assert response.cost_usd == Decimal("0.0005253")  # 1234 × $0.15/M + 567 × $0.60/M
    assert response.finish_reason == "stop"
    assert response.latency_ms >= 0
    assert response.extra["priced"] is True


async def test_catalog_price_override_wins_over_the_bundled_map(
    provider: FakeProvider, client: LiteLLMClient
) -> None:
    provider.script(SERVED, Scripted(content="{}", prompt_tokens=1000, completion_tokens=500))
    model = spec(
        provider,
        input_cost_per_million=Decimal("2.50"),
        output_cost_per_million=Decimal("10.00"),
    )

    response = await client.complete(request_for(model))

    assert response.cost_usd == Decimal("0.0075")


async def test_unpriced_model_costs_nothing_and_says_so(
    provider: FakeProvider, client: LiteLLMClient
) -> None:
    provider.script("my-local-llama", Scripted(content="{}", prompt_tokens=10, completion_tokens=5))

    response = await client.complete(request_for(spec(provider, "openai/my-local-llama")))

    assert response.cost_usd == Decimal(0)
    assert response.extra["priced"] is False


async def test_provider_receives_one_request_with_the_call_parameters(
    provider: FakeProvider, client: LiteLLMClient
) -> None:
    request = request_for(spec(provider), temperature=0.2)

    await client.complete(request)

    [seen] = provider.requests
    assert seen.model == SERVED
    assert seen.max_tokens == 800
    assert seen.temperature == 0.2
    assert seen.response_format == {"type": "json_object"}
    assert seen.messages == request.messages


async def test_structured_output_sends_the_schema_when_the_model_supports_it(
    provider: FakeProvider, client: LiteLLMClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No api_base on the spec: LiteLLM reaches the fake through the standard OpenAI variables.
    monkeypatch.setenv("OPENAI_BASE_URL", provider.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-env")
    model = ModelSpec(name=BUNDLED, litellm_model=BUNDLED)

    await client.complete(request_for(model, json_schema=FRAGMENTS_JSON_SCHEMA))

    [seen] = provider.requests
    assert seen.response_format is not None
    assert seen.response_format["type"] == "json_schema"
    assert seen.response_format["json_schema"]["schema"] == FRAGMENTS_JSON_SCHEMA


async def test_fenced_json_answer_parses(provider: FakeProvider, client: LiteLLMClient) -> None:
    body = answer_json([fragment_for("I grew up in Porto.", 0)])
    provider.script(SERVED, Scripted(content=f"Here you go:\n```json\n{body}\n```\nDone."))

    response = await client.complete(request_for(spec(provider)))

    assert parse_answer(response.content).fragments[0].quote == "I grew up in Porto."


async def test_truncated_answer_surfaces_finish_reason_length(
    provider: FakeProvider, client: LiteLLMClient
) -> None:
    provider.script(
        SERVED, Scripted(content='{"fragments": [{"content": "I gr', finish_reason="length")
    )

    response = await client.complete(request_for(spec(provider)))

    assert response.finish_reason == "length"
    with pytest.raises(AnswerFormatError):
        parse_answer(response.content)


async def test_empty_content_is_returned_for_the_parser_to_judge(
    provider: FakeProvider, client: LiteLLMClient
) -> None:
    provider.script(SERVED, Scripted(fault="empty"))

    response = await client.complete(request_for(spec(provider)))

    assert response.content == ""
    assert response.finish_reason == "stop"


# -- failures --------------------------------------------------------------------------------------


async def test_rate_limit_is_transient_with_retry_after_and_no_sdk_retry(
    provider: FakeProvider, client: LiteLLMClient
) -> None:
    provider.script(SERVED, Scripted(fault="429", retry_after="7"))

    with pytest.raises(TransientModelError) as caught:
        await client.complete(request_for(spec(provider)))

    assert caught.value.retry_after_s == 7.0
    assert len(provider.requests) == 1


async def test_rate_limit_retry_after_as_http_date_becomes_seconds(
    provider: FakeProvider, client: LiteLLMClient
) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    provider.script(SERVED, Scripted(fault="429", retry_after=when))

    with pytest.raises(TransientModelError) as caught:
        await client.complete(request_for(spec(provider)))

    assert caught.value.retry_after_s is not None
    assert 25 <= caught.value.retry_after_s <= 30


async def test_server_error_is_transient_and_not_retried_by_the_sdk(
    provider: FakeProvider, client: LiteLLMClient
) -> None:
    provider.script(SERVED, Scripted(fault="500"))

    with pytest.raises(TransientModelError, match="500"):
        await client.complete(request_for(spec(provider)))

    assert len(provider.requests) == 1


async def test_timeout_is_transient(provider: FakeProvider, client: LiteLLMClient) -> None:
    provider.script(SERVED, Scripted(fault="timeout"))
    started = time.perf_counter()

    with pytest.raises(TransientModelError) as caught:
        await client.complete(request_for(spec(provider), timeout_s=0.5))

    assert time.perf_counter() - started < 5
    assert caught.value.retry_after_s is None
    assert len(provider.requests) == 1


async def test_malformed_http_body_is_transient(
    provider: FakeProvider, client: LiteLLMClient
) -> None:
    provider.script(SERVED, Scripted(fault="malformed"))

    with pytest.raises(TransientModelError):
        await client.complete(request_for(spec(provider)))


async def test_bad_request_is_deterministic_with_a_clear_message(
    provider: FakeProvider, client: LiteLLMClient
) -> None:
    provider.script(SERVED, Scripted(fault="400"))

    with pytest.raises(DeterministicModelError) as caught:
        await client.complete(request_for(spec(provider)))

    assert caught.value.message.startswith(f"{BUNDLED}: BadRequestError 400: ")
    assert "Invalid value for 'messages'" in caught.value.message
    assert "sk-" not in caught.value.message
    assert caught.value.__cause__ is None


async def test_unreachable_server_is_transient(client: LiteLLMClient) -> None:
    model = ModelSpec(name="gone", litellm_model="openai/gone", api_base="http://127.0.0.1:9/v1")

    with pytest.raises(TransientModelError):
        await client.complete(request_for(model, timeout_s=2))


def test_error_messages_never_carry_keys() -> None:
    import litellm

    leaked = litellm.AuthenticationError(
        message="Incorrect API key provided: sk-proj-abcdef123456. Header Bearer sk-zz99",
        llm_provider="openai",
        model="gpt-4o-mini",
    )

    mapped = map_error(leaked, "gpt-4o-mini", secrets=("sk-proj-abcdef123456",))

    assert isinstance(mapped, DeterministicModelError)
    assert "abcdef" not in mapped.message
    assert "zz99" not in mapped.message
    assert "Incorrect API key provided" in mapped.message


def test_retry_after_in_milliseconds_is_read() -> None:
    throttled = Exception("throttled")
    throttled.litellm_response_headers = {"Retry-After-Ms": "1500"}  # type: ignore[attr-defined]

    assert retry_after_of(throttled) == 1.5


# -- pricing, limits, tokens -------------------------------------------------------------------


def test_worst_case_cost_prices_prompt_and_full_max_tokens(client: LiteLLMClient) -> None:
    model = ModelSpec(
        name="m",
        litellm_model="openai/local",
        input_cost_per_million=Decimal("1"),
        output_cost_per_million=Decimal("3"),
    )
    request = ModelRequest(model=model, messages=[], max_tokens=1000)

    assert client.worst_case_cost(request, prompt_tokens=2000) == Decimal("0.005")


def test_worst_case_cost_is_unknown_for_an_unpriced_model(client: LiteLLMClient) -> None:
    request = ModelRequest(
        model=ModelSpec(name="m", litellm_model="openai/local"), messages=[], max_tokens=1000
    )

    assert client.worst_case_cost(request, prompt_tokens=2000) is None


def test_tokens_are_counted_with_the_tokenizer_for_known_models(client: LiteLLMClient) -> None:
    text = "Saudade é uma palavra difícil de traduzir. " * 20
    known = client.count_tokens(ModelSpec(name="m", litellm_model=BUNDLED), text)
    unknown = client.count_tokens(ModelSpec(name="m", litellm_model="openai/local"), text)

    assert unknown == len(text) // 4 + 1
    assert 0 < known != unknown


# -- the fake provider itself ----------------------------------------------------------------------


async def test_default_answer_quotes_each_source_sentence_verbatim(
    provider: FakeProvider, client: LiteLLMClient
) -> None:
    response = await client.complete(request_for(spec(provider, "openai/any-model")))

    quotes = [f.quote for f in parse_answer(response.content).fragments]
    assert quotes == [
        "I grew up in Porto.",
        "My father fixed boats, and I watched him for hours.",
        "But I hated the sea.",
    ]
    assert all(quote in SOURCE for quote in quotes)


async def test_inventing_and_half_responders_change_the_answer(
    provider: FakeProvider, client: LiteLLMClient
) -> None:
    provider.set_default(inventing_responder("I was born on Mars."))
    invented = await client.complete(request_for(spec(provider, "openai/liar")))
    provider.set_default(half_responder)
    half = await client.complete(request_for(spec(provider, "openai/lazy")))

    invented_quotes = [f.quote for f in parse_answer(invented.content).fragments]
    assert invented_quotes[-1] == "I was born on Mars."
    assert len(invented_quotes) == 4
    assert [f.quote for f in parse_answer(half.content).fragments] == [
        "I grew up in Porto.",
        "But I hated the sea.",
    ]


async def test_many_concurrent_calls_are_served_in_parallel(
    provider: FakeProvider, client: LiteLLMClient
) -> None:
    provider.script("*", *[Scripted(content="{}", latency=0.3) for _ in range(25)])
    started = time.perf_counter()

    responses = await asyncio.gather(
        *(client.complete(request_for(spec(provider, f"openai/m{i}"))) for i in range(25))
    )

    assert [r.content for r in responses] == ["{}"] * 25
    assert len(provider.requests) == 25
    assert time.perf_counter() - started < 0.3 * 25 / 3


def test_models_endpoint_lists_scripted_models(provider: FakeProvider) -> None:
    import httpx

    provider.script("openai/qwen-local", Scripted(content="{}"))

    listing = httpx.get(f"{provider.url}/models").json()

    assert {m["id"] for m in listing["data"]} >= {"qwen-local", "fake-model"}
