"""LiteLLM, imported once and lazily: configured never to reach the network on its own, with
MMOS's offline models registered. The only place that imports it (docs/ARCHITECTURE.md,
"Layers")."""

from __future__ import annotations

import importlib
import os
from functools import cache
from types import ModuleType


@cache
def load_litellm() -> ModuleType:
    """The configured `litellm` module (seconds of import on the first call)."""
    # Without this LiteLLM downloads its price map at import time.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    # Token counting for Llama/Cohere names would otherwise download a tokenizer.
    litellm.disable_hf_tokenizer_download = True
    from workers.local_models import register_local_models

    register_local_models()
    return litellm


def preload_provider_sdk() -> None:
    """Load what a first call would: the OpenAI SDK's resource modules (LiteLLM's client for
    OpenAI-compatible providers imports them on its first call, a third of a second of CPU)
    and LiteLLM's response models (built on the first answer), through one mocked completion
    that sends nothing. A worker does it before consuming, so its first wave of calls does not
    pay for it while the other workers wait."""
    importlib.import_module("openai.resources")
    load_litellm().completion(model="openai/gpt-4o-mini", api_key="warm-up",
                              messages=[{"role": "user", "content": "warm-up"}],
                              mock_response='{"fragments": []}')
