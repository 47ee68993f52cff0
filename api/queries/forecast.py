"""The forecast query: what a processing request would cost and take (`estimateProcessing`)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from api.errors import NotFound, ValidationError, as_payload
from api.ids import parse_id
from api.types.forecast import EstimateProcessingInput, ProcessingEstimate
from domain.errors import DomainError
from domain.services import forecast

EstimateProcessingResult = Annotated[ProcessingEstimate | ValidationError | NotFound,
                                     strawberry.union("EstimateProcessingResult")]


@strawberry.type
class ForecastQueries:
    @strawberry.field(description="Forecast, per model, the chunks, input tokens (by the "
                                  "model's tokenizer), expected and worst-case output tokens, "
                                  "cost and wall time of processing the sources, and whether "
                                  "today's budget covers the worst case. Nothing is queued.")
    async def estimate_processing(self, info: strawberry.Info,
                                  input: EstimateProcessingInput) -> EstimateProcessingResult:
        try:
            ids = [parse_id(value, "Source", ("input", "sourceIds", str(index)))
                   for index, value in enumerate(input.source_ids)]
            found = await forecast.estimate_processing(
                info.context.runtime.ports, source_ids=ids, model_names=input.models,
                strategy=None if input.strategy is None else str(input.strategy),
                mode=str(input.mode))
            return ProcessingEstimate.of(found)
        except DomainError as exc:
            payload = as_payload(exc)
            assert isinstance(payload, (ValidationError, NotFound)), payload
            return payload
