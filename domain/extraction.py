"""From a model's parsed answer to stored fragments: grounding, MIU lint, taxonomy (pure)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from domain.chunking import Chunk
from domain.grounding import ground_quote, merge_overlaps
from domain.miu import lint_fragment
from domain.model import Category, FragmentType, Grounding
from domain.parsing import ExtractedFragment

_TYPE_ALIASES = {
    "quote": FragmentType.DIRECT_QUOTE,
    "directquote": FragmentType.DIRECT_QUOTE,
    "citation": FragmentType.DIRECT_QUOTE,
    "story": FragmentType.ANECDOTE,
    "habit": FragmentType.PATTERN,
    "summary": FragmentType.SYNTHESIS,
}


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

    @property
    def is_grounded(self) -> bool:
        return self.grounding is not Grounding.UNGROUNDED


# The one list of a fragment's fields, in storage order: PreparedFragment's fields but its
# ordinal and tags (stored apart: its place in the chunk, and the fragment_tags links). The
# chunk insert (db/processing.py) and the GraphQL Fragment's reads (api/types) derive from it.
FRAGMENT_FIELDS: tuple[str, ...] = tuple(
    field.name for field in fields(PreparedFragment) if field.name not in {"ordinal", "tags"})


def fragment_type_of(raw: str | None) -> FragmentType:
    """Map a model's fragment type label onto the taxonomy (paraphrase when unknown)."""
    key = "".join(ch for ch in (raw or "").lower() if ch.isalpha())
    for member in FragmentType:
        if key == member.value.replace("_", ""):
            return member
    return _TYPE_ALIASES.get(key, FragmentType.PARAPHRASE)


def prepare_fragments(source: str, chunk: Chunk, answer: list[ExtractedFragment], *,
                      language: str, start_ordinal: int = 0,
                      fuzzy_threshold: float = 85.0) -> list[PreparedFragment]:
    """Ground every quote near its chunk, lint the grounded text, normalise the taxonomy."""
    prepared: list[PreparedFragment] = []
    for offset, item in enumerate(answer):
        quote = item.quote or item.content
        found = ground_quote(source, quote, hint=(chunk.start, chunk.end),
                             fuzzy_threshold=fuzzy_threshold)
        if found.start is not None and found.end is not None:
            text = source[found.start:found.end]
            check = lint_fragment(text, language=language, source=source,
                                  span=(found.start, found.end))
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
            category=Category.parse(item.category),
            subcategory=item.subcategory or None,
            fragment_type=fragment_type_of(item.fragment_type),
            context=item.context or None,
            insight=item.insight or None,
            relevance=item.relevance,
            confidence=item.confidence,
            is_complete=check.is_complete,
            has_clean_boundaries=check.has_clean_boundaries,
            tags=tuple(item.tags),
        ))
    return merge_overlaps(prepared, key=lambda f: (f.char_start, f.char_end),
                          quote=lambda f: f.quote or f.content)
