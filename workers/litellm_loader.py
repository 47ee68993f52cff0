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
    """Import what the OpenAI SDK (LiteLLM's client for OpenAI-compatible providers) imports
    on a client's first call: its resource modules, a third of a second of CPU. A worker does
    it before consuming, so its first wave of calls does not pay for it while others wait."""
    importlib.import_module("openai.resources")
