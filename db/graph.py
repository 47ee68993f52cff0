"""The fragment graph in SQL: tags, relationships, verification decisions, per-source pages,
and the reporting views. Every `*_of_*` function answers a whole batch of keys in one statement
(they back the per-request DataLoaders)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from db.fragments import (
    FRAGMENT_COLUMNS,
    FRAGMENT_SORT,
    FragmentFilterSpec,
    apply_fragment_filter,
)
from db.keyset import Page, encode_cursor
from db.tables import (
    FragmentRow,
    FragmentTagRow,
    RelationshipRow,
    TagRow,
    VerificationEventRow,
)
from domain.errors import Conflict, NotFound
from domain.model import RelationshipType
from domain.relationships import SYMMETRIC_TYPES

_F = FragmentRow.__table__.c  # type: ignore[attr-defined]
_T = TagRow.__table__.c  # type: ignore[attr-defined]
_FT = FragmentTagRow.__table__.c  # type: ignore[attr-defined]
_R = RelationshipRow.__table__.c  # type: ignore[attr-defined]
_V = VerificationEventRow.__table__.c  # type: ignore[attr-defined]
_NO_VECTOR = defer(FragmentRow.search_vector)  # type: ignore[arg-type]


def _fragments() -> sa.Select[Any]:
    return sa.select(FragmentRow).options(_NO_VECTOR)


async def fragments_by_id(session: AsyncSession, ids: Sequence[int]) -> dict[int, FragmentRow]:
    """Fragments by id (absent ids are missing from the answer)."""
    rows = await session.execute(_fragments().where(_F.id.in_(ids)))
    return {row.id: row for row in rows.scalars()}


async def require_fragments(session: AsyncSession, wanted: dict[int, tuple[str, ...]], *,
                            lock: bool = False) -> dict[int, FragmentRow]:
    """The fragments of `wanted` (id → input path), or NotFound at the first missing one.

    With `lock`, the rows are locked (id order) until the transaction ends: writers that must
    see each other's links, such as two people relating the same pair, take turns.
    """
    query = _fragments().where(_F.id.in_(list(wanted))).order_by(_F.id)
    if lock:
        query = query.with_for_update(key_share=True)  # FOR NO KEY UPDATE
    found = {row.id: row for row in (await session.execute(query)).scalars()}
    for fragment_id, path in wanted.items():
        if fragment_id not in found:
            raise NotFound("Fragment", fragment_id, path)
    return found


# Tags


async def tags_of_fragments(session: AsyncSession,
                            ids: Sequence[int]) -> dict[int, list[TagRow]]:
    """Each fragment's tags, by name."""
    rows = await session.execute(
        sa.select(_FT.fragment_id, TagRow).join(TagRow, _T.id == _FT.tag_id)
        .where(_FT.fragment_id.in_(ids)).order_by(_FT.fragment_id, _T.name))
    grouped: dict[int, list[TagRow]] = defaultdict(list)
    for fragment_id, tag in rows.all():
        grouped[fragment_id].append(tag)
    return {key: grouped.get(key, []) for key in ids}


async def raw_records_of_fragments(session: AsyncSession,
                                   ids: Sequence[int]) -> dict[int, Any]:
    """Each fragment's record as the model sent it (None when not kept)."""
    rows = await session.execute(sa.text(
        "SELECT id, raw_record FROM fragments WHERE id = ANY(:ids)"), {"ids": list(ids)})
    found = {int(row.id): row.raw_record for row in rows}
    return {key: found.get(key) for key in ids}


async def tag_usage(session: AsyncSession, tag_ids: Sequence[int]) -> dict[int, int]:
    """How many fragments carry each tag."""
    rows = await session.execute(
        sa.select(_FT.tag_id, sa.func.count()).where(_FT.tag_id.in_(tag_ids))
        .group_by(_FT.tag_id))
    counts: dict[int, int] = {tag_id: count for tag_id, count in rows.all()}
    return {key: int(counts.get(key, 0)) for key in tag_ids}


