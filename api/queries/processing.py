"""Processing queries: the catalog, batches, fragments, budget."""

from __future__ import annotations

import enum

import strawberry

from api.errors import public
from api.ids import parse_id
from api.mutations.processing import read_budget
from api.pagination import build_connection
from api.types.enums import BatchStatus, OrderDirection
from api.types.processing import (
    Batch,
    BatchConnection,
    Budget,
    Fragment,
    FragmentConnection,
    FragmentFilter,
    Model,
)
from db.catalog import ModelRepository
from db.fragments import FragmentFilterSpec, list_batches, list_fragments
from db.keyset import validate_page
from db.tables import BatchRow
from domain.errors import DomainError, InvalidInput


@strawberry.enum
class FragmentOrderField(enum.StrEnum):
    CREATED_AT = "CREATED_AT"
    POSITION = "POSITION"
    RELEVANCE = "RELEVANCE"
    FRAGMENT_CODE = "FRAGMENT_CODE"


@strawberry.input(description="Sort order of fragments (ties broken by id).")
class FragmentOrder:
    field: FragmentOrderField = FragmentOrderField.POSITION
    direction: OrderDirection = OrderDirection.ASC


def _spec(flt: FragmentFilter | None) -> FragmentFilterSpec | None:
    if flt is None:
        return None

    def ids(value: strawberry.ID | None, kind: str, field: str) -> int | None:
        return None if value is None else parse_id(value, kind, ("filter", field))

    def values(items: list[enum.StrEnum] | None) -> list[str] | None:
        return [str(item) for item in items] if items else None

    for name in ("min_relevance", "max_relevance"):
        value = getattr(flt, name)
        if value is not None and not 1 <= value <= 10:
            raise InvalidInput.single(("filter", name), "must be between 1 and 10")
    return FragmentFilterSpec(
        source_id=ids(flt.source_id, "Source", "sourceId"),
        batch_id=ids(flt.batch_id, "Batch", "batchId"),
        run_id=ids(flt.run_id, "Run", "runId"),
        model=flt.model[:100] if flt.model else None,
        grounding=values(flt.grounding), categories=values(flt.categories),
        fragment_types=values(flt.fragment_types),
        verification_statuses=values(flt.verification_statuses),
        is_complete=flt.is_complete, has_clean_boundaries=flt.has_clean_boundaries,
        min_relevance=flt.min_relevance, max_relevance=flt.max_relevance,
        min_confidence=flt.min_confidence, max_confidence=flt.max_confidence)


@strawberry.type
class ProcessingQueries:
    @strawberry.field(description="The model catalog.")
    async def models(self, info: strawberry.Info, enabled_only: bool = False) -> list[Model]:
        async with info.context.runtime.read() as session:
            rows = await ModelRepository(session).list(enabled_only)
        return [Model.from_row(row) for row in rows]

    @strawberry.field(description="One catalog entry by name; null when absent.")
    async def model(self, info: strawberry.Info, name: str) -> Model | None:
        async with info.context.runtime.read() as session:
            row = await ModelRepository(session).get(name[:100])
        return Model.from_row(row) if row is not None else None

    @strawberry.field(description="A batch by ID; null when absent.")
    async def batch(self, info: strawberry.Info, id: strawberry.ID) -> Batch | None:
        try:
            batch_id = parse_id(id, "Batch", ("id",))
        except DomainError as exc:
            raise public(exc) from None
        async with info.context.runtime.read() as session:
            row = await session.get(BatchRow, batch_id)
        return Batch.from_row(row) if row is not None else None

    @strawberry.field(description="Batches, newest first.")
    async def batches(self, info: strawberry.Info, first: int | None = None,
                      after: str | None = None, last: int | None = None,
                      before: str | None = None, status: list[BatchStatus] | None = None,
                      model: str | None = None) -> BatchConnection:
        try:
            page = validate_page(first, after, last, before)
            async with info.context.runtime.read() as session:
                result = await list_batches(
                    session, status=[str(s) for s in status] if status else None,
                    model=model[:100] if model else None, page=page)
        except DomainError as exc:
            raise public(exc) from None
        return build_connection(BatchConnection, result, Batch.from_row)

    @strawberry.field(description="Fragments, filtered and ordered, paged (first/last ≤ 100).")
    async def fragments(self, info: strawberry.Info, first: int | None = None,
                        after: str | None = None, last: int | None = None,
                        before: str | None = None, filter: FragmentFilter | None = None,
                        order_by: FragmentOrder | None = None) -> FragmentConnection:
        order = order_by or FragmentOrder()
        try:
            page = validate_page(first, after, last, before)
            spec = _spec(filter)
            async with info.context.runtime.read() as session:
                result = await list_fragments(session, spec, str(order.field),
                                              str(order.direction) == "desc", page)
        except DomainError as exc:
            raise public(exc) from None
        return build_connection(FragmentConnection, result, Fragment.from_row)

    @strawberry.field(description="Today's spend, reservations and remaining budget.")
    async def budget(self, info: strawberry.Info) -> Budget:
        return await read_budget(info)
