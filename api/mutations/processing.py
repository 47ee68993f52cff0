"""Processing mutations: the catalog, starting and steering batches, budgets."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import strawberry

from api.errors import Conflict, NotFound, ValidationError, as_payload
from api.ids import parse_id
from api.types.enums import ProcessingMode, Strategy
from api.types.processing import Batch, Budget, Model, Run, read_budget
from domain.errors import DomainError, InvalidInput
from domain.services import catalog, processing


@strawberry.input
class RegisterModelInput:
    name: str = strawberry.field(description="Catalog name used in processing requests.")
    litellm_model: str = strawberry.field(
        description="LiteLLM model string, e.g. gpt-4o-mini or openai/<name> with apiBase.")
    api_base: str | None = strawberry.field(
        default=None, description="Any OpenAI-compatible server (vLLM, Ollama, a proxy), with "
                                  "litellmModel openai/<name>. It must be on "
                                  "MMOS_ALLOWED_API_BASES; link-local and cloud metadata "
                                  "addresses are always refused.")
    api_key_env: str | None = strawberry.field(
        default=None, description="The environment variable on the workers holding this "
                                  "model's own key (e.g. LOCAL_LLAMA_API_KEY). A model with an "
                                  "apiBase gets this key or none, never a provider's default.")
    input_cost_per_million: Decimal | None = strawberry.field(
        default=None, description="USD; defaults to LiteLLM's bundled price when known.")
    output_cost_per_million: Decimal | None = None
    cache_read_cost_per_million: Decimal | None = strawberry.field(
        default=None, description="USD per million cached input tokens; defaults to "
                                  "LiteLLM's cache-read price, else the input price.")
    cache_write_cost_per_million: Decimal | None = strawberry.field(
        default=None, description="USD per million tokens written to the prompt cache; "
                                  "defaults to LiteLLM's, else the input price.")
    batch_discount: Decimal | None = strawberry.field(
        default=None, description="Share batch mode takes off every price, in [0, 1); "
                                  "defaults to LiteLLM's batch prices, else the provider's "
                                  "MMOS_BATCH_DISCOUNTS entry.")
    context_window: int | None = None
    max_output_tokens: int | None = None
    rpm: int | None = strawberry.field(
        default=None, description="Requests per minute the provider allows this model (per "
                                  "key, across every worker); null for no limit.")
    tpm: int | None = strawberry.field(
        default=None, description="Input plus output tokens per minute; null for no limit.")
    max_concurrency: int | None = strawberry.field(
        default=None, description="Calls in flight at once, across every worker; null for "
                                  "no limit.")
    notes: str | None = None


@strawberry.input
class UpdateModelInput:
    name: str
    litellm_model: str | None = strawberry.UNSET
    api_base: str | None = strawberry.UNSET
    api_key_env: str | None = strawberry.UNSET
    input_cost_per_million: Decimal | None = strawberry.UNSET
    output_cost_per_million: Decimal | None = strawberry.UNSET
    cache_read_cost_per_million: Decimal | None = strawberry.UNSET
    cache_write_cost_per_million: Decimal | None = strawberry.UNSET
    batch_discount: Decimal | None = strawberry.UNSET
    context_window: int | None = strawberry.UNSET
    max_output_tokens: int | None = strawberry.UNSET
    rpm: int | None = strawberry.field(default=strawberry.UNSET,
                                       description="Null clears the limit.")
    tpm: int | None = strawberry.field(default=strawberry.UNSET,
                                       description="Null clears the limit.")
    max_concurrency: int | None = strawberry.field(default=strawberry.UNSET,
                                                   description="Null clears the limit.")
    enabled: bool | None = strawberry.UNSET
    notes: str | None = strawberry.UNSET


@strawberry.input
class StartMultiModelProcessingInput:
    source_id: strawberry.ID
    models: list[str]
    budget_usd: Decimal | None = strawberry.field(
        default=None, description="Optional cap for each batch, on top of the daily budget.")
    mode: ProcessingMode = strawberry.field(
        default=ProcessingMode.INTERACTIVE,
        description="BATCH submits the chunks through the provider's batch API; refused, "
                    "naming the model, for providers without one.")


@strawberry.input
class ProcessBatchInput:
    source_ids: list[strawberry.ID]
    models: list[str]
    strategy: Strategy = strawberry.field(default=Strategy.PROGRESSIVE)
    budget_usd: Decimal | None = None
    mode: ProcessingMode = strawberry.field(
        default=ProcessingMode.INTERACTIVE,
        description="For every batch the strategy starts (see startMultiModelProcessing).")


@strawberry.input
class CancelBatchInput:
    batch_id: strawberry.ID


@strawberry.input
class RetryRunInput:
    run_id: strawberry.ID
    failed_chunks_only: bool = strawberry.field(
        default=False,
        description="Call again only the chunks whose answers stayed unreadable (the way to "
                    "retry a run that completed with errors); done chunks are never paid "
                    "for twice either way.")


@strawberry.input
class ReprocessRunInput:
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
class ReprocessRunPayload:
    run: Run = strawberry.field(description="The new run version, queued; the old run stays.")


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
ReprocessRunResult = _union("ReprocessRunResult", ReprocessRunPayload)
SetBudgetResult = _union("SetBudgetResult", SetBudgetPayload)


def _ports(info: strawberry.Info) -> Any:
    return info.context.runtime.ports


async def _batches(info: strawberry.Info, ids: list[int]) -> list[Batch]:
    return [Batch.from_row(row) for row in await processing.batches(_ports(info), ids)]


@strawberry.type
class ProcessingMutations:
    @strawberry.mutation(description="Add a model to the catalog (any LiteLLM model string).")
    async def register_model(self, info: strawberry.Info,
                             input: RegisterModelInput) -> RegisterModelResult:
        try:
            row = await catalog.register_model(_ports(info), vars(input))
            return RegisterModelPayload(model=Model.from_row(row))
        except DomainError as exc:
            return as_payload(exc)

    @strawberry.mutation(description="Change a catalog entry: prices, limits, enabled.")
    async def update_model(self, info: strawberry.Info,
                           input: UpdateModelInput) -> UpdateModelResult:
        try:
            raw = {k: v for k, v in vars(input).items() if v is not strawberry.UNSET}
            name = raw.pop("name")
            row = await catalog.update_model(_ports(info), name, raw)
            return UpdateModelPayload(model=Model.from_row(row))
        except DomainError as exc:
            return as_payload(exc)

    @strawberry.mutation(description="Run one source through several models: a batch each.")
    async def start_multi_model_processing(
            self, info: strawberry.Info, input: StartMultiModelProcessingInput
    ) -> StartMultiModelProcessingResult:
        try:
            source_id = parse_id(input.source_id, "Source", ("input", "sourceId"))
            started = await processing.start_processing(
                _ports(info), source_ids=[source_id], model_names=input.models,
                strategy=None, budget_usd=input.budget_usd, mode=str(input.mode))
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
            started = await processing.start_processing(
                _ports(info), source_ids=ids, model_names=input.models,
                strategy=str(input.strategy), budget_usd=input.budget_usd,
                mode=str(input.mode))
            return ProcessBatchPayload(batches=await _batches(info, started.batch_ids))
        except DomainError as exc:
            return as_payload(exc)

    @strawberry.mutation(description="Stop a batch; finished runs and their fragments stay.")
    async def cancel_batch(self, info: strawberry.Info,
                           input: CancelBatchInput) -> CancelBatchResult:
        try:
            batch_id = parse_id(input.batch_id, "Batch", ("input", "batchId"))
            row = await processing.cancel_batch(_ports(info), batch_id)
            return CancelBatchPayload(batch=Batch.from_row(row))
        except DomainError as exc:
            return as_payload(exc)

    @strawberry.mutation(description="Run again a failed, stopped or skipped run, or only "
                                     "the failed chunks of a run (failedChunksOnly).")
    async def retry_run(self, info: strawberry.Info, input: RetryRunInput) -> RetryRunResult:
        try:
            run_id = parse_id(input.run_id, "Run", ("input", "runId"))
            row = await processing.retry_run(_ports(info), run_id,
                                             failed_chunks_only=input.failed_chunks_only)
            return RetryRunPayload(run=Run.from_row(row))
        except DomainError as exc:
            return as_payload(exc)

    @strawberry.mutation(description="Read a finished run again from the model's stored "
                                     "answers (after a parser or grounder upgrade) into a new "
                                     "run version: no provider call, no spend. The old run "
                                     "is kept for comparison.")
    async def reprocess_run(
            self, info: strawberry.Info,
            run_id: Annotated[strawberry.ID | None, strawberry.argument(
                description="The run to read again (or give input.runId).")] = None,
            input: ReprocessRunInput | None = None) -> ReprocessRunResult:
        try:
            if (run_id is None) == (input is None):
                raise InvalidInput.single(("runId",), "give the run as runId or as "
                                                      "input.runId, once")
            path = ("runId",) if input is None else ("input", "runId")
            raw = str(run_id) if input is None else input.run_id
            row = await processing.reprocess_run(_ports(info), parse_id(raw, "Run", path),
                                                 path=path)
            return ReprocessRunPayload(run=Run.from_row(row))
        except DomainError as exc:
            return as_payload(exc)

    @strawberry.mutation(description="Set today's and every following day's budget (UTC).")
    async def set_daily_budget(self, info: strawberry.Info,
                               input: SetAmountInput) -> SetBudgetResult:
        try:
            resumed = await processing.set_daily_budget(_ports(info), input.amount_usd,
                                                        info.context.principal.name)
            return SetBudgetPayload(budget=await read_budget(info), resumed_runs=resumed)
        except DomainError as exc:
            return as_payload(exc)

    @strawberry.mutation(description="Set the cost limit per grounded fragment.")
    async def set_fragment_cost_limit(self, info: strawberry.Info,
                                      input: SetAmountInput) -> SetBudgetResult:
        try:
            await processing.set_fragment_cost_limit(_ports(info), input.amount_usd,
                                                     info.context.principal.name)
            return SetBudgetPayload(budget=await read_budget(info), resumed_runs=0)
        except DomainError as exc:
            return as_payload(exc)
