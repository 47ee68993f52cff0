"""The LLM gateway: one LiteLLM call per request, priced in Decimal, failures mapped to the domain.

LiteLLM is imported lazily (it is slow and heavy to import): the API process never loads it.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

from domain.api_bases import host_of, is_metadata
from domain.llm import (
    DeterministicModelError,
    ModelCallError,
    ModelRequest,
    ModelResponse,
    ModelSpec,
    TransientModelError,
)
from domain.pricing import (
    DEFAULT_BATCH_DISCOUNTS,
    ZERO_COST,
    CallUsage,
    Rates,
    parse_batch_discounts,
    price,
    worst_case,
)
from workers.limits import rate_limit_info
from workers.litellm_loader import load_litellm
from workers.metrics import observe_call
from workers.prices import MILLION as _MILLION
from workers.prices import LiteLLMPrices, model_batch_rates, model_rates
from workers.providers import missing_provider_key

LOCAL_API_KEY = "sk-local"
SCHEMA_NAME = "extraction_answer"

_RETRYABLE_4XX = frozenset({408, 409, 425, 429})
_MAX_MESSAGE_CHARS = 300
_SECRET = re.compile(r"(sk-[A-Za-z0-9_\-*]{4,}|Bearer\s+\S+|key=[^&\s]+)")
_LITELLM_PREFIX = re.compile(r"^(litellm\.\w+:\s*)?(\w+Error:\s*)?(\w*Exception\s*-\s*)?")

# The gateway's handle on LiteLLM (imported on first use).
_litellm = load_litellm

# How long a custom base's host is trusted after its addresses were checked.
_HOST_CHECK_TTL_S = 60.0


class MissingModelKey(DeterministicModelError):
    """The model names its own key variable, and the workers do not have it."""


def _own_key(spec: ModelSpec) -> str | None:
    """The model's own key, from the variable it names on this worker; None when it names
    none. A named variable that is unset is a deterministic failure, not a silent fallback."""
    if not spec.api_key_env:
        return None
    value = os.environ.get(spec.api_key_env)
    if not value:
        raise MissingModelKey(f"{spec.name}: the workers have no {spec.api_key_env} set "
                              "(the environment variable holding this model's key)")
    return value


own_key_of = _own_key  # for the batch client (workers/batch_api.py)


# ---------------------------------------------------------------------------------------------
# Prices: a catalog override, else LiteLLM's model map (workers/prices.py).

_PRICES = LiteLLMPrices()


def prices_for(spec: ModelSpec) -> tuple[Decimal, Decimal] | None:
    """Per-million prices of a catalog model: its override when set, else the bundled map."""
    if spec.input_cost_per_million is not None and spec.output_cost_per_million is not None:
        return spec.input_cost_per_million, spec.output_cost_per_million
    return _PRICES.price_of(spec.litellm_model)


def cost_of(prices: tuple[Decimal, Decimal], input_tokens: int, output_tokens: int) -> Decimal:
    """USD cost of a token usage at per-million prices, exact in Decimal."""
    per_input, per_output = prices
    return (Decimal(input_tokens) * per_input + Decimal(output_tokens) * per_output) / _MILLION


def rates_for(spec: ModelSpec) -> Rates | None:
    """A model's interactive rates (input, output, cache read, cache write per million):
    the catalog's input/output override wins, cache prices from its overrides else the map
    (workers/prices.py `model_rates`); None when unpriced."""
    return model_rates(spec)


def batch_rates_for(spec: ModelSpec, discounts: Mapping[str, Decimal]) -> Rates | None:
    """A model's batch-mode rates (workers/prices.py `model_batch_rates`): price a batch
    result with `domain.pricing.price(usage, rates_for(spec), batch_rates=...)`."""
    return model_batch_rates(spec, discounts)


# LiteLLM providers whose prompt caching needs explicit `cache_control` markers (Anthropic's
# models, direct or through Bedrock and Vertex AI); OpenAI and Gemini cache on their own.
_MARKER_PROVIDERS = ("anthropic", "bedrock", "vertex_ai")


def needs_cache_marker(spec: ModelSpec) -> bool:
    """True for an Anthropic model (direct, Bedrock or Vertex AI) that LiteLLM says
    supports prompt caching: its stable prefix is sent with a `cache_control` marker."""
    provider = _PRICES.provider_of(spec.litellm_model)
    if provider not in _MARKER_PROVIDERS:
        return False
    if provider != "anthropic" and not any(
            word in spec.litellm_model.lower() for word in ("anthropic", "claude")):
        return False
    try:
        from litellm.utils import supports_prompt_caching

        _litellm()
        return bool(supports_prompt_caching(model=spec.litellm_model))
    except Exception:
        return False


def with_cache_marker(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages with the system message (the stable prefix) as one text block marked
    `cache_control: ephemeral`; nothing else changes."""
    marked: list[dict[str, Any]] = []
    for message in messages:
        content = message.get("content")
        if message.get("role") == "system" and isinstance(content, str) and content:
            block = {"type": "text", "text": content, "cache_control": {"type": "ephemeral"}}
            message = {**message, "content": [block]}
        marked.append(message)
    return marked


