"""Processing mutations: the catalog, starting and steering batches, budgets."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import strawberry

from api import services
from api.errors import Conflict, NotFound, ValidationError, as_payload
from api.ids import parse_id
from api.types.enums import Strategy
from api.types.processing import Batch, Budget, Model, Run
from db.budget import BudgetLedger
from db.catalog import ModelRepository
from db.settings_store import DAILY_BUDGET, FRAGMENT_COST_LIMIT, SettingsStore
from db.tables import BatchRow
from domain.errors import DomainError, FieldIssue, InvalidInput

MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,99}$")
LITELLM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$")
MAX_PRICE = Decimal(10_000)


@strawberry.input
class RegisterModelInput:
    name: str = strawberry.field(description="Catalog name used in processing requests.")
    litellm_model: str = strawberry.field(
        description="LiteLLM model string, e.g. gpt-4o-mini or openai/<name> with apiBase.")
    api_base: str | None = strawberry.field(
        default=None, description="Any OpenAI-compatible server (vLLM, Ollama, a proxy).")
    input_cost_per_million: Decimal | None = strawberry.field(
        default=None, description="USD; defaults to LiteLLM's bundled price when known.")
    output_cost_per_million: Decimal | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None
    notes: str | None = None


@strawberry.input
class UpdateModelInput:
    name: str
    litellm_model: str | None = strawberry.UNSET
    api_base: str | None = strawberry.UNSET
    input_cost_per_million: Decimal | None = strawberry.UNSET
    output_cost_per_million: Decimal | None = strawberry.UNSET
    context_window: int | None = strawberry.UNSET
    max_output_tokens: int | None = strawberry.UNSET
    enabled: bool | None = strawberry.UNSET
    notes: str | None = strawberry.UNSET


@strawberry.input
class StartMultiModelProcessingInput:
    source_id: strawberry.ID
    models: list[str]
    budget_usd: Decimal | None = strawberry.field(
        default=None, description="Optional cap for each batch, on top of the daily budget.")


@strawberry.input
class ProcessBatchInput:
    source_ids: list[strawberry.ID]
    models: list[str]
    strategy: Strategy = strawberry.field(default=Strategy.PROGRESSIVE)
    budget_usd: Decimal | None = None


@strawberry.input
class CancelBatchInput:
    batch_id: strawberry.ID


@strawberry.input
class RetryRunInput:
    run_id: strawberry.ID


@strawberry.input
class SetAmountInput:
    amount_usd: Decimal | None = strawberry.field(description="Null removes the limit.")


@strawberry.type
class RegisterModelPayload:
    model: Model


@strawberry.type
class UpdateModelPayload:
    model: Model


@strawberry.type
class StartMultiModelProcessingPayload:
    batches: list[Batch]


@strawberry.type
class ProcessBatchPayload:
    batches: list[Batch]


@strawberry.type
class CancelBatchPayload:
    batch: Batch


@strawberry.type
class RetryRunPayload:
    run: Run


@strawberry.type
class SetBudgetPayload:
    budget: Budget
    resumed_runs: int = strawberry.field(description="Runs that were waiting and now resume.")


def _union(name: str, payload: type) -> Any:
    return Annotated[payload | ValidationError | NotFound | Conflict, strawberry.union(name)]


RegisterModelResult = _union("RegisterModelResult", RegisterModelPayload)
UpdateModelResult = _union("UpdateModelResult", UpdateModelPayload)
StartMultiModelProcessingResult = _union("StartMultiModelProcessingResult",
                                         StartMultiModelProcessingPayload)
ProcessBatchResult = _union("ProcessBatchResult", ProcessBatchPayload)
CancelBatchResult = _union("CancelBatchResult", CancelBatchPayload)
RetryRunResult = _union("RetryRunResult", RetryRunPayload)
SetBudgetResult = _union("SetBudgetResult", SetBudgetPayload)


def _price(value: Any, field: str, issues: list[FieldIssue]) -> Decimal | None:
    if value is None:
        return None
    try:
        price = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        issues.append(FieldIssue(("input", field), "must be a decimal number"))
        return None
    if not price.is_finite() or price < 0 or price > MAX_PRICE:
        issues.append(FieldIssue(("input", field), f"must be between 0 and {MAX_PRICE}"))
        return None
    return price


def _model_values(raw: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    issues: list[FieldIssue] = []
    values: dict[str, Any] = {}
    if creating:
        name = (raw.get("name") or "").strip()
        if not MODEL_NAME_RE.match(name):
            issues.append(FieldIssue(("input", "name"), "must be 1-100 characters of letters, "
                                     "digits and . _ : / @ -"))
        values["name"] = name
    if "litellm_model" in raw:
        model = (raw["litellm_model"] or "").strip()
        if not LITELLM_RE.match(model):
            issues.append(FieldIssue(("input", "litellmModel"), "must be a LiteLLM model "
                                     "string such as gpt-4o-mini or openai/my-model"))
        values["litellm_model"] = model
    if "api_base" in raw:
        base = (raw["api_base"] or "").strip() or None
        if base is not None and not re.match(r"^https?://[^\s]{1,490}$", base):
            issues.append(FieldIssue(("input", "apiBase"), "must be an http(s) URL"))
        values["api_base"] = base
    for key, field in (("input_cost_per_million", "inputCostPerMillion"),
                       ("output_cost_per_million", "outputCostPerMillion")):
        if key in raw:
            values[key] = _price(raw[key], field, issues)
    for key, field, top in (("context_window", "contextWindow", 10_000_000),
                            ("max_output_tokens", "maxOutputTokens", 1_000_000)):
        if key in raw and raw[key] is not None:
            if not 256 <= raw[key] <= top:
                issues.append(FieldIssue(("input", field), f"must be between 256 and {top}"))
            values[key] = raw[key]
    if "enabled" in raw and raw["enabled"] is not None:
        values["enabled"] = raw["enabled"]
    if "notes" in raw:
        values["notes"] = (raw["notes"] or "")[:2000] or None
    if issues:
        raise InvalidInput(issues)
    return values


async def _budget(info: strawberry.Info, session: Any) -> Budget:
    settings = info.context.runtime.settings
    ledger = BudgetLedger(session, settings.daily_budget_usd, settings.fragment_cost_limit_usd)
    state = await ledger.state()
    return Budget(day=state.day, limit_usd=state.limit_usd, spent_usd=state.spent_usd,
                  reserved_usd=state.reserved_usd, remaining_usd=state.remaining_usd,
                  fragment_cost_limit_usd=await ledger.fragment_cost_limit())


async def read_budget(info: strawberry.Info) -> Budget:
    async with info.context.runtime.read() as session:
        return await _budget(info, session)


def _amount(value: Decimal | None) -> Decimal | None:
    if value is None:
        return None
    if not value.is_finite() or value < 0 or value > Decimal(1_000_000):
        raise InvalidInput.single(("input", "amountUsd"), "must be between 0 and 1000000")
    return value


async def _store_amount(info: strawberry.Info, key: str, value: Decimal | None) -> None:
    """Validate and store an operator-set amount (null removes the limit), by whom."""
    amount = _amount(value)
    async with info.context.runtime.transaction() as session:
        await SettingsStore(session).put(key, None if amount is None else str(amount),
                                         info.context.principal.name)


async def _batches(info: strawberry.Info, ids: list[int]) -> list[Batch]:
    async with info.context.runtime.read() as session:
        rows = [await session.get(BatchRow, batch_id) for batch_id in ids]
    return [Batch.from_row(row) for row in rows if row is not None]


@strawberry.type
class ProcessingMutations:
    @strawberry.mutation(description="Add a model to the catalog (any LiteLLM model string).")
    async def register_model(self, info: strawberry.Info,
                             input: RegisterModelInput) -> RegisterModelResult:
        try:
            values = _model_values(vars(input), creating=True)
            from workers.price_map import bundled_limits, bundled_price

            bundled = bundled_price(values["litellm_model"])
            given = (values.get("input_cost_per_million"), values.get("output_cost_per_million"))
            if given[0] is not None and given[1] is not None:
                values["price_source"] = "override"
            elif given[0] is None and given[1] is None and bundled is not None:
                values["input_cost_per_million"], values["output_cost_per_million"] = bundled
                values["price_source"] = "litellm"
            elif given[0] is not None or given[1] is not None:
                raise InvalidInput.single(("input", "outputCostPerMillion" if given[0] is not None
                                           else "inputCostPerMillion"),
                                          "give both prices, or neither to use LiteLLM's")
            else:
                values["price_source"] = "none"
            window, output = bundled_limits(values["litellm_model"])
            values["context_window"] = values.get("context_window") or window or 8192
            values["max_output_tokens"] = values.get("max_output_tokens") or output or 4096
            async with info.context.runtime.transaction() as session:
                row = await ModelRepository(session).register(values)
            return RegisterModelPayload(model=Model.from_row(row))
        except DomainError as exc:
            return as_payload(exc)

    @strawberry.mutation(description="Change a catalog entry: prices, limits, enabled.")
    async def update_model(self, info: strawberry.Info,
                           input: UpdateModelInput) -> UpdateModelResult:
        try:
            raw = {k: v for k, v in vars(input).items() if v is not strawberry.UNSET}
            name = raw.pop("name")
            values = _model_values(raw, creating=False)
            if not values:
                raise InvalidInput.single(("input",), "names no field to change")
            if "input_cost_per_million" in values or "output_cost_per_million" in values:
                values["price_source"] = "override"
            async with info.context.runtime.transaction() as session:
                repository = ModelRepository(session)
                current = await repository.require(name, ("input", "name"))
                merged_in = values.get("input_cost_per_million",
                                       current.input_cost_per_million)
                merged_out = values.get("output_cost_per_million",
                                        current.output_cost_per_million)
                if (merged_in is None) != (merged_out is None):
                    raise InvalidInput.single(("input", "outputCostPerMillion"),
                                              "set both prices, or clear both")
                if merged_in is None:
                    values["price_source"] = "none"
                row = await repository.update(name, values)
            return UpdateModelPayload(model=Model.from_row(row))
        except DomainError as exc:
            return as_payload(exc)

    @strawberry.mutation(description="Run one source through several models: a batch each.")
    async def start_multi_model_processing(
            self, info: strawberry.Info, input: StartMultiModelProcessingInput
    ) -> StartMultiModelProcessingResult:
        try:
            source_id = parse_id(input.source_id, "Source", ("input", "sourceId"))
            started = await services.start_processing(
                info.context.runtime, source_ids=[source_id], model_names=input.models,
                strategy=None, budget_usd=input.budget_usd)
            return StartMultiModelProcessingPayload(
                batches=await _batches(info, started.batch_ids))
        except DomainError as exc:
            return as_payload(exc)

    @strawberry.mutation(description="Process many sources with the candidate models; the "
                                     "strategy decides which models run where.")
    async def process_batch(self, info: strawberry.Info,
                            input: ProcessBatchInput) -> ProcessBatchResult:
        try:
            ids = [parse_id(value, "Source", ("input", "sourceIds", str(index)))
                   for index, value in enumerate(input.source_ids)]
            if not ids:
                raise InvalidInput.single(("input", "sourceIds"), "must not be empty")
            started = await services.start_processing(
                info.context.runtime, source_ids=ids, model_names=input.models,
                strategy=str(input.strategy), budget_usd=input.budget_usd)
            return ProcessBatchPayload(batches=await _batches(info, started.batch_ids))
        except DomainError as exc:
            return as_payload(exc)

    @strawberry.mutation(description="Stop a batch; finished runs and their fragments stay.")
    async def cancel_batch(self, info: strawberry.Info,
                           input: CancelBatchInput) -> CancelBatchResult:
        try:
            batch_id = parse_id(input.batch_id, "Batch", ("input", "batchId"))
            row = await services.cancel_batch(info.context.runtime, batch_id)
            return CancelBatchPayload(batch=Batch.from_row(row))
        except DomainError as exc:
            return as_payload(exc)

    @strawberry.mutation(description="Run again a failed, stopped or skipped run.")
    async def retry_run(self, info: strawberry.Info, input: RetryRunInput) -> RetryRunResult:
        try:
            run_id = parse_id(input.run_id, "Run", ("input", "runId"))
            row = await services.retry_run(info.context.runtime, run_id)
            return RetryRunPayload(run=Run.from_row(row))
        except DomainError as exc:
            return as_payload(exc)

    @strawberry.mutation(description="Set today's and every following day's budget (UTC).")
    async def set_daily_budget(self, info: strawberry.Info,
                               input: SetAmountInput) -> SetBudgetResult:
        try:
            await _store_amount(info, DAILY_BUDGET, input.amount_usd)
            resumed = await services.resume_budget_waiters(info.context.runtime)
            return SetBudgetPayload(budget=await read_budget(info), resumed_runs=resumed)
        except DomainError as exc:
            return as_payload(exc)

    @strawberry.mutation(description="Set the cost limit per grounded fragment.")
    async def set_fragment_cost_limit(self, info: strawberry.Info,
                                      input: SetAmountInput) -> SetBudgetResult:
        try:
            await _store_amount(info, FRAGMENT_COST_LIMIT, input.amount_usd)
            return SetBudgetPayload(budget=await read_budget(info), resumed_runs=0)
        except DomainError as exc:
            return as_payload(exc)