async def tags_by_id(session: AsyncSession, ids: Sequence[int]) -> dict[int, TagRow]:
    """Tags by id."""
    rows = await session.execute(sa.select(TagRow).where(_T.id.in_(ids)))
    return {row.id or 0: row for row in rows.scalars()}


async def list_tags(session: AsyncSession, *, name_contains: str | None, category: str | None,
                    limit: int) -> list[tuple[TagRow, int]]:
    """Tags with their usage counts, most used first, then by name."""
    usage = sa.func.count(_FT.fragment_id)
    query = (sa.select(TagRow, usage.label("usage")).outerjoin(FragmentTagRow, _FT.tag_id == _T.id)
             .group_by(_T.id).order_by(usage.desc(), _T.name).limit(limit))
    if name_contains:
        escaped = (name_contains.replace("\\", "\\\\").replace("%", "\\%")
                   .replace("_", "\\_"))
        query = query.where(_T.name.ilike(f"%{escaped}%", escape="\\"))
    if category:
        query = query.where(_T.category == category)
    return [(tag, int(count)) for tag, count in (await session.execute(query)).all()]


async def ensure_tags(session: AsyncSession, names: Sequence[str],
                      category: str | None) -> list[TagRow]:
    """The named tags, created on first use (`category` is given to new tags only)."""
    await session.execute(insert(TagRow).values(
        [{"name": name, "category": category} for name in names]).on_conflict_do_nothing())
    rows = await session.execute(sa.select(TagRow).where(_T.name.in_(names)).order_by(_T.name))
    return list(rows.scalars())


async def link_tags(session: AsyncSession, fragment_ids: Sequence[int],
                    tag_ids: Sequence[int]) -> int:
    """Tag every fragment with every tag; returns how many links are new."""
    # Two array parameters whatever the sizes (a VALUES list would hit the parameter limit).
    result = await session.execute(sa.text(
        "INSERT INTO fragment_tags (fragment_id, tag_id) "
        "SELECT f, t FROM unnest(CAST(:fragments AS bigint[])) AS f "
        "CROSS JOIN unnest(CAST(:tags AS bigint[])) AS t "
        "ON CONFLICT DO NOTHING RETURNING fragment_id"),
        {"fragments": list(fragment_ids), "tags": list(tag_ids)})
    return len(result.all())


async def unlink_tags(session: AsyncSession, fragment_ids: Sequence[int],
                      names: Sequence[str]) -> int:
    """Remove the named tags from the fragments; returns how many links went."""
    result = await session.execute(
        sa.delete(FragmentTagRow).where(
            _FT.fragment_id.in_(fragment_ids),
            _FT.tag_id.in_(sa.select(_T.id).where(_T.name.in_(names))))
        .returning(_FT.fragment_id))
    return len(result.all())


# Relationships


async def relationships_of_fragments(session: AsyncSession,
                                     ids: Sequence[int]) -> dict[int, list[RelationshipRow]]:
    """Each fragment's links in both directions, oldest first."""
    rows = await session.execute(
        sa.select(RelationshipRow).where(sa.or_(_R.fragment_id.in_(ids),
                                                _R.related_fragment_id.in_(ids)))
        .order_by(_R.created_at, _R.id))
    grouped: dict[int, list[RelationshipRow]] = {key: [] for key in ids}
    for row in rows.scalars():
        for end in {row.fragment_id, row.related_fragment_id}:
            if end in grouped:
                grouped[end].append(row)
    return grouped


async def relationships_by_id(session: AsyncSession,
                              ids: Sequence[int]) -> dict[int, RelationshipRow]:
    """Relationships by id."""
    rows = await session.execute(sa.select(RelationshipRow).where(_R.id.in_(ids)))
    return {row.id or 0: row for row in rows.scalars()}


async def add_relationship(session: AsyncSession, *, fragment_id: int, related_id: int,
                           kind: RelationshipType, confidence: float, notes: str | None,
                           created_by: str) -> RelationshipRow:
    """Store a link; Conflict (naming the existing one) when the pair already has this type.

    Call with both fragments locked (`require_fragments(..., lock=True)`): the check for the
    reverse link of a symmetric type is then race-free.
    """
    existing = (await session.execute(
        sa.select(_R.id).where(pair_condition(fragment_id, related_id, kind)))).scalar()
    if existing is not None:
        raise Conflict(f"these fragments are already linked as {kind.value} "
                       f"(relationship {existing})", ("input", "relationshipType"),
                       str(existing))
    row = RelationshipRow(fragment_id=fragment_id, related_fragment_id=related_id,
                          relationship_type=kind.value, confidence=confidence, notes=notes,
                          created_by=created_by)
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return row


