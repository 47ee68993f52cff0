"""Pre-flight: what must hold before a start queues anything (docs/ARCHITECTURE.md, "Jobs").

A start is refused at once, naming the model, rather than failed minutes later by a worker:

- **the model's key is missing where its calls run.** Every worker reports in its heartbeat
  what it can call (`WorkerReach`: the LiteLLM providers whose keys LiteLLM's own
  `validate_environment` finds, the providers whose keys it names and does not find, and the
  model key variables — catalog `apiKeyEnv` names — that are set). Any worker may claim any
  job, so every worker seen in the last `ALIVE_SECONDS` must be able to make the call. With
  no worker seen there is nothing to check against: the start is not refused (the jobs wait
  for a worker, and a worker without the key fails the run at its first call, deterministically).
- **a chunk and the prompt cannot fit the model's context window.** The pipeline chunks at
  `min(chunk_max_tokens, context_window - max_output - PROMPT_OVERHEAD_TOKENS)`, never below
  `MIN_CHUNK_TOKENS`; a window that cannot hold the prompt, the smallest chunk and the
  model's maximum output can never be called.

(The third check, a price under a budget, is `domain/services/batches.py` `checked_models`.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from domain.batching import provider_of
from domain.chunking import estimate_tokens
from domain.model import SourceType
from domain.prompt import ALIASES_MAX_CHARS, SUBJECT_ALIASES, SYSTEM_PROMPT, build_messages
from domain.subjects import NAME_MAX, Subject

# A worker heartbeats every HEARTBEAT_SECONDS; three missed beats and it is presumed gone.
HEARTBEAT_SECONDS = 10.0
ALIVE_SECONDS = 3 * HEARTBEAT_SECONDS
# What the pipeline keeps free for the prompt around a chunk, and its smallest chunk
# (workers/pipeline.py `plan_chunks`; a unit test holds the two equal).
PROMPT_OVERHEAD_TOKENS = 800
MIN_CHUNK_TOKENS = 100
# The providers of MMOS's own offline models (no key, no network).
LOCAL_PROVIDERS = frozenset({"mmos"})
_LONGEST_LANGUAGE = "xxx-XXXXXXXX"  # the longest tag domain/sources.py accepts


@dataclass(frozen=True, slots=True)
class WorkerReach:
    """What one worker process can call, as its heartbeat reported it.

    `providers`: LiteLLM providers whose keys are set on the worker. `missing`: providers
    whose key variables LiteLLM names and the worker lacks, with those names. `key_envs`:
    model key variables (names a catalog `apiKeyEnv` may hold) set on the worker. A provider
    in neither map is one LiteLLM names no key for: it is never refused."""

    worker_id: str
    providers: frozenset[str] = frozenset()
    missing: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    key_envs: frozenset[str] = frozenset()

    @property
    def reported(self) -> bool:
        """False for a worker that reported nothing (one older than the report)."""
        return bool(self.providers or self.missing or self.key_envs)

    def to_json(self) -> dict[str, Any]:
        return {"providers": sorted(self.providers),
                "missing": {name: list(keys) for name, keys in sorted(self.missing.items())},
                "keyEnvs": sorted(self.key_envs)}

    @classmethod
    def from_json(cls, worker_id: str, data: Any) -> WorkerReach:
        """The stored report; anything else (an older worker's `[]`) reports nothing."""
        if not isinstance(data, Mapping):
            return cls(worker_id)
        missing = data.get("missing") if isinstance(data.get("missing"), Mapping) else {}
        return cls(worker_id,
                   providers=frozenset(str(p) for p in data.get("providers") or ()),
                   missing={str(p): tuple(str(k) for k in keys or ())
                            for p, keys in missing.items()},
                   key_envs=frozenset(str(k) for k in data.get("keyEnvs") or ()))


@dataclass(frozen=True, slots=True)
class KeyNeed:
    """What a model's calls need on the worker: a provider's key, or a named variable."""

    provider: str | None = None
    key_env: str | None = None


def key_need(litellm_model: str, *, api_base: str | None, api_key_env: str | None,
             is_local: bool) -> KeyNeed | None:
    """What the worker must hold to call this model; None when nothing can be told or
    nothing is needed: MMOS's offline models, a custom `apiBase` without `apiKeyEnv`
    (an OpenAI-compatible server that takes no key), a model string whose provider cannot be
    told without LiteLLM. A model naming `apiKeyEnv` needs that variable and nothing else
    (the gateway sends it, `workers/gateway.py` `_own_key`)."""
    if is_local:
        return None
    if api_key_env:
        return KeyNeed(key_env=api_key_env)
    if api_base:
        return None
    provider = provider_of(litellm_model)
    if provider is None or provider in LOCAL_PROVIDERS:
        return None
    return KeyNeed(provider=provider)


def _some(ids: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _every(lacking: Sequence[object], reporting: Sequence[object]) -> str:
    return (" (every worker needs it: any worker may claim any job)"
            if len(lacking) < len(reporting) else "")


def key_problem(model: Any, workers: Sequence[WorkerReach]) -> str | None:
    """Why the live workers cannot call `model` (a catalog row), or None. `workers` are the
    workers seen in the last ALIVE_SECONDS; an empty list refuses nothing."""
    reporting = [w for w in workers if w.reported]
    if not reporting:
        return None
    need = key_need(model.litellm_model, api_base=getattr(model, "api_base", None),
                    api_key_env=getattr(model, "api_key_env", None),
                    is_local=bool(getattr(model, "is_local", False)))
    if need is None:
        return None
    seen = (f"{len(reporting)} worker{'s' if len(reporting) != 1 else ''} seen in the last "
            f"{ALIVE_SECONDS:.0f} s")
    if need.key_env is not None:
        lacking = [w.worker_id for w in reporting if need.key_env not in w.key_envs]
        if not lacking:
            return None
        return (f"model {model.name!r} takes its key from {need.key_env} (its apiKeyEnv), "
                f"which is not set on {len(lacking)} of the {seen} ({_some(lacking)}); set it "
                f"where the workers run and restart them{_every(lacking, reporting)}")
    provider = need.provider or ""
    lacking = [w for w in reporting
               if provider not in w.providers and provider in w.missing]
    if not lacking:
        return None
    names = sorted({name for w in lacking for name in w.missing[provider]})
    return (f"model {model.name!r} calls {provider}, and {len(lacking)} of the {seen} "
            f"({_some([w.worker_id for w in lacking])}) {'has' if len(lacking) == 1 else 'have'}"
            f" no key for it (LiteLLM looks for {' / '.join(names)}); set it where the workers "
            f"run and restart them{_every(lacking, reporting)}")


def prompt_tokens() -> int:
    """The prompt around a chunk (system prompt and the user message's framing), estimated
    as the pipeline plans chunks (about four characters a token), for the longest source
    type and language tag and the longest subject framing (a name and an opening speaker of
    NAME_MAX characters that JSON escapes to twice their length, aliases at their cap)."""
    longest = max((t.value for t in SourceType), key=len)
    worst = '"' * NAME_MAX
    framing = build_messages("", language=_LONGEST_LANGUAGE, source_type=longest,
                             subject=Subject(worst), opening_speaker=worst)[1]
    aliases = estimate_tokens("x" * (len(SUBJECT_ALIASES) + ALIASES_MAX_CHARS))
    return estimate_tokens(SYSTEM_PROMPT) + estimate_tokens(framing["content"]) + aliases


def context_problem(model: Any, max_output: int, prompt: int | None = None) -> str | None:
    """Why `model`'s context window cannot hold one call (the prompt, the smallest chunk
    and `max_output`), or None."""
    prompt = prompt_tokens() if prompt is None else prompt
    needed = prompt + MIN_CHUNK_TOKENS + max_output
    if model.context_window >= needed:
        return None
    return (f"model {model.name!r} has a context window of {model.context_window:,} tokens, "
            f"and one call needs {needed:,}: the prompt (~{prompt:,}), the smallest chunk "
            f"({MIN_CHUNK_TOKENS}) and the maximum output ({max_output:,}); raise its "
            "contextWindow or lower its maxOutputTokens with updateModel")
