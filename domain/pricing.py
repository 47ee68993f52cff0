"""What one call costs, to the last decimal, and what each cost lever saved.

Pure Decimal arithmetic, no framework. Rates are USD per million tokens. A call's prompt
tokens split three ways: read from the provider's prompt cache (`cached_tokens`), written to
it (`cache_write_tokens`, Anthropic), and the rest, uncached. Each kind is billed at its own
rate; batch mode bills every kind at the batch rates. Beside the cost, the list cost (the same
usage interactive and uncached) and what caching and batch mode saved against it, so that

    cost_usd = list_cost_usd - cache_saved_usd - batch_saved_usd

exactly, per call and so for any sum of calls. Every figure is rounded once, half away from
zero, to 8 decimals (NUMERIC(18,8), PostgreSQL's rounding): the ledger stores them as priced.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext

MILLION = Decimal(1_000_000)
CENT_OF_A_MICRO = Decimal("0.00000001")  # 8 decimals: the ledger's scale
ZERO = Decimal(0)
DEFAULT_BATCH_DISCOUNTS = "openai=0.5,anthropic=0.5,azure=0.5,vertex_ai=0.5,bedrock=0.5"


def money(value: Decimal) -> Decimal:
    """`value` rounded to the ledger's 8 decimals, half away from zero (as PostgreSQL does)."""
    return value.quantize(CENT_OF_A_MICRO, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per million tokens of each kind. Unknown cache rates are the input rate: no
    discount is assumed that the provider does not publish."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None

    def __post_init__(self) -> None:
        if self.cache_read is None:
            object.__setattr__(self, "cache_read", self.input)
        if self.cache_write is None:
            object.__setattr__(self, "cache_write", self.input)

    @property
    def read(self) -> Decimal:
        return self.input if self.cache_read is None else self.cache_read

    @property
    def write(self) -> Decimal:
        return self.input if self.cache_write is None else self.cache_write

    @property
    def dearest_input(self) -> Decimal:
        """The highest rate a prompt token can be billed at (a cache write may cost more
        than plain input): what a worst-case reservation prices prompt tokens at."""
        return max(self.input, self.read, self.write)


@dataclass(frozen=True, slots=True)
class CallUsage:
    """One call's tokens. `prompt_tokens` is the provider's whole prompt count as LiteLLM
    normalises it: cache reads and cache writes included (for Anthropic LiteLLM adds them to
    `input_tokens`, which excludes them)."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    cache_write_tokens: int = 0

    def __post_init__(self) -> None:
        counts = (self.prompt_tokens, self.completion_tokens, self.cached_tokens,
                  self.cache_write_tokens)
        if any(count < 0 for count in counts):
            raise ValueError(f"token counts cannot be negative: {counts}")
        if self.cached_tokens + self.cache_write_tokens > self.prompt_tokens:
            raise ValueError(
                f"{self.cached_tokens} cached + {self.cache_write_tokens} cache-write tokens "
                f"exceed the {self.prompt_tokens} prompt tokens")

    @property
    def uncached_tokens(self) -> int:
        return self.prompt_tokens - self.cached_tokens - self.cache_write_tokens


@dataclass(frozen=True, slots=True)
class CallCost:
    """A call's cost and its split against the list cost (each rounded to 8 decimals)."""

    cost_usd: Decimal
    list_cost_usd: Decimal
    cache_saved_usd: Decimal = ZERO
    batch_saved_usd: Decimal = ZERO

    @classmethod
    def unsplit(cls, cost_usd: Decimal) -> CallCost:
        """A cost with no lever behind it (a failed call's charge): list = cost."""
        return cls(cost_usd, cost_usd)


ZERO_COST = CallCost(ZERO, ZERO)


def _billed(usage: CallUsage, rates: Rates) -> Decimal:
    return (Decimal(usage.uncached_tokens) * rates.input
            + Decimal(usage.cached_tokens) * rates.read
            + Decimal(usage.cache_write_tokens) * rates.write
            + Decimal(usage.completion_tokens) * rates.output) / MILLION


def price(usage: CallUsage, rates: Rates, *, batch_rates: Rates | None = None) -> CallCost:
    """The exact cost of `usage` at `rates` (interactive) or at `batch_rates` (batch mode),
    with the list cost (every prompt token at the interactive input rate) and the savings:
    caching saved list − interactive cost, batch mode interactive − batch cost."""
    with localcontext() as context:
        context.prec = 60  # products of integers and prices stay exact before the rounding
        listed = money((Decimal(usage.prompt_tokens) * rates.input
                        + Decimal(usage.completion_tokens) * rates.output) / MILLION)
        interactive = money(_billed(usage, rates))
        cost = interactive if batch_rates is None else money(_billed(usage, batch_rates))
        return CallCost(cost_usd=cost, list_cost_usd=listed,
                        cache_saved_usd=listed - interactive, batch_saved_usd=interactive - cost)


def worst_case(rates: Rates, prompt_tokens: int, max_output_tokens: int) -> Decimal:
    """Upper bound of a call's cost: every prompt token at its dearest rate, all of
    max_tokens used (exact, unrounded: a reservation may only be too high)."""
    return (Decimal(prompt_tokens) * rates.dearest_input
            + Decimal(max_output_tokens) * rates.output) / MILLION


# ---------------------------------------------------------------------------------------------
# Batch mode.


@dataclass(frozen=True, slots=True)
class ListedPrices:
    """A price map's per-million prices for one model, None where it has none."""

    input: Decimal | None = None
    output: Decimal | None = None
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    input_batch: Decimal | None = None
    output_batch: Decimal | None = None
    cache_read_batch: Decimal | None = None
    cache_write_batch: Decimal | None = None


@dataclass(frozen=True, slots=True)
class _Kind:
    rate: Decimal
    listed: Decimal | None
    listed_batch: Decimal | None


def _from_listing(kind: _Kind) -> Decimal | None:
    """The batch rate the map implies for a rate: the map's own batch price when the rate is
    the map's, else the rate scaled by the map's batch factor; None when the map has none."""
    if kind.listed_batch is None or kind.listed is None:
        return None
    if kind.rate == kind.listed:
        return kind.listed_batch
    if kind.listed == 0:
        return None
    return kind.rate * kind.listed_batch / kind.listed


def batch_rates(rates: Rates, *, listed: ListedPrices | None = None,
                model_discount: Decimal | None = None,
                provider_discount: Decimal | None = None) -> Rates | None:
    """The batch-mode rates of a model whose interactive rates are `rates`.

    A model's own `batch_discount` applies to every kind. Otherwise the price map's batch
    prices where it has them (`*_batches`), else the provider's default discount; cache reads
    and writes the map does not price in batch mode take the input's batch factor. None when
    neither the map nor a discount says what batch mode costs.
    """
    if model_discount is not None:
        factor = 1 - model_discount
        return Rates(rates.input * factor, rates.output * factor, rates.read * factor,
                     rates.write * factor)
    listed = listed or ListedPrices()
    fallback = None if provider_discount is None else 1 - provider_discount
    batch_input = _from_listing(_Kind(rates.input, listed.input, listed.input_batch))
    if batch_input is None and fallback is not None:
        batch_input = rates.input * fallback
    batch_output = _from_listing(_Kind(rates.output, listed.output, listed.output_batch))
    if batch_output is None and fallback is not None:
        batch_output = rates.output * fallback
    if batch_input is None or batch_output is None:
        return None
    input_factor = batch_input / rates.input if rates.input else fallback
    if input_factor is None:
        input_factor = Decimal(1)

    def cache(rate: Decimal, listed_rate: Decimal | None,
              listed_batch: Decimal | None) -> Decimal:
        found = _from_listing(_Kind(rate, listed_rate, listed_batch))
        return found if found is not None else rate * input_factor

    return Rates(batch_input, batch_output,
                 cache(rates.read, listed.cache_read, listed.cache_read_batch),
                 cache(rates.write, listed.cache_write, listed.cache_write_batch))


def effective_discount(rates: Rates, batch: Rates | None) -> Decimal | None:
    """The share of the input price batch mode takes off (None without batch rates)."""
    if batch is None or not rates.input:
        return None
    return (1 - batch.input / rates.input).normalize()


def parse_batch_discounts(text: str | None) -> dict[str, Decimal]:
    """`openai=0.5,anthropic=0.5` → {provider: discount}; ValueError naming the bad entry.
    Each discount is in [0, 1); an empty text means no provider has a default."""
    found: dict[str, Decimal] = {}
    for raw in (text or "").split(","):
        entry = raw.strip()
        if not entry:
            continue
        provider, sep, value = entry.partition("=")
        provider, value = provider.strip(), value.strip()
        if not sep or not provider or not value:
            raise ValueError(f"MMOS_BATCH_DISCOUNTS: {entry!r} is not provider=discount")
        if not provider.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"MMOS_BATCH_DISCOUNTS: {provider!r} is not a provider name")
        try:
            discount = Decimal(value)
        except InvalidOperation:
            raise ValueError(f"MMOS_BATCH_DISCOUNTS: the discount of {provider} ({value!r}) "
                             "is not a number") from None
        if not discount.is_finite() or not 0 <= discount < 1:
            raise ValueError(f"MMOS_BATCH_DISCOUNTS: the discount of {provider} ({value}) "
                             "must be at least 0 and below 1")
        if provider.lower() in found:
            raise ValueError(f"MMOS_BATCH_DISCOUNTS: {provider} is given twice")
        found[provider.lower()] = discount
    return found

