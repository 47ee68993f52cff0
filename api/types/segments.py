"""Where a source's text came from: formats, segments, speakers, the subject, locations."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import strawberry

from api.errors import public
from api.loaders import page_read
from api.pagination import CountedConnection, build_connection, wants_total
from db.keyset import validate_page
from db.segments import SegmentRepository, segment_page
from domain import documents as d
from domain.errors import DomainError
from domain.locations import SegmentIndex

ContentFormat = strawberry.enum(
    d.ContentFormat, name="ContentFormat",
    description="How a source's content arrives. TEXT (the default), MARKDOWN, VTT, SRT and "
                "HTML may come as a string (createSource); PDF, DOCX and EPUB only as a file "
                "(POST /sources/upload, `mmos import`).")
SegmentKind = strawberry.enum(
    d.SegmentKind, name="SegmentKind",
    description="PAGE: a page of a PDF; CUE: a transcript cue; TURN: one speaker's "
                "uninterrupted turn (label included); CHAPTER: a chapter's whole text; "
                "HEADING: a heading's own line.")


@strawberry.type(description="The person the clone is about: their turns in a transcript are "
                             "found by this name and these aliases.")
class Subject:
    name: str
    aliases: list[str]


@strawberry.input(description="The person the clone is about. Speaker labels match the name "
                              "or an alias ignoring case, accents and titles; a one-word "
                              "label matches the name's first word, and a one-word name the "
                              "labels it opens.")
class SubjectInput:
    name: str
    aliases: list[str] = strawberry.field(default_factory=list)


def subject_raw(value: SubjectInput | None) -> dict[str, Any] | None:
    """The use case's view of a subject input."""
    return None if value is None else {"name": value.name, "aliases": list(value.aliases)}


def subject_of(row: Any) -> Subject | None:
    """A stored source's subject, if it names one."""
    if not row.subject_name:
        return None
    return Subject(name=row.subject_name, aliases=list(row.subject_aliases or []))


@strawberry.type(description="A character range of the normalised text and where it came "
                             "from (`text` is content[charStart:charEnd]).")
class SourceSegment:
    kind: SegmentKind
    char_start: int
    char_end: int
    page: int | None
    time_start_ms: int | None
    time_end_ms: int | None
    speaker: str | None
    heading: str | None
    text: str

    @classmethod
    def from_row(cls, row: Any, content: str) -> SourceSegment:
        return cls(kind=d.SegmentKind(row.kind), char_start=row.char_start,
                   char_end=row.char_end, page=row.page, time_start_ms=row.time_start_ms,
                   time_end_ms=row.time_end_ms, speaker=row.speaker, heading=row.heading,
                   text=content[row.char_start:row.char_end])


@strawberry.type(name="SourceSegmentConnection")
class SourceSegmentConnection(CountedConnection[SourceSegment]):
    """Segments of a source in text order, paged with keyset cursors."""


@strawberry.type(description="One speaker of a transcript: turns and words (labels excluded).")
class SpeakerSummary:
    speaker: str
    turns: int
    words: int
    is_subject: bool = strawberry.field(description="The speaker is the source's subject.")


@strawberry.type(description="Where a fragment's span came from, derived from the source's "
                             "segments: pages, time range, speaker, chapter.")
class FragmentLocation:
    page: int | None = strawberry.field(description="The first page the span touches.")
    pages: list[int] = strawberry.field(description="Every page it touches: a sentence over "
                                                    "a page break gives [12, 13].")
    time_start_ms: int | None = strawberry.field(description="The first cue's start.")
    time_end_ms: int | None = strawberry.field(description="The last cue's end.")
    speaker: str | None = strawberry.field(description="Who speaks where the span starts.")
    chapter: str | None


def location_of(row: Any) -> FragmentLocation | None:
    """A stored fragment's location; None when its source has no segments there."""
    first, last = getattr(row, "page_first", None), getattr(row, "page_last", None)
    values = (first, row.time_start_ms, row.speaker, row.chapter)
    if all(value is None for value in values):
        return None
    pages = list(range(first, (last or first) + 1)) if first is not None else []
    return FragmentLocation(page=first, pages=pages, time_start_ms=row.time_start_ms,
                            time_end_ms=row.time_end_ms, speaker=row.speaker,
                            chapter=row.chapter)


async def segments_of_source(info: strawberry.Info, source_id: int, content: str,
                             first: int | None, after: str | None,
                             kinds: list[d.SegmentKind] | None) -> SourceSegmentConnection:
    """Source.segments: one keyset page, in text order."""
    try:
        page_request = validate_page(first, after, None, None)
        page_request = replace(page_request, count=wants_total(info))
        async with page_read(info.context.runtime, page_request.count) as session:
            page = await segment_page(session, source_id, page_request, kinds)
    except DomainError as exc:
        raise public(exc) from None
    return build_connection(  # type: ignore[no-any-return]
        SourceSegmentConnection, page, lambda row: SourceSegment.from_row(row, content))


async def speakers_of_source(info: strawberry.Info, source_id: int,
                             subject_speakers: tuple[str, ...], content: str
                             ) -> list[SpeakerSummary]:
    """Source.speakers: each speaker with turns and words, in order of appearance."""
    async with page_read(info.context.runtime, False) as session:
        segments = await SegmentRepository(session).of_source(source_id)
    theirs = set(subject_speakers)
    return [SpeakerSummary(speaker=stats.speaker, turns=stats.turns, words=stats.words,
                           is_subject=stats.speaker in theirs)
            for stats in SegmentIndex(content, segments).speakers_summary()]
