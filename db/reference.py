"""People's reference fragments (`reference_fragments`): upsert by (source, external id) and
the read paths (a source's list, keyset pages, the first page of many sources at once)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.keyset import Page, PageRequest, SortKey, encode_cursor, paginate
from db.tables import ReferenceFragmentRow
from domain.reference_import import ReferenceFragmentData

_TABLE = ReferenceFragmentRow.__table__  # type: ignore[attr-defined]
_R = _TABLE.c
# The values a file sets: an upsert that would leave them all as they are writes nothing.
_WRITTEN = tuple(field.name for field in dataclasses.fields(ReferenceFragmentData))
_BATCH = 500  # rows per statement (PostgreSQL binds at most 32767 parameters)
ORDER = SortKey("ID", _R.id, "int")


def _values(source_id: int, item: ReferenceFragmentData, now: datetime) -> dict[str, Any]:
    values = {name: getattr(item, name) for name in _WRITTEN}
    return {**values, "source_id": source_id, "imported_at": now, "updated_at": now}


class ReferenceRepository:
    """Reads and writes `reference_fragments` inside the caller's session and transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def upsert(self, source_id: int, items: Sequence[ReferenceFragmentData],
                     now: datetime) -> tuple[int, int, int]:
        """Insert new ids, update the ones whose values changed (imported_at stays the first
        import's); (created, updated, unchanged)."""
        created = updated = 0
        for start in range(0, len(items), _BATCH):
            batch = [_values(source_id, item, now) for item in items[start:start + _BATCH]]
            statement = insert(_TABLE).values(batch)
            new = statement.excluded
            changed = sa.or_(*(_R[name].is_distinct_from(new[name]) for name in _WRITTEN))
            upsert = statement.on_conflict_do_update(
                index_elements=[_R.source_id, _R.external_id],
                set_={**{name: new[name] for name in _WRITTEN}, "updated_at": new.updated_at},
                where=changed,
            ).returning(sa.literal_column("xmax = 0").label("inserted"))
            rows = (await self.session.execute(upsert)).all()
            inserted = sum(1 for row in rows if row.inserted)
            created += inserted
            updated += len(rows) - inserted
        return created, updated, len(items) - created - updated

    async def of_source(self, source_id: int,
                        external_ids: Sequence[str] | None = None) -> list[ReferenceFragmentRow]:
        """A source's reference fragments (those ids only, when given): grounded ones by
        position, then the others, ties by id."""
        query = sa.select(ReferenceFragmentRow).where(_R.source_id == source_id)
        if external_ids is not None:
            query = query.where(_R.external_id.in_(list(external_ids)))
        query = query.order_by(_R.char_start.asc().nulls_last(), _R.id)
        # Fresh objects: an upsert in this session may have changed rows it had loaded.
        query = query.execution_options(populate_existing=True)
        return list((await self.session.execute(query)).scalars())

    async def get_many(self, ids: Sequence[int]) -> dict[int, ReferenceFragmentRow]:
        if not ids:
            return {}
        rows = await self.session.execute(
            sa.select(ReferenceFragmentRow).where(_R.id.in_(list(ids))))
        return {row.id or 0: row for row in rows.scalars()}


async def reference_page(session: AsyncSession, source_id: int, page: PageRequest) -> Page:
    """A keyset page of a source's reference fragments, in import order (by id)."""
    query = sa.select(ReferenceFragmentRow).where(_R.source_id == source_id)
    return await paginate(session, query, entity_id=_R.id, key=ORDER, descending=False,
                          page=page)


async def first_reference_pages(session: AsyncSession, source_ids: Sequence[int],
                                first: int) -> dict[int, Page]:
    """The first page of reference fragments of each source, in one statement."""
    ranked = sa.select(
        _R.id.label("hit_id"),
        sa.func.row_number().over(partition_by=_R.source_id, order_by=_R.id).label("position"),
        sa.func.count().over(partition_by=_R.source_id).label("total"),
    ).where(_R.source_id.in_(list(source_ids))).subquery("ranked")
    rows = (await session.execute(
        sa.select(ReferenceFragmentRow, ranked.c.position, ranked.c.total)
        .join(ranked, _R.id == ranked.c.hit_id).where(ranked.c.position <= first + 1)
        .order_by(_R.source_id, ranked.c.position))).all()
    order = f"{ORDER.name}:ASC"
    pages = {source_id: Page([], [], False, False, 0) for source_id in source_ids}
    for row, position, total in rows:
        page = pages[row.source_id]
        page.total_count = int(total)
        if position > first:
            page.has_next_page = True
            continue
        page.rows.append(row)
        page.cursors.append(encode_cursor(order, row.id, row.id))
    return pages
