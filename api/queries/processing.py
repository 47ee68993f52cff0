"""Processing queries: the catalog, batches, fragments, budget."""

from __future__ import annotations

from dataclasses import replace

import strawberry

from api.errors import public
from api.ids import parse_id
from api.loaders import page_read
from api.pagination import build_connection, wants_total
from api.types.enums import BatchStatus
from api.types.processing import (
    Batch,
    BatchConnection,
    Budget,
    Fragment,
    FragmentConnection,
    FragmentFilter,
    FragmentOrder,
    Model,
    prefetch_sources,
    read_budget,
)
from db.catalog import ModelRepository
from db.fragments import list_batches, list_fragments
from db.keyset import validate_page
from db.tables import BatchRow
from domain.errors import DomainError


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
            page = replace(validate_page(first, after, last, before),
                           count=wants_total(info))
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
            page = replace(validate_page(first, after, last, before),
                           count=wants_total(info))
            spec = filter.to_spec() if filter else None
            async with page_read(info.context.runtime, page.count) as session:
                result = await list_fragments(session, spec, str(order.field),
                                              str(order.direction) == "desc", page)
        except DomainError as exc:
            raise public(exc) from None
        await prefetch_sources(info, result.rows, "edges", "node")
        return build_connection(FragmentConnection, result, Fragment.from_row)

    @strawberry.field(description="Today's spend, reservations and remaining budget.")
    async def budget(self, info: strawberry.Info) -> Budget:
        return await read_budget(info)
