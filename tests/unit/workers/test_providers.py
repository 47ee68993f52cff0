"""What a worker reports it can call (workers/providers.py), held to LiteLLM's own
`validate_environment`, and the gateway's refusal of a call whose provider key is missing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.chunking import estimate_tokens
from domain.llm import ModelRequest, ModelSpec
from domain.preflight import (
    ALIVE_SECONDS,
    HEARTBEAT_SECONDS,
    MIN_CHUNK_TOKENS,
    PROMPT_OVERHEAD_TOKENS,
)
from workers import pipeline
from workers.gateway import LiteLLMClient, MissingModelKey
from workers.litellm_loader import load_litellm
from workers.providers import (
    KEYED_PROVIDERS,
    missing_provider_key,
    model_key_envs,
    worker_reach,
)

OPENAI_NAMES = ("OPENAI_API_KEY",)


@pytest.fixture
def no_openai_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.mark.parametrize("provider", KEYED_PROVIDERS)
def test_litellm_names_the_keys_of_every_provider_reported(provider: str) -> None:
    found = load_litellm().validate_environment(model=f"{provider}/mmos-probe")
    assert found["keys_in_environment"] or found["missing_keys"]


def test_a_worker_without_openai_s_key_reports_it_missing(no_openai_key: None) -> None:
    reach = worker_reach("w")
    assert "openai" not in reach.providers
    assert reach.missing["openai"] == OPENAI_NAMES
    assert reach.reported


def test_a_worker_with_openai_s_key_reports_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake")
    reach = worker_reach("w")
    assert "openai" in reach.providers and "openai" not in reach.missing


def test_an_empty_key_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    # What a compose file's `OPENAI_API_KEY=` gives; LiteLLM alone would call it present.
    monkeypatch.setenv("OPENAI_API_KEY", "")
    reach = worker_reach("w")
    assert "openai" not in reach.providers
    assert reach.missing["openai"] == ("OPENAI_API_KEY (empty)",)


def test_providers_whose_sdk_finds_credentials_alone_are_not_reported() -> None:
    for provider in ("bedrock", "sagemaker", "vertex_ai", "ollama", "mmos"):
        assert provider not in KEYED_PROVIDERS


def test_model_key_variables_are_those_an_apikeyenv_may_name() -> None:
    environ = {"LOCAL_LLAMA_API_KEY": "k", "TEAM_TOKEN": "t", "EMPTY_API_KEY": " ",
               "OPENAI_API_KEY": "sk", "MMOS_SECRET_KEY": "x", "PATH": "/bin",
               "lower_api_key": "x"}
    assert model_key_envs(environ) == {"LOCAL_LLAMA_API_KEY", "TEAM_TOKEN"}
    reach = worker_reach("w", environ)
    assert reach.key_envs == {"LOCAL_LLAMA_API_KEY", "TEAM_TOKEN"}


def test_missing_provider_key_of_a_model(no_openai_key: None,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert missing_provider_key("gpt-4o-mini") == OPENAI_NAMES
    assert missing_provider_key("openai/gpt-4o-mini") == OPENAI_NAMES
    assert missing_provider_key("mmos/rules-fast") == ()
    assert missing_provider_key("hosted_vllm/llama") == ()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake")
    assert missing_provider_key("openai/gpt-4o-mini") == ()


def request_for(spec: ModelSpec) -> ModelRequest:
    return ModelRequest(model=spec, messages=[{"role": "user", "content": "x"}], max_tokens=10)


async def test_the_gateway_refuses_a_call_without_the_provider_key_before_sending(
        no_openai_key: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # Deterministic (the run fails at once), not LiteLLM's transient-looking error.
    spec = ModelSpec(name="mini", litellm_model="openai/gpt-4o-mini",
                     input_cost_per_million=Decimal("0.15"),
                     output_cost_per_million=Decimal("0.6"))
    with pytest.raises(MissingModelKey, match="OPENAI_API_KEY"):
        LiteLLMClient()._call_arguments(request_for(spec))
    # a custom base takes no provider key, a model key of its own is enough
    base = ModelSpec(name="vllm", litellm_model="openai/llama",
                     api_base="http://127.0.0.1:9/v1")
    client = LiteLLMClient()
    try:
        assert client._call_arguments(request_for(base))["api_base"] == base.api_base
        monkeypatch.setenv("TEAM_OPENAI_KEY", "sk-team")
        own = ModelSpec(name="own", litellm_model="openai/gpt-4o-mini",
                        api_key_env="TEAM_OPENAI_KEY")
        assert client._call_arguments(request_for(own))["api_key"] == "sk-team"
    finally:
        await client.aclose()


def test_the_pipeline_chunks_with_the_preflight_s_constants() -> None:
    assert pipeline.PROMPT_OVERHEAD_TOKENS == PROMPT_OVERHEAD_TOKENS
    assert ALIVE_SECONDS == 3 * HEARTBEAT_SECONDS
    # a window with no room left still chunks at the floor the pre-flight counts
    spec = ModelSpec(name="m", litellm_model="m", context_window=1024, max_output_tokens=1000)
    chunks = pipeline.plan_chunks("word " * 2000, spec, 1000, chunk_max_tokens=1500,
                                  chunk_overlap_tokens=0)
    assert max(estimate_tokens(chunk.text) for chunk in chunks) <= MIN_CHUNK_TOKENS
