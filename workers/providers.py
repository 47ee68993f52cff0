"""What this worker process can call: the provider keys LiteLLM finds in its environment and
the model key variables set, reported in every heartbeat (domain/preflight.py `WorkerReach`)
so the API refuses at start what the workers cannot call, and checked again before a call.

LiteLLM's `validate_environment(model=…)` is the authority for a provider's key variables.
It is asked about the providers below only, one probe model each: those for which it names
the variables it wants. Left out, so never refused: providers it names no key for, and those
whose check misses credentials their SDK finds on its own (Bedrock and SageMaker take
instance roles and `~/.aws`, Vertex AI application-default credentials, Ollama a local
default base).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from domain.api_bases import problem_with_key_env
from domain.preflight import WorkerReach
from workers.litellm_loader import load_litellm

log = logging.getLogger("mmos.worker")

# The providers whose keys `validate_environment` checks (LiteLLM 1.106.2, litellm/utils.py;
# tests/unit/workers/test_providers.py holds each one to it).
KEYED_PROVIDERS = (
    "openai", "azure", "anthropic", "gemini", "mistral", "xai", "groq", "deepseek", "cohere",
    "together_ai", "openrouter", "fireworks_ai", "perplexity", "deepinfra", "cerebras",
    "nvidia_nim", "huggingface", "replicate", "ai21", "ai21_chat", "codestral", "voyage",
    "cloudflare", "novita", "nebius", "moonshot", "dashscope", "volcengine", "baseten",
    "featherless_ai", "datarobot", "nlp_cloud", "infinity", "tencent", "wandb", "modelscope",
    "vercel_ai_gateway", "edenai", "inception",
)
# LiteLLM counts a variable that is set but empty as a key; for these providers MMOS knows the
# variables and treats an empty one (a compose file's `KEY=`) as missing.
_KEY_VARIABLES: Mapping[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "mistral": ("MISTRAL_API_KEY",),
    "xai": ("XAI_API_KEY",),
    "groq": ("GROQ_API_KEY",),
    "deepseek": ("DEEPSEEK_API_KEY",),
    "cohere": ("COHERE_API_KEY",),
    "together_ai": ("TOGETHERAI_API_KEY",),
    "openrouter": ("OPENROUTER_API_KEY",),
}
PROBE_MODEL = "mmos-probe"


def _missing(provider: str, environ: Mapping[str, str]) -> tuple[str, ...]:
    """The key variables LiteLLM wants for `provider` and this process lacks; () when it
    holds them."""
    found = load_litellm().validate_environment(model=f"{provider}/{PROBE_MODEL}")
    wanted = _KEY_VARIABLES.get(provider, ())
    if found.get("keys_in_environment"):
        if wanted and not any(environ.get(name, "").strip() for name in wanted):
            return tuple(f"{name} (empty)" for name in wanted if name in environ) or wanted
        return ()
    return tuple(str(name) for name in found.get("missing_keys") or ())


def model_key_envs(environ: Mapping[str, str]) -> frozenset[str]:
    """The variables set (not empty) here that a catalog model's `apiKeyEnv` may name."""
    return frozenset(name for name, value in environ.items()
                     if value.strip() and problem_with_key_env(name) is None)


def worker_reach(worker_id: str, environ: Mapping[str, str] | None = None) -> WorkerReach:
    """What this process can call, for its heartbeat. Imports LiteLLM (seconds, once)."""
    environ = os.environ if environ is None else environ
    providers: set[str] = set()
    missing: dict[str, tuple[str, ...]] = {}
    for provider in KEYED_PROVIDERS:
        try:
            lacking = _missing(provider, environ)
        except Exception:  # a provider LiteLLM no longer resolves: nothing to say of it
            log.debug("no key check for provider %s", provider, exc_info=True)
            continue
        if lacking:
            missing[provider] = lacking
        else:
            providers.add(provider)
    return WorkerReach(worker_id, frozenset(providers), missing, model_key_envs(environ))


def missing_provider_key(litellm_model: str) -> tuple[str, ...]:
    """Before a call without a model key of its own: the variables of its provider's key
    that this process lacks (a deterministic failure, not LiteLLM's transient-looking
    "Missing credentials"); () when it holds them or no check applies."""
    try:
        provider = load_litellm().get_llm_provider(model=litellm_model)[1]
    except Exception:
        return ()
    if provider not in KEYED_PROVIDERS:
        return ()
    found = load_litellm().validate_environment(model=litellm_model)
    if found.get("keys_in_environment"):
        return _missing(provider, os.environ)
    return tuple(str(name) for name in found.get("missing_keys") or ())
