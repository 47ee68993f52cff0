"""The local rule-based models answer through LiteLLM like any chat model, for free."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from api.demo_data import load_samples
from domain.prompt import build_messages
from workers.local_models import LOCAL_MODEL_NAMES, PROVIDER, register_local_models

ROOT = Path(__file__).resolve().parents[2]
CHUNK = load_samples()[1]["content"][:4_000]  # Portuguese: accents, curly quotes, emoji


@pytest.fixture(scope="module")
def litellm() -> ModuleType:
    register_local_models()
    import litellm

    return litellm


def test_local_model_names_are_the_provider_prefixed_extractors() -> None:
    assert LOCAL_MODEL_NAMES == ("mmos/rules-fast", "mmos/rules-thorough")


@pytest.mark.asyncio
async def test_acompletion_answers_with_grounded_fragments_usage_and_zero_cost(
    litellm: ModuleType,
) -> None:
    # Given
    messages = build_messages(CHUNK, language="pt", source_type="interview")

    # When
    response = await litellm.acompletion(
        model="mmos/rules-thorough", messages=messages, max_tokens=4_096, temperature=0.0
    )

    # Then
    choice = response.choices[0]
    answer = json.loads(choice.message.content)
    assert choice.finish_reason == "stop"
    assert len(answer["fragments"]) >= 10
    assert all(fragment["quote"] in CHUNK for fragment in answer["fragments"])
    prompt_chars = sum(len(message["content"]) for message in messages)
    assert response.usage.prompt_tokens == prompt_chars // 4
    assert response.usage.completion_tokens == len(choice.message.content) // 4
    assert response.usage.total_tokens == (
        response.usage.prompt_tokens + response.usage.completion_tokens
    )
    assert response._hidden_params["response_cost"] == 0
    assert litellm.completion_cost(completion_response=response) == 0


def test_sync_completion_answers_the_same_way(litellm: ModuleType) -> None:
    messages = build_messages(CHUNK, language="pt", source_type="interview")

    response = litellm.completion(model="mmos/rules-fast", messages=messages)

    answer = json.loads(response.choices[0].message.content)
    assert answer["fragments"]
    assert {fragment["fragment_type"] for fragment in answer["fragments"]} == {"direct_quote"}
    assert response._hidden_params["response_cost"] == 0


@pytest.mark.asyncio
async def test_the_same_request_gives_the_same_content(litellm: ModuleType) -> None:
    messages = build_messages(CHUNK, language="pt", source_type="interview")

    first = await litellm.acompletion(model="mmos/rules-thorough", messages=messages)
    second = await litellm.acompletion(model="mmos/rules-thorough", messages=messages)

    assert first.choices[0].message.content == second.choices[0].message.content


@pytest.mark.asyncio
async def test_without_source_markers_the_last_user_message_is_read(litellm: ModuleType) -> None:
    messages = [
        {"role": "system", "content": "Extract MIUs."},
        {"role": "user", "content": "I believe that honesty matters more than comfort."},
    ]

    response = await litellm.acompletion(model="mmos/rules-thorough", messages=messages)

    answer = json.loads(response.choices[0].message.content)
    assert [fragment["quote"] for fragment in answer["fragments"]] == [
        "I believe that honesty matters more than comfort."
    ]


@pytest.mark.asyncio
async def test_an_unknown_local_model_is_not_found(litellm: ModuleType) -> None:
    messages = build_messages("I believe in bridges.", language="en", source_type="interview")

    with pytest.raises(litellm.NotFoundError):
        await litellm.acompletion(model="mmos/rules-magic", messages=messages)


def test_registering_twice_keeps_one_provider(litellm: ModuleType) -> None:
    register_local_models()
    register_local_models()

    providers = [item["provider"] for item in litellm.custom_provider_map]
    assert providers.count(PROVIDER) == 1
    assert litellm.get_model_info("mmos/rules-fast")["input_cost_per_token"] == 0


def test_importing_the_module_does_not_import_litellm() -> None:
    # The API process may read LOCAL_MODEL_NAMES; it must not pay for LiteLLM's import.
    code = "import sys, workers.local_models; print('litellm' in sys.modules)"

    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "False"
