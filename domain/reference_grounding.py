"""Placing people's near-verbatim quotes in their source with the product's grounder (pure).

Quotes typed or pasted by a person are rarely exact: straight quotes for curly ones, a capital
dropped at the start, a word elided ("..." or "…") or simply missing, two dialogue turns
joined without the narration between them. `domain.grounding.ground_quote` copes with the
first two (normalised, case-insensitive exact match) and with a missing word (fuzzy). For
elisions and joined turns the quote is split into its parts (at ellipses, sentence ends and
turn boundaries); each part is grounded near the longest one, and the covering span is taken
only when every part is found, in order, with short gaps. Anything less stays ungrounded, with
the closest span for a person to look at: a wrong place is worse than none.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache

from rapidfuzz import fuzz

from domain.grounding import GroundedSpan, ground_quote
from domain.model import Grounding

MAX_GAP_CHARS = 250  # between two parts of one quote: an elided clause or a line of narration
MIN_ANCHOR_CHARS = 12  # the part grounded first (without a hint) must be at least this long
MIN_WORDS_FOR_DROPS = 6  # a shorter quote with a word missing is too easy to place wrongly
MAX_DROPPED_WORDS = 3
_DROP_MARGIN = 60  # characters around the closest span where its words are compared
_WORD = re.compile(r"\w+(?:'\w+)*")
_CLOSEST_NEEDLE_CHARS = 500  # the closest span of a longer quote is sought for its beginning

_ELLIPSIS = re.compile(r"\s*(?:[\[(]\s*(?:\.{3,}|…)\s*[\])]|\.{3,}|…)\s*")
_QUOTES = "\"'“”‘’«»„"
_SENTENCE_END = re.compile(r"[.!?;:][\"'”’»]*$")
_OPENING = re.compile(r"^[\"“«„]")
_CLOSING = re.compile(r"[\"”»]$")
# One character for one: lower case and straight quotes, so offsets stay the source's own.
_FOLD = str.maketrans({"“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "‘": "'", "’": "'",
                       "–": "-", "—": "-", "…": ".", "\u00ad": " ", "\n": " ", "\r": " ",
                       "\t": " "})


@dataclass(frozen=True, slots=True)
class ReferencePlacement:
    """Where a quote sits (start, end) or, ungrounded, the closest span and its score."""

    grounding: Grounding
    start: int | None
    end: int | None
    score: float
    closest_start: int | None = None
    closest_end: int | None = None

    @property
    def is_grounded(self) -> bool:
        return self.grounding is not Grounding.UNGROUNDED


def place_reference(source: str, quote: str) -> ReferencePlacement:
    """Ground a person's quote in the whole source: exact, then by parts, then fuzzy."""
    whole = ground_quote(source, quote)
    if whole.grounding is Grounding.EXACT:
        return _placed(whole)
    parts = quote_parts(quote)
    if len(parts) > 1:
        joined = _ground_parts(source, parts)
        if joined is not None:
            return joined
    if whole.grounding is Grounding.FUZZY:
        return _placed(whole)
    start, end, score = closest_span(source, quote)
    if start is not None and end is not None:
        dropped = _ground_dropped_words(source, quote, start, end)
        if dropped is not None:
            return dropped
    return ReferencePlacement(Grounding.UNGROUNDED, None, None, score, start, end)


def quote_parts(quote: str) -> list[str]:
    """The pieces of a quote that should each be verbatim: split at ellipses, sentence ends
    and dialogue-turn boundaries, surrounding quote marks trimmed."""
    parts: list[str] = []
    for piece in _ELLIPSIS.split(quote):
        parts.extend(_turns(piece))
    trimmed = (part.strip().strip(_QUOTES).strip() for part in parts)
    return [part for part in trimmed if any(char.isalnum() for char in part)]


def _turns(text: str) -> list[str]:
    pieces: list[str] = []
    start = 0
    for gap in re.finditer(r"\s+", text):
        before, after = text[start:gap.start()], text[gap.end():]
        ends = _SENTENCE_END.search(before) is not None
        turn = _CLOSING.search(before) is not None and _OPENING.match(after) is not None
        if ends or turn:
            pieces.append(before)
            start = gap.end()
    pieces.append(text[start:])
    return pieces


