"""Fragment and batch listings with filters and keyset pages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from db.keyset import Page, PageRequest, SortKey, paginate
from db.tables import BatchRow, FragmentRow, FragmentTagRow, SourceRow, TagRow

_F = FragmentRow.__table__.c  # type: ignore[attr-defined]
_B = BatchRow.__table__.c  # type: ignore[attr-defined]
_FT = FragmentTagRow.__table__.c  # type: ignore[attr-defined]
_T = TagRow.__table__.c  # type: ignore[attr-defined]
_S = SourceRow.__table__.c  # type: ignore[attr-defined]

FRAGMENT_SORT = {
    "CREATED_AT": SortKey("CREATED_AT", _F.created_at, "datetime"),
    # -1 is written into the SQL, not bound: the expression must be the one ix_fragments_position
    # indexes for the planner to use it (a parameter is a different expression).
    "POSITION": SortKey("POSITION", sa.func.coalesce(_F.char_start, sa.literal_column("-1")),
                        "int"),
    "RELEVANCE": SortKey("RELEVANCE", _F.relevance, "int"),
    "FRAGMENT_CODE": SortKey("FRAGMENT_CODE", _F.fragment_code, "str"),
}
BATCH_SORT = SortKey("CREATED_AT", _B.created_at, "datetime")
# What read paths select of a fragment: every column but the stored tsvector (it is for the
# index, not for clients). Selected as columns, the rows come back as plain named tuples:
# no ORM identity map or instance state for rows that are only read and serialised.
# Every column a fragment page reads: not the search vector, nor the raw record (read on
# demand by Fragment.rawRecord).
FRAGMENT_COLUMNS = tuple(column for column in _F
                         if column.key not in ("search_vector", "raw_record"))
FRAGMENT_KEYS = tuple(column.key for column in FRAGMENT_COLUMNS)


def is_fragment_row(row: Any) -> bool:
    """True when `row` is a plain result row (not a FragmentRow) whose first columns are
    FRAGMENT_COLUMNS in order, as list_fragments returns: it can be read by position."""
    return isinstance(row, sa.Row) and row._fields[:len(FRAGMENT_KEYS)] == FRAGMENT_KEYS


@dataclass(slots=True)
class FragmentFilterSpec:
    source_id: int | None = None
    batch_id: int | None = None
    run_id: int | None = None
    model: str | None = None
    grounding: list[str] | None = None
    categories: list[str] | None = None
    fragment_types: list[str] | None = None
    verification_statuses: list[str] | None = None
    is_complete: bool | None = None
    has_clean_boundaries: bool | None = None
    min_relevance: int | None = None
    max_relevance: int | None = None
    min_confidence: float | None = None
    max_confidence: float | None = None
    tags: list[str] | None = None  # any of these tag names
    speakers: list[str] | None = None  # spoken (where the span starts) by any of these
    # Only fragments wholly in the subject's turns (the source's `subject_speakers`).
    subject_only: bool = False


def apply_fragment_filter(query: sa.Select[Any], flt: FragmentFilterSpec | None) -> sa.Select[Any]:
    if flt is None:
        return query
    for column, value in ((_F.source_id, flt.source_id), (_F.batch_id, flt.batch_id),
                          (_F.run_id, flt.run_id), (_F.model_name, flt.model),
                          (_F.is_complete, flt.is_complete),
                          (_F.has_clean_boundaries, flt.has_clean_boundaries)):
        if value is not None:
            query = query.where(column == value)
    for column, values in ((_F.grounding, flt.grounding), (_F.category, flt.categories),
                           (_F.fragment_type, flt.fragment_types),
                           (_F.verification_status, flt.verification_statuses)):
        if values:
            query = query.where(column.in_(values))
    if flt.min_relevance is not None:
        query = query.where(_F.relevance >= flt.min_relevance)
    if flt.max_relevance is not None:
        query = query.where(_F.relevance <= flt.max_relevance)
    if flt.min_confidence is not None:
        query = query.where(_F.confidence >= flt.min_confidence)
    if flt.max_confidence is not None:
        query = query.where(_F.confidence <= flt.max_confidence)
    if flt.tags:
        query = query.where(sa.exists().where(_FT.fragment_id == _F.id, _FT.tag_id == _T.id,
                                              _T.name.in_(flt.tags)))
    if flt.speakers:
        query = query.where(_F.speaker.in_(flt.speakers))
    if flt.subject_only:
        # jsonb `?`: the fragment's speaker is one of its source's subject labels.
        theirs = sa.select(sa.literal(1)).where(
            _S.id == _F.source_id, _S.subject_speakers.op("?")(_F.speaker))
        query = query.where(_F.speaker.is_not(None), _F.mixes_speakers.is_(False),
                            sa.exists(theirs))
    return query


async def list_fragments(session: AsyncSession, flt: FragmentFilterSpec | None, sort: str,
                         descending: bool, page: PageRequest) -> Page:
    """A page of fragments as read-only rows (attributes named like FragmentRow's)."""
    query = apply_fragment_filter(sa.select(*FRAGMENT_COLUMNS), flt)
    return await paginate(session, query, entity_id=_F.id, key=FRAGMENT_SORT[sort],
                          descending=descending, page=page, plain_rows=True)


async def list_batches(session: AsyncSession, *, status: list[str] | None, model: str | None,
                       page: PageRequest) -> Page:
    query = sa.select(BatchRow)
    if status:
        query = query.where(_B.status.in_(status))
    if model:
        query = query.where(_B.model_name == model)
    return await paginate(session, query, entity_id=_B.id, key=BATCH_SORT, descending=True,
                          page=page)
