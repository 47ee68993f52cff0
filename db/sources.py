"""Source persistence: inserts with clear conflicts, partial updates, filtered keyset listing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from db.keyset import Page, PageRequest, SortKey, paginate
from db.segments import SegmentRepository
from db.tables import RunRow, SourceRow
from domain.errors import Conflict, FieldIssue, InvalidInput, NotFound
from domain.model import ExtractionPriority
from domain.sources import SourceData, search_config_for  # noqa: F401  (re-exported for callers)

_S = SourceRow.__table__.c  # type: ignore[attr-defined]

PRIORITY_RANK = sa.case(
    {p.value: p.rank for p in ExtractionPriority}, value=_S.extraction_priority, else_=0
)

SORT_KEYS = {
    "CREATED_AT": SortKey("CREATED_AT", _S.created_at, "datetime"),
    "UPDATED_AT": SortKey("UPDATED_AT", _S.updated_at, "datetime"),
    "TITLE": SortKey("TITLE", _S.title, "str"),
    "SOURCE_CODE": SortKey("SOURCE_CODE", _S.source_code, "str"),
    "PRIORITY": SortKey("PRIORITY", PRIORITY_RANK, "int"),
    "WORD_COUNT": SortKey("WORD_COUNT", _S.word_count, "int"),
}


@dataclass(slots=True)
class SourceFilter:
    """Listing filters; lists mean "any of"."""

    source_types: list[str] | None = None
    qualities: list[str] | None = None
    priorities: list[str] | None = None
    statuses: list[str] | None = None
    languages: list[str] | None = None
    title_contains: str | None = None
    author_contains: str | None = None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _apply_filter(query: sa.Select[Any], flt: SourceFilter | None) -> sa.Select[Any]:
    if flt is None:
        return query
    for column, values in (
        (_S.source_type, flt.source_types),
        (_S.quality, flt.qualities),
        (_S.extraction_priority, flt.priorities),
        (_S.status, flt.statuses),
        (_S.language, flt.languages),
    ):
        if values:
            query = query.where(column.in_(values))
    if flt.title_contains:
        query = query.where(_S.title.ilike(f"%{_escape_like(flt.title_contains)}%", escape="\\"))
    if flt.author_contains:
        query = query.where(_S.author.ilike(f"%{_escape_like(flt.author_contains)}%", escape="\\"))
    return query


def _row_values(data: SourceData) -> dict[str, Any]:
    return {
        "source_code": data.source_code,
        "title": data.title,
        "source_type": data.source_type.value,
        "quality": data.quality.value,
        "extraction_priority": data.extraction_priority.value,
        "content": data.content,
        "content_sha256": data.content_sha256,
        "word_count": data.word_count,
        "char_count": data.char_count,
        "language": data.language,
        "author": data.author,
        "url": data.url,
        "source_date": data.source_date,
        "notes": data.notes,
        "content_format": data.content_format.value,
        "original_file_name": data.original_file_name,
        "original_sha256": data.original_sha256,
        "original_bytes": data.original_bytes,
        "conversion_notes": list(data.conversion_notes),
        "subject_name": data.subject.name if data.subject else None,
        "subject_aliases": list(data.subject.aliases) if data.subject else [],
        "subject_speakers": list(data.subject_speakers),
    }


class SourceRepository:
    """Reads and writes `sources` inside the caller's session and transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, source_id: int) -> SourceRow | None:
        return await self.session.get(SourceRow, source_id)

    async def require(self, source_id: int, path: tuple[str, ...] = ("id",)) -> SourceRow:
        row = await self.get(source_id)
        if row is None:
            raise NotFound("Source", source_id, path)
        return row

    async def get_by_code(self, code: str) -> SourceRow | None:
        result = await self.session.execute(sa.select(SourceRow).where(_S.source_code == code))
        return result.scalar_one_or_none()

    async def get_by_original(self, sha256: str) -> SourceRow | None:
        """The source first read from a file with these bytes, if any."""
        result = await self.session.execute(
            sa.select(SourceRow).where(_S.original_sha256 == sha256).order_by(_S.id).limit(1))
        return result.scalar_one_or_none()

    async def get_many(self, ids: list[int], *, with_content: bool = True
                       ) -> dict[int, SourceRow]:
        """Rows by id; without `with_content` the content column (up to the content limit
        per source) is left unread: `content_of` reads it when it is wanted."""
        if not ids:
            return {}
        query = sa.select(SourceRow).where(_S.id.in_(ids))
        if not with_content:
            query = query.options(defer(SourceRow.content))  # type: ignore[arg-type]
        result = await self.session.execute(query)
        return {row.id: row for row in result.scalars()}

    @staticmethod
    def loaded_content(row: SourceRow) -> str | None:
        """The row's content, or None when it was read without it (`with_content=False`)."""
        return None if "content" in sa.inspect(row).unloaded else row.content

    async def content_of(self, ids: list[int]) -> dict[int, str]:
        """The content of each source, by id."""
        if not ids:
            return {}
        result = await self.session.execute(sa.select(_S.id, _S.content).where(_S.id.in_(ids)))
        return {row.id: row.content for row in result}

    async def _conflicts(self, codes: list[str], hashes: list[str]) -> tuple[dict[str, int],
                                                                               dict[str, int]]:
        rows = (await self.session.execute(
            sa.select(_S.id, _S.source_code, _S.content_sha256).where(
                sa.or_(_S.source_code.in_(codes), _S.content_sha256.in_(hashes))
            )
        )).all()
        by_code = {r.source_code: r.id for r in rows if r.source_code in codes}
        by_hash = {r.content_sha256: r.id for r in rows if r.content_sha256 in hashes}
        return by_code, by_hash

    async def add(self, data: SourceData, prefix: tuple[str, ...] = ("input",)) -> SourceRow:
        """Insert one source; duplicate code or content is a Conflict naming the field."""
        by_code, by_hash = await self._conflicts([data.source_code], [data.content_sha256])
        self._raise_conflict(data, by_code, by_hash, prefix)
        return (await self._insert([data], prefix))[0]

    async def import_issues(self, items: list[tuple[int, SourceData]]) -> list[FieldIssue]:
        """Clashes of import items with each other and with stored sources, per item path."""
        issues: list[FieldIssue] = []
        seen_codes: dict[str, int] = {}
        seen_hashes: dict[str, int] = {}
        for index, item in items:
            path = ("input", "sources", str(index))
            if item.source_code in seen_codes:
                issues.append(FieldIssue((*path, "sourceCode"),
                              f"duplicates item {seen_codes[item.source_code]} of this import"))
            seen_codes.setdefault(item.source_code, index)
            digest = item.content_sha256
            if digest in seen_hashes:
                issues.append(FieldIssue((*path, "content"),
                              f"has the same content as item {seen_hashes[digest]} of this import"))
            seen_hashes.setdefault(digest, index)
        by_code, by_hash = await self._conflicts(list(seen_codes), list(seen_hashes))
        for index, item in items:
            path = ("input", "sources", str(index))
            if item.source_code in by_code:
                issues.append(FieldIssue((*path, "sourceCode"),
                              f"source code {item.source_code!r} already exists"))
            if item.content_sha256 in by_hash:
                issues.append(FieldIssue((*path, "content"),
                              f"the same content is already stored as source "
                              f"{by_hash[item.content_sha256]}"))
        return issues

    async def add_all(self, items: list[SourceData]) -> list[SourceRow]:
        """Insert many atomically; every clash is reported per item (path input.sources.N)."""
        issues = await self.import_issues(list(enumerate(items)))
        if issues:
            raise InvalidInput(issues)
        return await self._insert(items, ("input", "sources"))

    def _raise_conflict(self, data: SourceData, by_code: dict[str, int], by_hash: dict[str, int],
                        prefix: tuple[str, ...]) -> None:
        if data.source_code in by_code:
            raise Conflict(f"source code {data.source_code!r} already exists",
                           (*prefix, "sourceCode"), str(by_code[data.source_code]))
        if data.content_sha256 in by_hash:
            existing = by_hash[data.content_sha256]
            raise Conflict(f"the same content is already stored as source {existing} "
                           f"(sha256 {data.content_sha256[:12]}…)", (*prefix, "content"),
                           str(existing))

    async def _insert(self, items: list[SourceData], prefix: tuple[str, ...]) -> list[SourceRow]:
        rows = [SourceRow(**_row_values(item)) for item in items]
        self.session.add_all(rows)
        try:
            await self.session.flush()
        except IntegrityError as exc:
            # A concurrent insert won the race between our check and our insert.
            raise Conflict("a source with the same code or content was created concurrently",
                           prefix) from exc
        segments = SegmentRepository(self.session)
        for row, item in zip(rows, items, strict=True):
            await self.session.refresh(row)
            await segments.add(row.id or 0, item.segments)
        return rows

    async def update(self, source_id: int, changes: dict[str, Any],
                     prefix: tuple[str, ...] = ("input",)) -> SourceRow:
        """Apply validated changes; content changes keep hash and counts in step."""
        row = await self.require(source_id, (*prefix, "id"))
        codes = [changes["source_code"]] if changes.get("source_code") else []
        hashes = [changes["content_sha256"]] if changes.get("content_sha256") else []
        if codes or hashes:
            by_code, by_hash = await self._conflicts(codes, hashes)
            by_code = {k: v for k, v in by_code.items() if v != source_id}
            by_hash = {k: v for k, v in by_hash.items() if v != source_id}
            if codes and codes[0] in by_code:
                raise Conflict(f"source code {codes[0]!r} already exists",
                               (*prefix, "sourceCode"), str(by_code[codes[0]]))
            if hashes and hashes[0] in by_hash:
                raise Conflict(f"the same content is already stored as source "
                               f"{by_hash[hashes[0]]}", (*prefix, "content"),
                               str(by_hash[hashes[0]]))
        if "content" in changes and await self._has_runs(source_id):
            raise Conflict("content cannot change once the source has been processed: its "
                           "fragments point at character offsets of the current text",
                           (*prefix, "content"))
        for key, value in changes.items():
            setattr(row, key, value)
        row.updated_at = sa.func.now()  # type: ignore[assignment]
        try:
            await self.session.flush()
        except IntegrityError as exc:
            raise Conflict("a source with the same code or content was created concurrently",
                           prefix) from exc
        await self.session.refresh(row)
        return row

    async def _has_runs(self, source_id: int) -> bool:
        result = await self.session.execute(
            sa.select(sa.literal(1)).where(RunRow.__table__.c.source_id == source_id).limit(1)  # type: ignore[attr-defined]
        )
        return result.first() is not None

    async def delete(self, source_id: int, prefix: tuple[str, ...] = ("input",)) -> SourceRow:
        """Delete a source and, by cascade, its runs and fragments; refused while processing."""
        row = await self.require(source_id, (*prefix, "id"))
        runs = RunRow.__table__.c  # type: ignore[attr-defined]
        active = await self.session.execute(
            sa.select(sa.func.count()).where(
                runs.source_id == source_id,
                runs.status.in_(["pending", "processing", "waiting_budget"]),
            )
        )
        if active.scalar_one():
            raise Conflict("the source has runs in progress; cancel their batches first",
                           (*prefix, "id"))
        await self.session.delete(row)
        await self.session.flush()
        return row

    async def list(self, flt: SourceFilter | None, sort: str, descending: bool,
                   page: PageRequest, *, with_content: bool = True) -> Page:
        query = _apply_filter(sa.select(SourceRow), flt)
        if not with_content:
            query = query.options(defer(SourceRow.content))  # type: ignore[arg-type]
        return await paginate(self.session, query, entity_id=_S.id, key=SORT_KEYS[sort],
                              descending=descending, page=page)