def _ground_parts(source: str, parts: list[str]) -> ReferencePlacement | None:
    by_length = sorted(range(len(parts)), key=lambda i: -len(parts[i]))
    anchor_index, anchor = None, None
    for index in by_length:
        if len(parts[index]) < MIN_ANCHOR_CHARS:
            break
        found = ground_quote(source, parts[index])
        if found.start is not None:
            anchor_index, anchor = index, found
            break
    if anchor is None or anchor.start is None or anchor.end is None:
        return None
    reach = sum(len(part) for part in parts) + MAX_GAP_CHARS * len(parts)
    window = (max(0, anchor.start - reach), anchor.end + reach)
    spans: list[GroundedSpan] = []
    for index, part in enumerate(parts):
        found = anchor if index == anchor_index else ground_quote(source, part, hint=window)
        if found.start is None or found.end is None:
            return None
        if found.start < window[0] or found.end > window[1]:
            return None
        spans.append(found)
    for previous, current in itertools.pairwise(spans):
        assert previous.end is not None and current.start is not None
        if current.start < previous.end or current.start - previous.end > MAX_GAP_CHARS:
            return None
    weight = sum(len(part) for part in parts)
    score = sum(span.score * len(part) for span, part in zip(spans, parts, strict=True)) / weight
    return ReferencePlacement(Grounding.FUZZY, spans[0].start, spans[-1].end, round(score, 2))


def _ground_dropped_words(source: str, quote: str, start: int,
                          end: int) -> ReferencePlacement | None:
    """The quote as the source's words around its closest span with a word or two left out:
    every word of the quote found in order, at most MAX_DROPPED_WORDS source words between
    them (in at most two places); the span runs from the first word to the last."""
    wanted = [word.lower() for word in _WORD.findall(quote.translate(_FOLD))]
    if len(wanted) < MIN_WORDS_FOR_DROPS:
        return None
    low, high = max(0, start - _DROP_MARGIN), min(len(source), end + _DROP_MARGIN)
    region = _folded(source)[low:high]
    words = list(_WORD.finditer(region))
    matcher = SequenceMatcher(None, wanted, [w.group().lower() for w in words], autojunk=False)
    blocks = [block for block in matcher.get_matching_blocks() if block.size]
    if sum(block.size for block in blocks) != len(wanted) or len(blocks) > 3:
        return None
    first, last = blocks[0].b, blocks[-1].b + blocks[-1].size - 1
    dropped = (last - first + 1) - len(wanted)
    if dropped > min(MAX_DROPPED_WORDS, max(1, len(wanted) // 8)):
        return None
    span_start, span_end = low + words[first].start(), low + words[last].end()
    while span_end < len(source) and source[span_end] in ".,;:!?\"'”’»)":
        span_end += 1  # the closing punctuation the quote's last word carries
    score = fuzz.ratio(" ".join(wanted), " ".join(
        w.group().lower() for w in words[first:last + 1]))
    return ReferencePlacement(Grounding.FUZZY, span_start, span_end, round(float(score), 2))


def _placed(found: GroundedSpan) -> ReferencePlacement:
    return ReferencePlacement(found.grounding, found.start, found.end, round(found.score, 2))


@lru_cache(maxsize=4)
def _folded(source: str) -> str:
    folded = source.translate(_FOLD)
    lowered = folded.lower()
    if len(lowered) == len(folded):
        return lowered
    # A few characters lower-case to two (İ): keep those as they are, offsets must not move.
    return "".join(char if len(char.lower()) != 1 else char.lower() for char in folded)


def closest_span(source: str, quote: str) -> tuple[int | None, int | None, float]:
    """The span of `source` most like `quote` (rapidfuzz partial alignment) and its score;
    (None, None, 0) when nothing aligns at all."""
    needle = " ".join(quote.translate(_FOLD).lower().split())[:_CLOSEST_NEEDLE_CHARS]
    if not needle or not source:
        return None, None, 0.0
    alignment = fuzz.partial_ratio_alignment(needle, _folded(source))
    if alignment is None or alignment.dest_end <= alignment.dest_start:
        return None, None, 0.0
    return alignment.dest_start, alignment.dest_end, round(float(alignment.score), 2)
