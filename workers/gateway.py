"""The LLM gateway: one LiteLLM call per request, priced in Decimal, failures mapped to the domain.

LiteLLM is imported lazily (it is slow and heavy to import): the API process never loads it.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
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
from workers.litellm_loader import load_litellm
from workers.metrics import observe_call
from workers.prices import MILLION as _MILLION
from workers.prices import LiteLLMPrices

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
        return TransientModelError(message, retry_after_s=retry_after_of(exc))
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

    def __init__(self) -> None:
        # OpenAI clients of custom bases, per event loop, base and key (see _custom_client).
        self._clients: dict[tuple[int, str, str], Any] = {}
        self._checked_hosts: dict[str, float] = {}

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

    def worst_case_cost(self, request: ModelRequest, prompt_tokens: int) -> Decimal | None:
        """Cost if the model used all of max_tokens; None when the model has no known price."""
        prices = prices_for(request.model)
        if prices is None:
            return None
        return cost_of(prices, prompt_tokens, request.max_tokens)

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
        own_key = _own_key(spec)
        if spec.api_base:
            # A custom base gets the model's own key or a placeholder (local servers ignore it,
            # the SDK insists on one), never a provider's default key from the environment.
            # Its client follows no redirect: a base that answers 3xx gets nothing more.
            key = own_key or LOCAL_API_KEY
            kwargs["api_key"] = key
            kwargs["client"] = self._custom_client(spec.api_base, key, request.timeout_s)
        elif own_key is not None:
            kwargs["api_key"] = own_key
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

    # -- response ---------------------------------------------------------------------------------

    def _model_response(
        self, request: ModelRequest, response: Any, latency_ms: int, kwargs: dict[str, Any]
    ) -> ModelResponse:
        choices = getattr(response, "choices", None) or []
        if not choices:
            raise TransientModelError(f"{request.model.name}: the provider returned no choices")
        choice = choices[0]
        content = getattr(choice.message, "content", None) or ""
        input_tokens, output_tokens, estimated = self._usage(request, response, content)
        prices = prices_for(request.model)
        cost = cost_of(prices, input_tokens, output_tokens) if prices else Decimal(0)
        response_format = kwargs.get("response_format") or {}
        return ModelResponse(
            content=content,
            finish_reason=getattr(choice, "finish_reason", None),
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost,
            latency_ms=latency_ms,
            raw_model=getattr(response, "model", None),
            extra={
                "priced": prices is not None,
                "usage_estimated": estimated,
                "response_format": response_format.get("type", "none"),
            },
        )

    def _usage(self, request: ModelRequest, response: Any, content: str) -> tuple[int, int, bool]:
        usage = getattr(response, "usage", None)
        prompt = getattr(usage, "prompt_tokens", None)
        completion = getattr(usage, "completion_tokens", None)
        if isinstance(prompt, int) and isinstance(completion, int):
            return prompt, completion, False
        # Some local servers report no usage: estimate rather than record a free call.
        prompt_text = "\n".join(str(m.get("content") or "") for m in request.messages)
        count = self.count_tokens
        return count(request.model, prompt_text), count(request.model, content), True
