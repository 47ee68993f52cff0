"""From a model's parsed answer to stored fragments: grounding, MIU lint, taxonomy (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from domain.chunking import Chunk
from domain.grounding import ground_quote, merge_overlaps
from domain.locations import Location, SegmentIndex
from domain.miu import lint_fragment
from domain.model import Category, FragmentType, Grounding
from domain.parsing import ExtractedFragment


@dataclass(frozen=True, slots=True)
class PreparedFragment:
    """A fragment ready to store: its place in the source and our own MIU verdict."""

    ordinal: int
    content: str
    quote: str
    char_start: int | None
    char_end: int | None
    grounding: Grounding
    grounding_score: float
    category: Category
    subcategory: str | None
    fragment_type: FragmentType
    context: str | None
    insight: str | None
    relevance: int
    confidence: float
    is_complete: bool
    has_clean_boundaries: bool
    tags: tuple[str, ...]
    parse_notes: tuple[str, ...] = ()
    # Where the grounded span lies (domain/locations.py): None / False when ungrounded or
    # when the source has no segment map.
    speaker: str | None = None
    mixes_speakers: bool = False
    page_first: int | None = None
    page_last: int | None = None
    time_start_ms: int | None = None
    time_end_ms: int | None = None
    chapter: str | None = None
    raw_record: dict[str, Any] | None = None

    @property
    def is_grounded(self) -> bool:
        return self.grounding is not Grounding.UNGROUNDED


MAX_SUBCATEGORY_CHARS = 100  # the column's width
MAX_SPEAKER_CHARS = 200  # the speaker column's width (as source_segments.speaker)

# Stored apart from the fragment columns a page reads: its place in the chunk, the
# fragment_tags links, and the record as the model sent it (read on demand).
_STORED_APART = frozenset({"ordinal", "tags", "raw_record"})

# The one list of a fragment's fields, in storage order: PreparedFragment's fields but those
# stored apart. The chunk insert (db/processing.py) and the GraphQL Fragment's reads
# (api/types) derive from it.
FRAGMENT_FIELDS: tuple[str, ...] = tuple(
    field.name for field in fields(PreparedFragment) if field.name not in _STORED_APART)


_NOWHERE = Location()


def prepare_fragments(source: str, chunk: Chunk, answer: Sequence[ExtractedFragment], *,
                      language: str, start_ordinal: int = 0,
                      fuzzy_threshold: float = 85.0,
                      answer_notes: Sequence[str] = (),
                      segments: SegmentIndex | None = None) -> list[PreparedFragment]:
    """Ground every quote near its chunk (the content when the model gave no quote), lint the
    grounded text; the taxonomy was resolved by the parser. Each fragment's parse notes are the
    answer's (`answer_notes`: how the answer as a whole was read) and then its own. With the
    source's `segments`, a grounded fragment gets its location, and mixing speakers fails
    its boundaries."""
    prepared: list[PreparedFragment] = []
    for offset, item in enumerate(answer):
        quote = item.quote or item.content
        found = ground_quote(source, quote, hint=(chunk.start, chunk.end),
                             fuzzy_threshold=fuzzy_threshold)
        where = _NOWHERE
        if found.start is not None and found.end is not None:
            text = source[found.start:found.end]
            if segments is not None:
                where = segments.locate(found.start, found.end)
            check = lint_fragment(text, language=language, source=source,
                                  span=(found.start, found.end), speakers=where.speakers)
        else:
            check = lint_fragment(item.content, language=language)
        prepared.append(PreparedFragment(
            ordinal=start_ordinal + offset,
            content=item.content,
            quote=item.quote,
            char_start=found.start,
            char_end=found.end,
            grounding=found.grounding,
            grounding_score=round(float(found.score), 2),
            category=item.category,
            subcategory=item.subcategory[:MAX_SUBCATEGORY_CHARS] or None,
            fragment_type=item.fragment_type,
            context=item.context or None,
            insight=item.insight or None,
            relevance=item.relevance,
            confidence=item.confidence,
            is_complete=check.is_complete,
            has_clean_boundaries=check.has_clean_boundaries,
            parse_notes=(*answer_notes, *item.notes),
            speaker=where.speaker[:MAX_SPEAKER_CHARS] if where.speaker else None,
            mixes_speakers=len(where.speakers) > 1,
            page_first=where.page,
            page_last=where.pages[-1] if where.pages else None,
            time_start_ms=where.time_start_ms,
            time_end_ms=where.time_end_ms,
            chapter=where.chapter,
            tags=tuple(item.tags),
            raw_record=dict(item.raw) if item.raw else None,
        ))
    return merge_overlaps(prepared, key=lambda f: (f.char_start, f.char_end),
                          quote=lambda f: f.quote or f.content)