# ---------------------------------------------------------------------------------------------
# Failures.


def _header(headers: object, name: str) -> str | None:
    items = getattr(headers, "items", None)
    if items is None:
        return None
    for key, value in items():
        if str(key).lower() == name:
            return str(value)
    return None


def _seconds_from(value: str) -> float | None:
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def retry_after_of(exc: BaseException) -> float | None:
    """Seconds the provider asked us to wait (Retry-After, seconds or HTTP date), if it said."""
    response = getattr(exc, "response", None)
    # LiteLLM keeps the provider's headers on `litellm_response_headers`; its own `response`
    # on a RateLimitError is rebuilt and usually carries none.
    candidates = (
        getattr(exc, "litellm_response_headers", None),
        getattr(response, "headers", None),
        getattr(exc, "headers", None),
    )
    for headers in candidates:
        millis = _header(headers, "retry-after-ms")
        if millis is not None:
            seconds = _seconds_from(millis)
            if seconds is not None:
                return seconds / 1000
        value = _header(headers, "retry-after")
        if value is not None:
            seconds = _seconds_from(value)
            if seconds is not None:
                return seconds
    return None


def _clean_message(exc: BaseException, secrets: tuple[str, ...]) -> str:
    text = str(getattr(exc, "message", None) or exc)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _SECRET.sub("***", text)
    text = _LITELLM_PREFIX.sub("", text.strip()).strip()
    first_line = text.splitlines()[0] if text else ""
    return first_line[:_MAX_MESSAGE_CHARS] or type(exc).__name__


def map_error(exc: Exception, model: str, *, secrets: tuple[str, ...] = ()) -> ModelCallError:
    """The domain error for a LiteLLM failure: transient (retry later) or deterministic."""
    litellm = _litellm()
    status = getattr(exc, "status_code", None)
    label = f"{type(exc).__name__}" + (f" {status}" if isinstance(status, int) else "")
    message = f"{model}: {label}: {_clean_message(exc, secrets)}"
    if isinstance(status, int) and 300 <= status < 400:
        # Custom bases follow no redirect (their key must not travel on): asking again will
        # not help.
        return DeterministicModelError(f"{model}: the server answered a redirect ({status}); "
                                       "redirects are not followed, give the final apiBase")
    if isinstance(exc, litellm.RateLimitError):
        # The provider's x-ratelimit-* headers too: the limiter slows the model for every
        # worker (workers/limits.py).
        retry_after = retry_after_of(exc)
        headers = (getattr(exc, "litellm_response_headers", None)
                   or getattr(getattr(exc, "response", None), "headers", None))
        return TransientModelError(message, retry_after_s=retry_after, status=429,
                                   rate_limit=rate_limit_info(headers, retry_after))
    if isinstance(exc, litellm.Timeout | litellm.APIConnectionError):
        return TransientModelError(message)
    deterministic = (
        litellm.BadRequestError,
        litellm.AuthenticationError,
        litellm.PermissionDeniedError,
        litellm.NotFoundError,
        litellm.UnprocessableEntityError,
    )
    if isinstance(exc, deterministic) or (
        isinstance(status, int) and 400 <= status < 500 and status not in _RETRYABLE_4XX
    ):
        return DeterministicModelError(message)
    return TransientModelError(message, retry_after_s=retry_after_of(exc))


# ---------------------------------------------------------------------------------------------
# The client.


