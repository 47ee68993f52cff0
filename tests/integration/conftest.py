"""Integration fixtures: chunk sizes and strategy samples. The processing runtime, the fake
provider and `engine_gql` are in tests/conftest.py (tests/security uses them too)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def small_chunks(settings: Any, monkeypatch: pytest.MonkeyPatch) -> int:
    """Chunks of about 300 tokens (the workers share the session settings): short sources
    then span several chunks."""
    monkeypatch.setattr(settings, "chunk_max_tokens", 300)
    return 300


@pytest.fixture
def one_source_sample(settings: Any, monkeypatch: pytest.MonkeyPatch) -> int:
    """processBatch strategies sample a single source before deciding."""
    monkeypatch.setattr(settings, "strategy_sample_sources", 1)
    return 1