async def _delete_relationships(session: AsyncSession, condition: Any) -> list[RelationshipRow]:
    rows = await session.execute(sa.delete(RelationshipRow).where(condition)
                                 .returning(RelationshipRow))
    return list(rows.scalars())


async def delete_relationship(session: AsyncSession, relationship_id: int,
                              path: tuple[str, ...]) -> list[RelationshipRow]:
    """Delete one link by id; NotFound when there is none."""
    rows = await _delete_relationships(session, _R.id == relationship_id)
    if not rows:
        raise NotFound("Relationship", relationship_id, path)
    return rows


async def delete_links(session: AsyncSession, fragment_id: int, related_id: int,
                       kind: RelationshipType | None) -> list[RelationshipRow]:
    """Delete the links between two fragments (see `pair_condition`); returns them."""
    return await _delete_relationships(session, pair_condition(fragment_id, related_id, kind))


def pair_condition(fragment_id: int, related_id: int,
                   kind: RelationshipType | None) -> Any:
    """Links from one fragment to another (either way for symmetric types, all types if None)."""
    forward = sa.and_(_R.fragment_id == fragment_id, _R.related_fragment_id == related_id)
    backward = sa.and_(_R.fragment_id == related_id, _R.related_fragment_id == fragment_id)
    if kind is None:
        return sa.or_(forward, sa.and_(backward, _R.relationship_type.in_(
            [t.value for t in SYMMETRIC_TYPES])))
    if kind in SYMMETRIC_TYPES:
        return sa.and_(_R.relationship_type == kind.value, sa.or_(forward, backward))
    return sa.and_(_R.relationship_type == kind.value, forward)


# Verification


async def history_of_fragments(session: AsyncSession,
                               ids: Sequence[int]) -> dict[int, list[VerificationEventRow]]:
    """Each fragment's verification decisions, oldest first."""
    # Ids are drawn while the fragment is locked (record_decision): they order its decisions.
    rows = await session.execute(sa.select(VerificationEventRow).where(_V.fragment_id.in_(ids))
                                 .order_by(_V.id))
    grouped: dict[int, list[VerificationEventRow]] = {key: [] for key in ids}
    for row in rows.scalars():
        grouped[row.fragment_id].append(row)
    return grouped


async def record_decision(session: AsyncSession, locked: dict[int, FragmentRow],
                          decision: str, reviewer: str,
                          notes: str | None) -> list[FragmentRow]:
    """Set the fragments' status and reviewer, and append one audit event each.

    `locked` comes from `require_fragments(..., lock=True)`: concurrent decisions on a
    fragment take turns, so each event's previous status is the one it replaced.
    """
    ids = list(locked)
    # Read before the UPDATE: it also refreshes the objects in the session.
    previous = {fragment_id: row.verification_status for fragment_id, row in locked.items()}
    # clock_timestamp, not now(): the time of the decision, after any wait for the lock.
    await session.execute(
        sa.update(FragmentRow).where(_F.id.in_(ids))
        .values(verification_status=decision, verified_by=reviewer,
                verified_at=sa.func.clock_timestamp()))
    await session.execute(insert(VerificationEventRow).values(
        [{"fragment_id": fragment_id, "decision": decision,
          "previous_status": previous[fragment_id], "reviewer": reviewer, "notes": notes,
          "created_at": sa.func.clock_timestamp()} for fragment_id in ids]))
    rows = await session.execute(_fragments().where(_F.id.in_(ids))
                                 .execution_options(populate_existing=True))
    by_id = {row.id: row for row in rows.scalars()}
    return [by_id[fragment_id] for fragment_id in ids]


# Per-source pages and views


