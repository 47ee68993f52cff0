"""Value objects of a single model call, shared by the gateway port and the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What the gateway needs to call one catalog model."""

    name: str
    litellm_model: str
    api_base: str | None = None
    # The environment variable (on the workers) holding this model's own key; a model with a
    # custom api_base gets no other key.
    api_key_env: str | None = None
    input_cost_per_million: Decimal | None = None
    output_cost_per_million: Decimal | None = None
    context_window: int = 8192
    max_output_tokens: int = 4096
    # Overrides of the price map's cache prices (per million) and of the provider's default
    # batch discount; None = LiteLLM's map, the MMOS_BATCH_DISCOUNTS default.
    cache_read_cost_per_million: Decimal | None = None
    cache_write_cost_per_million: Decimal | None = None
    batch_discount: Decimal | None = None
    # Per-model provider limits (None = unlimited): requests and input+output tokens per
    # minute, calls in flight at once; shared by every worker (workers/limits.py).
    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None

    @property
    def is_limited(self) -> bool:
        return any(v is not None for v in (self.rpm, self.tpm, self.max_concurrency))

    @property
    def is_priced(self) -> bool:
        return self.input_cost_per_million is not None and self.output_cost_per_million is not None


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """What a provider said about its limits on one answer (a 200 or a 429): the
    `x-ratelimit-*` headers (limit, remaining, seconds until reset) and `Retry-After`."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests_s: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens_s: float | None = None
    retry_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """One chat completion request."""

    model: ModelSpec
    messages: list[dict[str, str]]
    max_tokens: int
    temperature: float = 0.0
    json_schema: dict[str, object] | None = None
    timeout_s: float = 120.0


@dataclass(frozen=True, slots=True)
class ModelResponse:
    """What one successful provider call returned and cost.

    `input_tokens` is every prompt token, `cached_input_tokens` (read from the provider's
    prompt cache) and `cache_write_tokens` (written to it) included. `list_cost_usd` is what
    the same usage costs interactive and uncached; cost_usd = list_cost_usd − cache_saved_usd
    − batch_saved_usd exactly (list = cost when not given).
    """

    content: str
    finish_reason: str | None
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    latency_ms: int
    raw_model: str | None = None
    extra: dict[str, object] = field(default_factory=dict)
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    list_cost_usd: Decimal | None = None
    cache_saved_usd: Decimal = Decimal(0)
    batch_saved_usd: Decimal = Decimal(0)
    rate_limit: RateLimitInfo | None = None

    def __post_init__(self) -> None:
        if self.list_cost_usd is None:
            object.__setattr__(self, "list_cost_usd",
                               self.cost_usd + self.cache_saved_usd + self.batch_saved_usd)

    @property
    def list_cost(self) -> Decimal:
        """`list_cost_usd`, typed: it is always set once the response exists."""
        return self.cost_usd if self.list_cost_usd is None else self.list_cost_usd


class ModelCallError(Exception):
    """Base of provider call failures; carries usage when the provider reported any."""

    def __init__(self, message: str, *, cost_usd: Decimal = Decimal(0)) -> None:
        super().__init__(message)
        self.message = message
        self.cost_usd = cost_usd


class TransientModelError(ModelCallError):
    """Worth retrying after a pause: 429, 5xx, timeouts, connection resets."""

    def __init__(
        self, message: str, *, retry_after_s: float | None = None, cost_usd: Decimal = Decimal(0),
        rate_limit: RateLimitInfo | None = None, status: int | None = None,
    ) -> None:
        super().__init__(message, cost_usd=cost_usd)
        self.retry_after_s = retry_after_s
        self.rate_limit = rate_limit
        self.status = status


class DeterministicModelError(ModelCallError):
    """Retrying will not help: bad request, unknown model, authentication, unpriced model."""


class ModelClient(Protocol):
    """Port to a chat-completion provider. One call to `complete` is exactly one provider call."""

    async def complete(self, request: ModelRequest) -> ModelResponse: ...

    def worst_case_cost(self, request: ModelRequest, prompt_tokens: int, *,
                        batch: bool = False) -> Decimal | None:
        """Upper bound of the call's cost (at the batch price for a provider batch line), or
        None when the model has no known price."""
        ...

    def count_tokens(self, model: ModelSpec, text: str) -> int: ...