class LiteLLMClient:
    """`ModelClient` over LiteLLM: exactly one provider call per `complete`, no SDK retries.

    A request's `json_schema` is sent as strict structured output where the provider supports
    it, so it must follow the strict rules (every property required, no additional properties).
    """

    def __init__(self, batch_discounts: Mapping[str, Decimal] | None = None) -> None:
        # OpenAI clients of custom bases, per event loop, base and key (see _custom_client).
        self._clients: dict[tuple[int, str, str], Any] = {}
        self._checked_hosts: dict[str, float] = {}
        # Default batch discount per provider (MMOS_BATCH_DISCOUNTS), where the price map
        # has no batch price and the model no discount of its own.
        self.batch_discounts: Mapping[str, Decimal] = (
            parse_batch_discounts(DEFAULT_BATCH_DISCOUNTS) if batch_discounts is None
            else dict(batch_discounts))

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """Call the model once and return its answer, usage and exact cost."""
        litellm = _litellm()
        if request.model.api_base:
            await self._refuse_metadata(request.model)
        kwargs = self._call_arguments(request)
        secrets = (str(kwargs.get("api_key") or ""),)
        started = time.perf_counter()
        try:
            response = await litellm.acompletion(**kwargs)
        except Exception as exc:
            error = map_error(exc, request.model.name, secrets=secrets)
            outcome = "transient" if isinstance(error, TransientModelError) else "deterministic"
            observe_call(request.model.name, time.perf_counter() - started, outcome)
            # `from None`: the provider's exception may echo request details we never log.
            raise error from None
        elapsed = time.perf_counter() - started
        observe_call(request.model.name, elapsed, "ok")
        return self._model_response(request, response, round(elapsed * 1000), kwargs)

    def worst_case_cost(self, request: ModelRequest, prompt_tokens: int, *,
                        batch: bool = False) -> Decimal | None:
        """Cost if the model used all of max_tokens, every prompt token at its dearest rate
        (a cache write may cost more than input), at the batch price for a provider batch
        line; None when the model has no known price."""
        rates = (batch_rates_for(request.model, self.batch_discounts) if batch
                 else rates_for(request.model))
        if rates is None:
            return None
        return worst_case(rates, prompt_tokens, request.max_tokens)

    def count_tokens(self, model: ModelSpec, text: str) -> int:
        """Tokens of `text` for `model`: LiteLLM's tokenizer for mapped models, else an estimate."""
        estimate = len(text) // 4 + 1
        found = _PRICES.entry_of(model.litellm_model)
        if found is None:
            return estimate
        try:
            return int(_litellm().token_counter(model=found[0], text=text))
        except Exception:
            return estimate

    # -- request ----------------------------------------------------------------------------------

    def _call_arguments(self, request: ModelRequest) -> dict[str, Any]:
        spec = request.model
        kwargs: dict[str, Any] = {
            "model": spec.litellm_model,
            "messages": request.messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "api_base": spec.api_base,
            "timeout": request.timeout_s,
            # Retries are ours (with backoff, budget and ledger): the SDK must not add any.
            "num_retries": 0,
            "max_retries": 0,
        }
        if needs_cache_marker(spec):
            kwargs["messages"] = with_cache_marker(request.messages)
        own_key = _own_key(spec)
        if spec.api_base and not spec.litellm_model.startswith("openai/"):
            # Not the OpenAI-compatible route (the catalog refuses such a model; tests point
            # an Anthropic model at the loopback fake): LiteLLM's own client, no default key.
            kwargs["api_key"] = own_key or LOCAL_API_KEY
        elif spec.api_base:
            # A custom base gets the model's own key or a placeholder (local servers ignore it,
            # the SDK insists on one), never a provider's default key from the environment.
            # Its client follows no redirect: a base that answers 3xx gets nothing more.
            key = own_key or LOCAL_API_KEY
            kwargs["api_key"] = key
            kwargs["client"] = self._custom_client(spec.api_base, key, request.timeout_s)
        elif own_key is not None:
            kwargs["api_key"] = own_key
        elif lacking := missing_provider_key(spec.litellm_model):
            # Refused at start when a worker reporting it was seen (domain/preflight.py); a
            # start with no worker seen is caught here, before anything is spent or retried.
            raise MissingModelKey(f"{spec.name}: the workers have no key for its provider "
                                  f"({' / '.join(lacking)} not set)")
        response_format = self._response_format(request)
        if response_format is not None:
            kwargs["response_format"] = response_format
        return kwargs

    async def aclose(self) -> None:
        """Close the custom-base clients opened on the running loop (their connections)."""
        import asyncio

        loop = id(asyncio.get_running_loop())
        for slot in [slot for slot in self._clients if slot[0] == loop]:
            client = self._clients.pop(slot)
            with contextlib.suppress(Exception):
                await client.close()
        # LiteLLM's global logging worker runs a task on the loop of its last call: stop it
        # with the loop that is closing, so no pending task of a dead loop is left behind.
        import sys

        module = sys.modules.get("litellm.litellm_core_utils.logging_worker")
        worker = getattr(module, "GLOBAL_LOGGING_WORKER", None)
        if worker is not None and getattr(worker, "_bound_loop", None) is \
                asyncio.get_running_loop():
            with contextlib.suppress(Exception):
                await worker.stop()

    def _custom_client(self, base: str, key: str, timeout_s: float) -> Any:
        """An OpenAI SDK client for a custom base: no SDK retries, no redirects followed (the
        key must not travel to wherever a base points next). One per event loop, base and
        key: the connection pool belongs to the loop that opened it."""
        import asyncio

        import httpx
        import openai

        slot = (id(asyncio.get_running_loop()), base, key)
        client = self._clients.get(slot)
        if client is None:
            # LiteLLM's own transport (aiohttp unless configured otherwise: far faster than
            # httpx's), under an httpx client that follows no redirect. The transport never
            # follows one itself.
            from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler

            transport = AsyncHTTPHandler.create_async_transport()
            client = openai.AsyncOpenAI(
                api_key=key, base_url=base, max_retries=0, timeout=timeout_s,
                http_client=httpx.AsyncClient(transport=transport, follow_redirects=False,
                                              timeout=timeout_s))
            self._clients[slot] = client
        return client

    async def _refuse_metadata(self, spec: ModelSpec) -> None:
        """A custom base whose host resolves to a link-local or cloud metadata address is
        refused at call time too (a name registered as harmless may later point there)."""
        import asyncio
        import ipaddress
        import socket

        host = host_of(spec.api_base or "")
        if host is None:
            raise DeterministicModelError(f"{spec.name}: the apiBase names no host")
        if self._checked_hosts.get(host, 0.0) > time.monotonic():
            return
        if is_metadata(host, None):
            raise DeterministicModelError(f"{spec.name}: the apiBase points at a cloud metadata "
                                          "host; refused")
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None,
                                                                 type=socket.SOCK_STREAM)
        except OSError:
            return  # the call itself reports the unreachable host
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            if is_metadata(host, address):
                raise DeterministicModelError(
                    f"{spec.name}: the apiBase host {host} resolves to a link-local or cloud "
                    "metadata address; refused")
        self._checked_hosts[host] = time.monotonic() + _HOST_CHECK_TTL_S

    def _response_format(self, request: ModelRequest) -> dict[str, Any] | None:
        litellm = _litellm()
        model = request.model.litellm_model
        try:
            supported = litellm.get_supported_openai_params(model=model)
        except Exception:
            supported = None
        if not supported or "response_format" not in supported:
            return None
        # A custom api_base may serve anything under a known name: JSON mode is the safe ask.
        if request.json_schema is not None and not request.model.api_base:
            try:
                with_schema = bool(litellm.supports_response_schema(model=model))
            except Exception:
                with_schema = False
            if with_schema:
                schema = {"name": SCHEMA_NAME, "schema": request.json_schema, "strict": True}
                return {"type": "json_schema", "json_schema": schema}
        return {"type": "json_object"}

    # -- batch lines ------------------------------------------------------------------------------

    def batch_body(self, request: ModelRequest) -> dict[str, Any]:
        """The chat request body a batch line carries: what `complete` would send."""
        kwargs = self._call_arguments(request)
        body: dict[str, Any] = {"messages": kwargs["messages"],
                                "max_tokens": kwargs["max_tokens"],
                                "temperature": kwargs["temperature"]}
        if "response_format" in kwargs:
            body["response_format"] = kwargs["response_format"]
        return body

    def batch_response(self, request: ModelRequest, body: dict[str, Any]) -> ModelResponse:
        """A batch result line's chat completion as a priced response, at the batch price."""
        litellm = _litellm()
        response = litellm.ModelResponse(**body)
        return self._model_response(request, response, 0, self._call_arguments(request),
                                    batch=True)

    # -- response ---------------------------------------------------------------------------------

    def _model_response(
        self, request: ModelRequest, response: Any, latency_ms: int, kwargs: dict[str, Any],
        *, batch: bool = False,
    ) -> ModelResponse:
        choices = getattr(response, "choices", None) or []
        if not choices:
            raise TransientModelError(f"{request.model.name}: the provider returned no choices")
        choice = choices[0]
        content = getattr(choice.message, "content", None) or ""
        usage, estimated = self._usage(request, response, content)
        rates = rates_for(request.model)
        if rates is None:
            cost = ZERO_COST
        else:
            batch_rates = batch_rates_for(request.model, self.batch_discounts) if batch else None
            if batch and batch_rates is None:
                raise DeterministicModelError(f"{request.model.name}: no batch price is known "
                                              "(the price map has none and no batch discount "
                                              "applies)")
            cost = price(usage, rates, batch_rates=batch_rates)
        response_format = kwargs.get("response_format") or {}
        return ModelResponse(
            content=content,
            finish_reason=getattr(choice, "finish_reason", None),
            input_tokens=usage.prompt_tokens,
            output_tokens=usage.completion_tokens,
            cost_usd=cost.cost_usd,
            latency_ms=latency_ms,
            raw_model=getattr(response, "model", None),
            extra={
                "priced": rates is not None,
                "usage_estimated": estimated,
                "response_format": response_format.get("type", "none"),
            },
            cached_input_tokens=usage.cached_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            list_cost_usd=cost.list_cost_usd,
            cache_saved_usd=cost.cache_saved_usd,
            batch_saved_usd=cost.batch_saved_usd,
            rate_limit=None if batch else rate_limit_info(_response_headers(response)),
        )

    def _usage(self, request: ModelRequest, response: Any, content: str) -> tuple[CallUsage, bool]:
        usage = getattr(response, "usage", None)
        prompt = getattr(usage, "prompt_tokens", None)
        completion = getattr(usage, "completion_tokens", None)
        if isinstance(prompt, int) and isinstance(completion, int):
            cached, written = cache_usage_of(usage)
            # LiteLLM's prompt_tokens already counts cache reads and writes (it adds them to
            # Anthropic's input_tokens); a server that left them out still bills them.
            return CallUsage(max(prompt, cached + written), max(completion, 0), cached,
                             written), False
        # Some local servers report no usage: estimate rather than record a free call.
        prompt_text = "\n".join(_text_of(m.get("content")) for m in request.messages)
        count = self.count_tokens
        return CallUsage(count(request.model, prompt_text), count(request.model, content)), True


