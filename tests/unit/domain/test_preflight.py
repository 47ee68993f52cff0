"""What a model needs on the workers, the heartbeat report's shape, and the prompt estimate
of the context-window check (domain/preflight.py)."""

from __future__ import annotations

import pytest

from domain.chunking import estimate_tokens
from domain.model import SourceType
from domain.preflight import (
    PROMPT_OVERHEAD_TOKENS,
    KeyNeed,
    WorkerReach,
    key_need,
    prompt_tokens,
)
from domain.prompt import build_messages


@pytest.mark.parametrize(("model", "base", "env", "local", "need"), [
    ("openai/gpt-4o-mini", None, None, False, KeyNeed(provider="openai")),
    ("gpt-4o-mini", None, None, False, KeyNeed(provider="openai")),
    ("anthropic/claude-haiku-4-5", None, None, False, KeyNeed(provider="anthropic")),
    ("gemini/gemini-2.5-flash", None, None, False, KeyNeed(provider="gemini")),
    ("openai/llama", "http://127.0.0.1:8000/v1", None, False, None),
    ("openai/llama", "http://127.0.0.1:8000/v1", "LOCAL_LLAMA_API_KEY", False,
     KeyNeed(key_env="LOCAL_LLAMA_API_KEY")),
    ("openai/gpt-4o", None, "TEAM_OPENAI_KEY", False, KeyNeed(key_env="TEAM_OPENAI_KEY")),
    ("mmos/rules-fast", None, None, True, None),
    ("mmos/rules-fast", None, None, False, None),
    ("claude-3-haiku-20240307", None, None, False, None),  # provider not told without LiteLLM
])
def test_key_need(model: str, base: str | None, env: str | None, local: bool,
                  need: KeyNeed | None) -> None:
    assert key_need(model, api_base=base, api_key_env=env, is_local=local) == need


def test_the_report_round_trips_through_json() -> None:
    reach = WorkerReach("w", frozenset({"openai"}), {"gemini": ("GOOGLE_API_KEY",
                                                                "GEMINI_API_KEY")},
                        frozenset({"LOCAL_LLAMA_API_KEY"}))
    data = reach.to_json()
    assert data == {"providers": ["openai"],
                    "missing": {"gemini": ["GOOGLE_API_KEY", "GEMINI_API_KEY"]},
                    "keyEnvs": ["LOCAL_LLAMA_API_KEY"]}
    assert WorkerReach.from_json("w", data) == reach
    assert reach.reported


@pytest.mark.parametrize("stored", [[], None, "x", {}, {"providers": None}])
def test_a_row_without_a_report_reports_nothing(stored: object) -> None:
    assert not WorkerReach.from_json("w", stored).reported


def test_the_prompt_estimate_covers_every_source_type_and_the_longest_language() -> None:
    for source_type in SourceType:
        system, user = build_messages("", language="pt-BR", source_type=source_type.value)
        assert estimate_tokens(system["content"]) + estimate_tokens(user["content"]) \
            <= prompt_tokens()
    # and stays inside what the pipeline keeps free for it around a chunk
    assert prompt_tokens() <= PROMPT_OVERHEAD_TOKENS
