"""Provider keys go only where they belong: a model with a custom apiBase is sent its own key
(apiKeyEnv) or a placeholder, never a provider's default key; custom bases are allow-listed,
link-local and cloud metadata addresses always refused, redirects never followed. Real HTTP
through LiteLLM to loopback fake providers that record every header they receive.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from domain.errors import InvalidInput
from tests.support.fake_provider import FakeProvider, Scripted
from tests.support.graphql import GraphQLClient
from tests.support.processing import create_source, interview, start_one_batch, wait_batch

CANARY = "sk-canary-0123456789abcdefCANARY"
OWN_KEY = "own-key-of-the-local-model-42"

REGISTER = """mutation($input: RegisterModelInput!) { registerModel(input: $input) { __typename
  ... on RegisterModelPayload { model { name apiBase apiKeyEnv } }
  ... on ValidationError { message fieldErrors { field message } } } }"""

UPDATE = """mutation($input: UpdateModelInput!) { updateModel(input: $input) { __typename
  ... on UpdateModelPayload { model { name apiBase apiKeyEnv } }
  ... on ValidationError { message fieldErrors { field message } } } }"""

MODELS = "{ models { name litellmModel apiBase apiKeyEnv notes } }"


async def _register(gql: GraphQLClient, name: str, base: str, *, route: str = "openai/fake",
                    key_env: str | None = None) -> dict[str, Any]:
    payload = {"name": name, "litellmModel": route, "apiBase": base,
               "inputCostPerMillion": "1", "outputCostPerMillion": "2"}
    if key_env is not None:
        payload["apiKeyEnv"] = key_env
    return dict((await gql(REGISTER, {"input": payload}))["data"]["registerModel"])


def _header_values(provider: FakeProvider) -> str:
    return " ".join(value for request in provider.requests for value in request.headers.values())


async def _run(gql: GraphQLClient, tag: str, model: str) -> dict[str, Any]:
    source_id = await create_source(gql, tag, interview(tag, 8))
    return await wait_batch(gql, await start_one_batch(gql, source_id, model))


async def test_a_custom_base_never_receives_the_providers_default_key(
        engine_gql: GraphQLClient, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    gql = engine_gql
    # Given: the workers hold a real-looking OpenAI key
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    caplog.set_level(logging.DEBUG)
    assert (await _register(gql, "local-llm", provider.url))["__typename"] == \
        "RegisterModelPayload"
    # When: a model on a custom base runs
    state = await _run(gql, "CANARY", "local-llm")
    # Then: the base got the placeholder, never the canary
    assert state["status"] == "COMPLETED", state
    assert provider.requests
    assert all(r.headers.get("authorization") == "Bearer sk-local" for r in provider.requests)
    assert CANARY not in _header_values(provider)
    assert CANARY not in caplog.text
    assert CANARY not in str(await gql(MODELS))


async def test_a_custom_base_gets_the_key_its_model_names_and_nothing_else(
        engine_gql: GraphQLClient, provider: FakeProvider,
        monkeypatch: pytest.MonkeyPatch) -> None:
    gql = engine_gql
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    monkeypatch.setenv("LOCAL_LLM_API_KEY", OWN_KEY)
    registered = await _register(gql, "local-llm", provider.url, key_env="LOCAL_LLM_API_KEY")
    assert registered["model"]["apiKeyEnv"] == "LOCAL_LLM_API_KEY"
    state = await _run(gql, "OWNKEY", "local-llm")
    assert state["status"] == "COMPLETED", state
    assert all(r.headers.get("authorization") == f"Bearer {OWN_KEY}"
               for r in provider.requests)
    assert CANARY not in _header_values(provider)
    # The API shows the variable's name, never its value.
    models = str(await gql(MODELS))
    assert "LOCAL_LLM_API_KEY" in models and OWN_KEY not in models


async def test_a_named_key_missing_on_the_workers_fails_the_run_before_any_call(
        engine_gql: GraphQLClient, provider: FakeProvider,
        monkeypatch: pytest.MonkeyPatch) -> None:
    gql = engine_gql
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    monkeypatch.delenv("ABSENT_MODEL_API_KEY", raising=False)
    await _register(gql, "local-llm", provider.url, key_env="ABSENT_MODEL_API_KEY")
    state = await _run(gql, "NOKEY", "local-llm")
    assert state["status"] == "FAILED", state
    assert "the workers have no ABSENT_MODEL_API_KEY set" in state["runs"][0]["errorMessage"]
    assert provider.requests == []


async def test_a_redirect_is_not_followed_to_another_host(
        engine_gql: GraphQLClient, provider: FakeProvider,
        monkeypatch: pytest.MonkeyPatch) -> None:
    gql = engine_gql
    monkeypatch.setenv("LOCAL_LLM_API_KEY", OWN_KEY)
    with FakeProvider() as elsewhere:
        # Given: the base answers every call with a redirect to another server
        provider.set_default(lambda request: Scripted(
            fault="redirect", redirect_to=f"{elsewhere.url}/chat/completions"))
        await _register(gql, "local-llm", provider.url, key_env="LOCAL_LLM_API_KEY")
        state = await _run(gql, "REDIRECT", "local-llm")
        # Then: the other server never heard of us; the run says why it failed
        assert elsewhere.requests == []
        assert state["status"] == "FAILED", state
        assert "redirects are not followed" in state["runs"][0]["errorMessage"]
        assert len(provider.requests) == 1  # deterministic: not retried


@pytest.mark.parametrize(("base", "says"), [
    ("http://169.254.169.254/latest/meta-data", "cloud metadata"),
    ("http://[fe80::1]:8000/v1", "cloud metadata"),
    ("http://[::ffff:169.254.169.254]/v1", "cloud metadata"),
    ("http://metadata.google.internal/computeMetadata/v1", "cloud metadata"),
    ("http://100.100.100.200/latest", "cloud metadata"),
    ("http://user:secret@127.0.0.1:9/v1", "credentials"),
    ("http://203.0.113.7:8000/v1", "not in MMOS_ALLOWED_API_BASES"),
    ("https://llm.example.com/v1", "not in MMOS_ALLOWED_API_BASES"),
])
async def test_bases_off_the_allow_list_or_at_metadata_addresses_are_refused(
        gql: GraphQLClient, base: str, says: str) -> None:
    payload = await _register(gql, "bad-base", base)
    assert payload["__typename"] == "ValidationError", payload
    [issue] = payload["fieldErrors"]
    assert issue["field"] == "input.apiBase" and says in issue["message"], issue
    assert "bad-base" not in str(await gql(MODELS))


async def test_the_allow_list_is_configurable_and_metadata_stays_refused(
        gql: GraphQLClient, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "allowed_api_bases", "*.example.com, 169.254.0.0/16")
    allowed = await _register(gql, "hosted", "https://llm.example.com/v1")
    assert allowed["__typename"] == "RegisterModelPayload", allowed
    refused = await _register(gql, "meta", "http://169.254.169.254/v1")
    assert refused["__typename"] == "ValidationError"
    assert "cloud metadata" in refused["fieldErrors"][0]["message"]
    local = await _register(gql, "local", "http://127.0.0.1:9/v1")
    assert local["__typename"] == "ValidationError"  # loopback is no longer on the list


async def test_in_production_custom_bases_are_off_unless_allowed() -> None:
    from api.settings import Settings
    from domain.services import catalog
    from tests.support.fakes import make_ports

    production = Settings(env="production", _env_file=None)  # type: ignore[call-arg]
    assert production.api_base_allow_list == ()
    ports = make_ports(api_base_allow_list=production.api_base_allow_list)
    with pytest.raises(InvalidInput) as refused:
        await catalog.register_model(ports, {"name": "local", "litellm_model": "openai/x",
                                             "api_base": "http://127.0.0.1:9/v1"})
    assert "custom API bases are off" in refused.value.issues[0].message
    allowed = Settings(env="production", allowed_api_bases="10.1.2.0/24",
                       _env_file=None)  # type: ignore[call-arg]
    ports = make_ports(api_base_allow_list=allowed.api_base_allow_list)
    row = await catalog.register_model(ports, {"name": "vllm", "litellm_model": "openai/x",
                                               "api_base": "http://10.1.2.3:8000/v1"})
    assert row.api_base == "http://10.1.2.3:8000/v1"


def test_a_malformed_allow_list_is_refused_at_start() -> None:
    from pydantic import ValidationError

    from api.settings import Settings

    with pytest.raises(ValidationError, match="MMOS_ALLOWED_API_BASES"):
        Settings(allowed_api_bases="10.0.0.0/8, not a host!", _env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize(("key_env", "says"), [
    ("OPENAI_API_KEY", "provider's default key"),
    ("ANTHROPIC_API_KEY", "provider's default key"),
    ("MMOS_DATABASE_KEY", "setting of MMOS"),
    ("POSTGRES_PASSWORD", "ending in _KEY or _TOKEN"),
    ("lower_case_key", "capitals"),
])
async def test_a_model_cannot_name_a_default_key_or_another_secret(
        gql: GraphQLClient, key_env: str, says: str) -> None:
    payload = await _register(gql, "local", "http://127.0.0.1:9/v1", key_env=key_env)
    assert payload["__typename"] == "ValidationError", payload
    [issue] = payload["fieldErrors"]
    assert issue["field"] == "input.apiKeyEnv" and says in issue["message"], issue


async def test_an_update_is_checked_like_a_registration(gql: GraphQLClient) -> None:
    assert (await _register(gql, "local", "http://127.0.0.1:9/v1"))["__typename"] == \
        "RegisterModelPayload"
    moved = (await gql(UPDATE, {"input": {"name": "local",
                                          "apiBase": "http://169.254.169.254/"}}))
    payload = moved["data"]["updateModel"]
    assert payload["__typename"] == "ValidationError"
    assert payload["fieldErrors"][0]["field"] == "input.apiBase"
    other_route = (await gql(UPDATE, {"input": {"name": "local",
                                                "litellmModel": "anthropic/claude-3-haiku"}}))
    assert other_route["data"]["updateModel"]["fieldErrors"][0]["field"] == "input.litellmModel"
    assert "http://127.0.0.1:9/v1" in str(await gql(MODELS))


async def test_a_custom_base_must_use_the_openai_compatible_route(gql: GraphQLClient) -> None:
    payload = await _register(gql, "claude-local", "http://127.0.0.1:9/v1",
                              route="anthropic/claude-3-haiku-20240307")
    assert payload["__typename"] == "ValidationError"
    [issue] = payload["fieldErrors"]
    assert issue["field"] == "input.litellmModel" and "openai/<name>" in issue["message"]
