"""Source queries: by id, by code, and the filtered, ordered connection."""

from __future__ import annotations

from dataclasses import replace

import strawberry

from api.errors import public
from api.ids import parse_id
from api.pagination import build_connection, wants_total
from api.types.enums import OrderDirection
from api.types.source import Source, SourceConnection, SourceFilter, SourceOrder
from db.keyset import validate_page
from db.sources import SourceRepository
from domain.errors import DomainError


@strawberry.type
class SourceQueries:
    @strawberry.field(description="A source by ID (global or numeric); null when absent.")
    async def source(self, info: strawberry.Info, id: strawberry.ID) -> Source | None:
        try:
            source_id = parse_id(id, "Source", ("id",))
        except DomainError as exc:
            raise public(exc) from None
        row = await info.context.loaders.source.load(source_id)
        return Source.from_row(row) if row is not None else None

    @strawberry.field(description="A source by its unique code; null when absent.")
    async def source_by_code(self, info: strawberry.Info, code: str) -> Source | None:
        async with info.context.runtime.read() as session:
            row = await SourceRepository(session).get_by_code(code[:100])
        return Source.from_row(row) if row is not None else None

    @strawberry.field(description="Sources, filtered and ordered, paged (first/last ≤ 100).")
    async def sources(
        self,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: SourceFilter | None = None,
        order_by: SourceOrder | None = None,
    ) -> SourceConnection:
        order = order_by or SourceOrder()
        try:
            page = replace(validate_page(first, after, last, before),
                           count=wants_total(info))
            async with info.context.runtime.read() as session:
                result = await SourceRepository(session).list(
                    filter.to_spec() if filter else None,
                    str(order.field),
                    order.direction == OrderDirection.DESC,
                    page,
                    with_content=False,
                )
        except DomainError as exc:
            raise public(exc) from None
        return build_connection(SourceConnection, result, Source.from_row)
