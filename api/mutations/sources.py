"""Source mutations: create, update, delete, bulk import. Errors come back as data."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import strawberry

from api.errors import Conflict, NotFound, ValidationError, as_payload
from api.ids import parse_id, to_global
from api.types.enums import ExtractionPriority, SourceQuality, SourceType
from api.types.segments import ContentFormat, SubjectInput, subject_raw
from api.types.source import Source
from domain import documents as d
from domain import model as m
from domain.errors import DomainError
from domain.services import sources


@strawberry.input
class CreateSourceInput:
    source_code: str = strawberry.field(description="Unique code, e.g. INT_2024_001.")
    title: str
    source_type: SourceType
    content: str
    quality: SourceQuality = m.SourceQuality.PRIMARY
    extraction_priority: ExtractionPriority = m.ExtractionPriority.MEDIUM
    language: str = strawberry.field(default="en", description="BCP 47 tag: en, pt-BR…")
    author: str | None = None
    url: str | None = None
    source_date: dt.date | None = None
    notes: str | None = None
    content_format: ContentFormat = strawberry.field(
        default=d.ContentFormat.TEXT,
        description="How `content` is written: TEXT (kept as given), MARKDOWN, VTT, SRT or "
                    "HTML (read into a normalised text with its segment map). Files of any "
                    "format go to POST /sources/upload.")
    subject: SubjectInput | None = strawberry.field(
        default=None, description="The person the clone is about (name and aliases).")


@strawberry.input
class UpdateSourceInput:
    id: strawberry.ID
    source_code: str | None = strawberry.UNSET
    title: str | None = strawberry.UNSET
    source_type: SourceType | None = strawberry.UNSET
    quality: SourceQuality | None = strawberry.UNSET
    extraction_priority: ExtractionPriority | None = strawberry.UNSET
    content: str | None = strawberry.UNSET
    language: str | None = strawberry.UNSET
    author: str | None = strawberry.UNSET
    url: str | None = strawberry.UNSET
    source_date: dt.date | None = strawberry.UNSET
    notes: str | None = strawberry.UNSET
    content_format: ContentFormat | None = strawberry.field(
        default=strawberry.UNSET,
        description="The format of new `content` (TEXT when omitted); its segments replace "
                    "the old ones.")
    subject: SubjectInput | None = strawberry.field(
        default=strawberry.UNSET,
        description="A new subject; null clears it. Matched against the source's speakers.")


@strawberry.input
class DeleteSourceInput:
    id: strawberry.ID


@strawberry.input
class ImportSourcesInput:
    sources: list[CreateSourceInput]


@strawberry.type
class CreateSourcePayload:
    source: Source


@strawberry.type
class UpdateSourcePayload:
    source: Source


@strawberry.type
class DeleteSourcePayload:
    deleted_id: strawberry.ID
    source_code: str


@strawberry.type
class ImportSourcesPayload:
    sources: list[Source]
    count: int


CreateSourceResult = Annotated[
    CreateSourcePayload | ValidationError | NotFound | Conflict,
    strawberry.union("CreateSourceResult"),
]
UpdateSourceResult = Annotated[
    UpdateSourcePayload | ValidationError | NotFound | Conflict,
    strawberry.union("UpdateSourceResult"),
]
DeleteSourceResult = Annotated[
    DeleteSourcePayload | ValidationError | NotFound | Conflict,
    strawberry.union("DeleteSourceResult"),
]
ImportSourcesResult = Annotated[
    ImportSourcesPayload | ValidationError | NotFound | Conflict,
    strawberry.union("ImportSourcesResult"),
]


def _raw(data: CreateSourceInput) -> dict[str, Any]:
    return {
        "source_code": data.source_code,
        "title": data.title,
        "source_type": data.source_type,
        "quality": data.quality,
        "extraction_priority": data.extraction_priority,
        "content": data.content,
        "language": data.language,
        "author": data.author,
        "url": data.url,
        "source_date": data.source_date,
        "notes": data.notes,
        "content_format": data.content_format,
        "subject": subject_raw(data.subject),
    }


@strawberry.type
class SourceMutations:
    @strawberry.mutation(description="Store a new source; its content hash must be new.")
    async def create_source(self, info: strawberry.Info,
                            input: CreateSourceInput) -> CreateSourceResult:
        try:
            row = await sources.create_source(info.context.runtime.ports, _raw(input))
            return CreateSourcePayload(source=Source.from_row(row))
        except DomainError as exc:
            return as_payload(exc)

    @strawberry.mutation(description="Change some fields of a source; omitted fields stay.")
    async def update_source(self, info: strawberry.Info,
                            input: UpdateSourceInput) -> UpdateSourceResult:
        try:
            source_id = parse_id(input.id, "Source", ("input", "id"))
            raw = {key: value for key, value in vars(input).items()
                   if key != "id" and value is not strawberry.UNSET}
            if "subject" in raw:
                raw["subject"] = subject_raw(raw["subject"])
            if raw.get("content_format", ...) is None:
                raw.pop("content_format")
            row = await sources.update_source(info.context.runtime.ports, source_id, raw)
            return UpdateSourcePayload(source=Source.from_row(row))
        except DomainError as exc:
            return as_payload(exc)

    @strawberry.mutation(description="Delete a source with its runs and fragments.")
    async def delete_source(self, info: strawberry.Info,
                            input: DeleteSourceInput) -> DeleteSourceResult:
        try:
            source_id = parse_id(input.id, "Source", ("input", "id"))
            row = await sources.delete_source(info.context.runtime.ports, source_id)
            return DeleteSourcePayload(deleted_id=strawberry.ID(to_global("Source", source_id)),
                                       source_code=row.source_code)
        except DomainError as exc:
            return as_payload(exc)

    @strawberry.mutation(description="Store many sources at once: all of them or none.")
    async def import_sources(self, info: strawberry.Info,
                             input: ImportSourcesInput) -> ImportSourcesResult:
        try:
            rows = await sources.import_sources(info.context.runtime.ports,
                                                [_raw(item) for item in input.sources])
            return ImportSourcesPayload(sources=[Source.from_row(r) for r in rows],
                                        count=len(rows))
        except DomainError as exc:
            return as_payload(exc)
