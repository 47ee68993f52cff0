"""A source's segment map: where each character range of its normalised text came from."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from db.keyset import Page, PageRequest, SortKey, paginate
from db.tables import SourceSegmentRow
from domain.documents import Segment, SegmentKind

_G = SourceSegmentRow.__table__.c  # type: ignore[attr-defined]
ORDER = SortKey("POSITION", _G.ordinal, "int")


def segment_of(row: SourceSegmentRow) -> Segment:
    """The domain value of a stored segment."""
    return Segment(kind=SegmentKind(row.kind), char_start=row.char_start, char_end=row.char_end,
                   page=row.page, time_start_ms=row.time_start_ms,
                   time_end_ms=row.time_end_ms, speaker=row.speaker, heading=row.heading)


class SegmentRepository:
    """Reads and writes `source_segments` inside the caller's session and transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, source_id: int, segments: Sequence[Segment]) -> None:
        """Store a source's segments, in text order (ordinal = position in that order)."""
        if not segments:
            return
        ordered = sorted(segments, key=lambda s: (s.char_start, -s.char_end, s.kind.value))
        await self.session.execute(sa.insert(SourceSegmentRow.__table__), [  # type: ignore[attr-defined]
            {"source_id": source_id, "ordinal": ordinal, "kind": s.kind.value,
             "char_start": s.char_start, "char_end": s.char_end, "page": s.page,
             "time_start_ms": s.time_start_ms, "time_end_ms": s.time_end_ms,
             "speaker": s.speaker, "heading": s.heading}
            for ordinal, s in enumerate(ordered)])

    async def replace(self, source_id: int, segments: Sequence[Segment]) -> None:
        """Drop a source's segments and store these instead (its content changed)."""
        await self.session.execute(sa.delete(SourceSegmentRow).where(_G.source_id == source_id))
        await self.add(source_id, segments)

    async def of_source(self, source_id: int) -> list[Segment]:
        """Every segment of a source, in text order."""
        rows = await self.session.execute(
            sa.select(SourceSegmentRow).where(_G.source_id == source_id).order_by(_G.ordinal))
        return [segment_of(row) for row in rows.scalars()]

    async def of_sources(self, source_ids: Sequence[int]) -> dict[int, list[Segment]]:
        """The segments of each source, by source id (sources without any are absent)."""
        if not source_ids:
            return {}
        rows = await self.session.execute(
            sa.select(SourceSegmentRow).where(_G.source_id.in_(list(source_ids)))
            .order_by(_G.source_id, _G.ordinal))
        found: dict[int, list[Segment]] = {}
        for row in rows.scalars():
            found.setdefault(row.source_id, []).append(segment_of(row))
        return found

    async def speaker_labels(self, source_id: int) -> list[str]:
        """The distinct speakers of a source's turns (else its cues), in order of appearance."""
        for kind in (SegmentKind.TURN, SegmentKind.CUE):
            rows = await self.session.execute(
                sa.select(_G.speaker, sa.func.min(_G.ordinal).label("first"))
                .where(_G.source_id == source_id, _G.kind == kind.value,
                       _G.speaker.is_not(None))
                .group_by(_G.speaker).order_by("first"))
            labels = [row.speaker for row in rows]
            if labels:
                return labels
        return []


async def segment_page(session: AsyncSession, source_id: int, page: PageRequest,
                       kinds: Sequence[SegmentKind] | None = None) -> Page:
    """A keyset page of a source's segments in text order, of these kinds only when given."""
    query = sa.select(SourceSegmentRow).where(_G.source_id == source_id)
    if kinds:
        query = query.where(_G.kind.in_([kind.value for kind in kinds]))
    return await paginate(session, query, entity_id=_G.id, key=ORDER, descending=False,
                          page=page)
