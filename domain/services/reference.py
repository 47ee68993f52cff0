"""Reference data from people: import their fragment files, grounded in the source, and read
them back. Grounded fragments are verified reference; the others are kept for review, never
counted. The source's quality is measured again once an import changed something."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from domain.errors import Conflict, InvalidInput
from domain.model import VerificationStatus
from domain.ports import Ports
from domain.reference_grounding import ReferencePlacement, place_reference
from domain.reference_import import (
    ReferenceFormat,
    ReferenceFragmentData,
    ReferenceRecord,
    parse_reference,
)
from domain.services.graph import MAX_REVIEWER_CHARS, optional_text
from domain.services.quality import feed_verdicts

MAX_FILE_NAME_CHARS = 500  # the provenance_file column's width


@dataclass(frozen=True, slots=True)
class UngroundedReference:
    """A fragment whose content was not found in the source, with the closest span."""

    external_id: str
    content: str
    closest_start: int | None
    closest_end: int | None
    closest_text: str | None
    score: float
    line: int


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What one import did: counts per outcome, the grounded rows, the ungrounded ones."""

    source_id: int
    created: int
    updated: int
    unchanged: int
    grounded: list[Any]
    ungrounded: list[UngroundedReference]


def reference_format(raw: Any, path: tuple[str, ...]) -> ReferenceFormat:
    """The format named by `raw` ("mmos_yaml", "MMOS_YAML", "jsonl", or the enum itself)."""
    if isinstance(raw, ReferenceFormat):
        return raw
    try:
        return ReferenceFormat(str(raw).strip().lower())
    except ValueError:
        allowed = ", ".join(f.name for f in ReferenceFormat)
        raise InvalidInput.single(path, f"must be one of {allowed}") from None


def _reviewer(raw: str | None, path: tuple[str, ...]) -> str:
    name = optional_text(raw, path, MAX_REVIEWER_CHARS)
    if name is None:
        raise InvalidInput.single(path, "is required: who vouches for these fragments")
    return name


async def import_reference_fragments(ports: Ports, source_id: int, format: Any, data: str,
                                     reviewer: str | None, file_name: str | None = None, *,
                                     prefix: tuple[str, ...] = ("input",)) -> ImportResult:
    """Read, ground and store a file of reference fragments for one source: every fragment
    or none (all is checked before anything is written), upserted by its own id."""
    who = _reviewer(reviewer, (*prefix, "reviewer"))
    provenance = optional_text(file_name, (*prefix, "fileName"), MAX_FILE_NAME_CHARS)
    fmt = reference_format(format, (*prefix, "format"))
    data_path = (*prefix, "data")
    if not isinstance(data, str):
        raise InvalidInput.single(data_path, "must be the file's text")
    limit = ports.settings.max_reference_import_bytes
    size = len(data.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise InvalidInput.single(data_path, f"is {size} bytes; the limit is {limit} "
                                             "(MMOS_MAX_REFERENCE_IMPORT_BYTES)")
    records = parse_reference(data, fmt, path=data_path)
    async with ports.uow(read_only=True) as uow:
        source = await uow.sources.require(source_id, (*prefix, "sourceId"))
        text, digest = str(source.content), str(source.content_sha256)
    # CPU-bound on a long source: off the event loop, so the server keeps answering.
    placements = await asyncio.to_thread(_place_all, text, records)
    items = [_stored(record, placement, who, provenance)
             for record, placement in zip(records, placements, strict=True)]
    async with ports.uow() as uow:
        source = await uow.sources.require(source_id, (*prefix, "sourceId"))
        if source.content_sha256 != digest:
            raise Conflict("the source's content changed during the import; import again",
                           (*prefix, "sourceId"))
        created, updated, unchanged = await uow.reference.upsert(source_id, items,
                                                                 ports.clock.now())
        rows = await uow.reference.of_source(source_id, [r.external_id for r in records])
    if created or updated:
        await feed_verdicts(ports, {source_id})
    grounded_ids = {item.external_id for item in items if item.char_start is not None}
    return ImportResult(
        source_id=source_id, created=created, updated=updated, unchanged=unchanged,
        grounded=[row for row in rows if row.external_id in grounded_ids],
        ungrounded=[_ungrounded(record, placement, text)
                    for record, placement in zip(records, placements, strict=True)
                    if not placement.is_grounded])


async def reference_fragments(ports: Ports, source_id: int,
                              path: tuple[str, ...] = ("sourceId",)) -> list[Any]:
    """Every reference fragment of a source, grounded ones in source order, then the rest."""
    async with ports.uow(read_only=True) as uow:
        await uow.sources.require(source_id, path)
        return await uow.reference.of_source(source_id)


def _place_all(text: str, records: Sequence[ReferenceRecord]) -> list[ReferencePlacement]:
    return [place_reference(text, record.content) for record in records]


def _stored(record: ReferenceRecord, placement: ReferencePlacement, reviewer: str,
            provenance: str | None) -> ReferenceFragmentData:
    grounded = placement.is_grounded
    return ReferenceFragmentData(
        external_id=record.external_id, content=record.content,
        char_start=placement.start if grounded else None,
        char_end=placement.end if grounded else None,
        grounding=placement.grounding.value, grounding_score=placement.score,
        closest_start=None if grounded else placement.closest_start,
        closest_end=None if grounded else placement.closest_end,
        category=record.category.value, fragment_type=record.fragment_type.value,
        relevance=record.relevance, context=record.context, insight=record.insight,
        tags=list(record.tags), location=record.location, source_label=record.source_label,
        metadata=record.metadata, raw_record=record.raw,
        verification_status=(VerificationStatus.VERIFIED if grounded
                             else VerificationStatus.NEEDS_REVIEW).value,
        reviewer=reviewer, provenance_file=provenance)


def _ungrounded(record: ReferenceRecord, placement: ReferencePlacement,
                text: str) -> UngroundedReference:
    start, end = placement.closest_start, placement.closest_end
    return UngroundedReference(
        external_id=record.external_id, content=record.content, closest_start=start,
        closest_end=end, closest_text=text[start:end] if start is not None else None,
        score=placement.score, line=record.line)