async def first_fragments_of_sources(session: AsyncSession, source_ids: Sequence[int],
                                     flt: FragmentFilterSpec | None, sort: str,
                                     descending: bool, first: int) -> dict[int, Page]:
    """The first page of fragments of each source, in one statement (a window per source)."""
    key = FRAGMENT_SORT[sort]
    order = (key.expression.desc(), _F.id.desc()) if descending else (
        key.expression.asc(), _F.id.asc())
    ranked = apply_fragment_filter(sa.select(
        _F.id.label("hit_id"), _F.source_id.label("owner"), key.expression.label("sort_value"),
        sa.func.row_number().over(partition_by=_F.source_id, order_by=order).label("position"),
        sa.func.count().over(partition_by=_F.source_id).label("total"),
    ).where(_F.source_id.in_(source_ids)), flt).subquery("ranked")
    # Read-only rows (columns, not ORM objects), as in list_fragments.
    rows = (await session.execute(
        sa.select(*FRAGMENT_COLUMNS, ranked.c.position, ranked.c.total, ranked.c.sort_value)
        .join(ranked, _F.id == ranked.c.hit_id).where(ranked.c.position <= first + 1)
        .order_by(ranked.c.owner, ranked.c.position))).all()
    order_name = f"{key.name}:{'DESC' if descending else 'ASC'}"
    pages = {source_id: Page([], [], False, False, 0) for source_id in source_ids}
    for fragment in rows:
        page = pages[fragment.source_id]
        page.total_count = int(fragment.total)
        if fragment.position > first:
            page.has_next_page = True
            continue
        page.rows.append(fragment)
        page.cursors.append(encode_cursor(order_name, fragment.sort_value, fragment.id))
    return pages


async def processing_summaries(session: AsyncSession,
                               source_ids: Sequence[int]) -> dict[int, Any]:
    """Rows of v_source_processing_summary by source id."""
    rows = await session.execute(sa.text(
        "SELECT * FROM v_source_processing_summary WHERE source_id = ANY(:ids)"),
        {"ids": list(source_ids)})
    return {row.source_id: row for row in rows.mappings()}


async def fragment_coverage(session: AsyncSession, source_id: int) -> list[Any]:
    """Rows of v_fragment_coverage of one source (one per category present)."""
    rows = await session.execute(sa.text(
        "SELECT * FROM v_fragment_coverage WHERE source_id = :id ORDER BY category"),
        {"id": source_id})
    return list(rows.mappings())


class GraphRepository:
    """The writes of the graph use cases (tags, relationships, verification), bound to one
    unit of work's session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def require_fragments(self, wanted: dict[int, tuple[str, ...]], *,
                                lock: bool = False) -> dict[int, FragmentRow]:
        return await require_fragments(self.session, wanted, lock=lock)

    async def ensure_tags(self, names: Sequence[str], category: str | None) -> list[TagRow]:
        return await ensure_tags(self.session, names, category)

    async def link_tags(self, fragment_ids: Sequence[int], tag_ids: Sequence[int]) -> int:
        return await link_tags(self.session, fragment_ids, tag_ids)

    async def unlink_tags(self, fragment_ids: Sequence[int], names: Sequence[str]) -> int:
        return await unlink_tags(self.session, fragment_ids, names)

    async def add_relationship(self, *, fragment_id: int, related_id: int,
                               kind: RelationshipType, confidence: float,
                               notes: str | None, created_by: str) -> RelationshipRow:
        return await add_relationship(self.session, fragment_id=fragment_id,
                                      related_id=related_id, kind=kind, confidence=confidence,
                                      notes=notes, created_by=created_by)

    async def delete_relationship(self, relationship_id: int,
                                  path: tuple[str, ...]) -> list[RelationshipRow]:
        return await delete_relationship(self.session, relationship_id, path)

    async def delete_links(self, fragment_id: int, related_id: int,
                           kind: RelationshipType | None) -> list[RelationshipRow]:
        return await delete_links(self.session, fragment_id, related_id, kind)

    async def record_decision(self, locked: dict[int, FragmentRow], decision: str,
                              reviewer: str, notes: str | None) -> list[FragmentRow]:
        return await record_decision(self.session, locked, decision, reviewer, notes)