def _response_headers(response: Any) -> Any:
    """The provider's headers LiteLLM kept on a success (`additional_headers`)."""
    hidden = getattr(response, "_hidden_params", None)
    if isinstance(hidden, dict):
        return hidden.get("additional_headers")
    return getattr(hidden, "additional_headers", None)


def _count(holder: Any, name: str) -> int:
    value = holder.get(name) if isinstance(holder, dict) else getattr(holder, name, None)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def cache_usage_of(usage: Any) -> tuple[int, int]:
    """(cache-read, cache-write) prompt tokens of a LiteLLM usage. LiteLLM puts every
    provider's cache reads in `prompt_tokens_details.cached_tokens` (OpenAI's own field,
    Anthropic's `cache_read_input_tokens`, Gemini's `cachedContentTokenCount`) and Anthropic's
    `cache_creation_input_tokens` in `prompt_tokens_details.cache_creation_tokens` (and
    `cache_write_tokens`), with the raw Anthropic names on the usage itself too."""
    details = getattr(usage, "prompt_tokens_details", None)
    cached = _count(details, "cached_tokens") or _count(usage, "cache_read_input_tokens")
    written = (_count(details, "cache_creation_tokens") or _count(details, "cache_write_tokens")
               or _count(usage, "cache_creation_input_tokens"))
    return cached, written


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return "".join(str(block.get("text") or "") for block in content
                       if isinstance(block, dict))
    return str(content or "")
