"""Locate a fragment's quote in its source: exact, fuzzy or ungrounded, at original offsets.

Matching runs on a normalised copy of the source (whitespace runs, typographic quotes,
dashes, ellipses and Unicode compatibility forms folded) that remembers, for every
normalised character, the original characters it came from.

Case: a quote is first searched case-sensitively, then case-insensitively. Both count as
EXACT: models often re-capitalise the first word of a quote taken from mid-sentence, and the
span found is still the right one. For a case-insensitive match the guarantee
`normalise_text(source[start:end]) == normalise_text(quote)` holds after `str.casefold`.
Fuzzy matching is always case-insensitive.
"""

from __future__ import annotations

import re
import unicodedata
from array import array
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

from rapidfuzz import fuzz

from domain.model import Grounding, Span

T = TypeVar("T")

EXACT_SCORE = 100.0
MIN_FUZZY_CHARS = 12  # shorter quotes (after normalising) can only match exactly
MIN_FUZZY_WORDS = 3
_MAX_OCCURRENCES = 1000  # a quote repeated more often than this is not worth ranking
_WINDOW_MARGIN = 32  # slack around the hint window: a quote from a chunk lies inside it

_FOLDS = {
    "“": '"', "”": '"', "„": '"', "‟": '"', "«": '"', "»": '"', "″": '"',
    "‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'", "`": "'", "´": "'",
    "–": "-", "—": "-", "‒": "-", "―": "-", "‐": "-", "‑": "-", "−": "-",
    "…": "...",
    "\u00ad": "", "\u200b": "", "\u200c": "", "\u200d": "", "\ufeff": "",
}  # fmt: skip


@dataclass(frozen=True)
class GroundedSpan:
    """Where a quote was found: offsets in the original source, or None when ungrounded."""

    grounding: Grounding
    start: int | None
    end: int | None
    score: float


@dataclass(frozen=True)
class _Normalised:
    """Normalised text; `starts[i]` is the offset of the original character behind `text[i]`.

    A collapsed whitespace run maps to the run's first character. Matches never end on a
    space (quotes are trimmed), so a match's original end is the last character's offset + 1.
    """

    text: str
    starts: array[int]  # an int array: a few bytes per character of a long cached source

    def original(self, start: int, end: int) -> tuple[int, int]:
        return self.starts[start], self.starts[end - 1] + 1

    def position(self, offset: int) -> int:
        return bisect_left(self.starts, offset)


def normalise_text(text: str) -> str:
    """Text with whitespace collapsed and quotes, dashes, ellipses and Unicode forms folded."""
    # Matching works on decomposed characters; callers get the composed (NFC) form back.
    return unicodedata.normalize("NFC", _normalise(text, casefold=False).text)


def ground_quote(
    source: str,
    quote: str,
    *,
    hint: tuple[int, int] | None = None,
    fuzzy_threshold: float = 85.0,
) -> GroundedSpan:
    """Ground `quote` in `source`, preferring occurrences inside or nearest to `hint`."""
    ungrounded = GroundedSpan(Grounding.UNGROUNDED, None, None, 0.0)
    needle = _normalise(quote, casefold=False).text
    if not needle:
        return ungrounded
    folded_needle = _normalise(quote, casefold=True).text
    for casefold, target in ((False, needle), (True, folded_needle)):
        found = _exact(_index(source, casefold), target, hint)
        if found is not None:
            return GroundedSpan(Grounding.EXACT, found[0], found[1], EXACT_SCORE)
    if len(needle) < MIN_FUZZY_CHARS or len(needle.split()) < MIN_FUZZY_WORDS:
        return ungrounded  # short quotes match too many places approximately
    return _fuzzy(_index(source, True), folded_needle, hint, fuzzy_threshold)


def merge_overlaps(
    items: Sequence[T],
    key: Callable[[T], tuple[int | None, int | None]],
    *,
    quote: Callable[[T], str] | None = None,
    iou_threshold: float = 0.8,
) -> list[T]:
    """Items without duplicates, keeping the first of each group, in input order.

    Grounded items (a `key` span with both offsets) are duplicates when their spans' IoU
    reaches `iou_threshold`; ungrounded items are duplicates when `quote` gives the same
    normalised, case-folded text (without `quote`, every ungrounded item is kept).
    """
    kept: list[T] = []
    spans: list[Span] = []
    texts: set[str] = set()
    for item in items:
        start, end = key(item)
        if start is not None and end is not None:
            span = Span(start, end)
            if any(_same_span(span, other, iou_threshold) for other in spans):
                continue
            spans.append(span)
        elif quote is not None:
            text = _normalise(quote(item), casefold=True).text
            if text in texts:
                continue
            texts.add(text)
        kept.append(item)
    return kept


def _same_span(a: Span, b: Span, iou_threshold: float) -> bool:
    return a == b or a.iou(b) >= iou_threshold


def _fold(char: str, casefold: bool) -> str:
    folded = _FOLDS.get(char)
    if folded is None:
        folded = char if char.isascii() else unicodedata.normalize("NFKD", char)
    return folded.casefold() if casefold else folded


# Runs of whitespace, runs of printable ASCII that no fold touches (everything from "!" to
# "~" except the backtick), or any other single character. Scanning by runs keeps the common
# case (plain ASCII words) out of a per-character Python loop.
_RUNS = re.compile(r"(\s+)|([!-_a-~]+)|(.)", re.DOTALL)


def _normalise(text: str, *, casefold: bool) -> _Normalised:
    out: list[str] = []
    starts = array("q")
    space_from: int | None = None  # start of the whitespace run not yet emitted
    for match in _RUNS.finditer(text):
        kind = match.lastindex
        i = match.start()
        if kind == 1:
            space_from = i if space_from is None else space_from
            continue
        if space_from is not None and out:  # leading and trailing runs are dropped
            out.append(" ")
            starts.append(space_from)
        space_from = None
        if kind == 2:
            run = match.group(2)
            out.append(run.lower() if casefold else run)  # casefold is lower for ASCII
            starts.extend(range(i, match.end()))
            continue
        for piece in _fold(match.group(3), casefold):
            out.append(piece)
            starts.append(i)
    return _Normalised("".join(out), starts)


@lru_cache(maxsize=8)
def _index(source: str, casefold: bool) -> _Normalised:
    # Cached: one source is grounded against many quotes in a row.
    return _normalise(source, casefold=casefold)


def _exact(index: _Normalised, needle: str, hint: tuple[int, int] | None) -> tuple[int, int] | None:
    if hint is not None:
        # Most quotes sit in their own chunk: a clean whole-word match there ends the search
        # without scanning (and ranking every copy in) the rest of a long source.
        lo, hi = index.position(hint[0]), index.position(hint[1])
        local = _best_occurrence(index, needle, hint, lo, hi)
        if local is not None and not local[0]:
            return local[2], local[3]
    found = _best_occurrence(index, needle, hint, 0, len(index.text))
    return None if found is None else (found[2], found[3])


def _best_occurrence(index: _Normalised, needle: str, hint: tuple[int, int] | None, lo: int,
                     hi: int) -> tuple[bool, int, int, int] | None:
    """The best occurrence of `needle` within normalised [lo, hi): whole words first, then
    nearest to the hint; as (cuts_word, distance, start, end) in original offsets."""
    candidates: list[tuple[bool, int, int, int]] = []
    position = index.text.find(needle, lo, hi)
    while position >= 0 and len(candidates) < _MAX_OCCURRENCES:
        end = position + len(needle)
        if _whole_characters(index, position, end):
            start, stop = index.original(position, end)
            cuts_word = _inside_word(index.text, position) or _inside_word(index.text, end)
            candidates.append((cuts_word, _distance(start, stop, hint), start, stop))
        position = index.text.find(needle, position + 1, hi)
    return min(candidates) if candidates else None


def _whole_characters(index: _Normalised, start: int, end: int) -> bool:
    """True when [start, end) neither splits an original character nor strands an accent."""
    text, starts = index.text, index.starts
    if start > 0 and starts[start] == starts[start - 1]:
        return False
    if end < len(text) and starts[end] == starts[end - 1]:
        return False
    return not (end < len(text) and unicodedata.combining(text[end]))


def _distance(start: int, end: int, hint: tuple[int, int] | None) -> int:
    """How far [start, end) reaches outside the hint window (0 when inside it)."""
    if hint is None:
        return 0
    return max(0, hint[0] - start, end - hint[1])


def _fuzzy(
    index: _Normalised, needle: str, hint: tuple[int, int] | None, threshold: float
) -> GroundedSpan:
    best = 0.0
    for low, high in _windows(index, hint):
        alignment = fuzz.partial_ratio_alignment(needle, index.text[low:high])
        if alignment is None or alignment.score < threshold:
            best = max(best, alignment.score if alignment else 0.0)
            continue
        start, end = _snap_to_words(
            index.text, low + alignment.dest_start, low + alignment.dest_end
        )
        # The stored score describes the stored span, not the unsnapped alignment.
        score = fuzz.ratio(needle, index.text[start:end]) if start < end else 0.0
        best = max(best, score)
        if score >= threshold:
            original_start, original_end = index.original(start, end)
            return GroundedSpan(Grounding.FUZZY, original_start, original_end, score)
    return GroundedSpan(Grounding.UNGROUNDED, None, None, best)


def _windows(index: _Normalised, hint: tuple[int, int] | None) -> list[tuple[int, int]]:
    """The hint window with a small margin, then the whole source (when that is larger)."""
    whole = (0, len(index.text))
    if hint is None:
        return [whole]
    low = max(0, index.position(hint[0]) - _WINDOW_MARGIN)
    high = min(len(index.text), index.position(hint[1]) + _WINDOW_MARGIN)
    return [(low, high)] if (low, high) == whole else [(low, high), whole]


def _is_word_char(char: str) -> bool:
    return char.isalnum() or unicodedata.combining(char) > 0


def _inside_word(text: str, position: int) -> bool:
    if position <= 0 or position >= len(text):
        return False
    return _is_word_char(text[position - 1]) and _is_word_char(text[position])


def _snap(text: str, position: int) -> int:
    """The word boundary nearest to `position` (towards the start when tied)."""
    if not _inside_word(text, position):
        return position
    left = position
    while _inside_word(text, left):
        left -= 1
    right = position
    while _inside_word(text, right):
        right += 1
    return left if position - left <= right - position else right


def _snap_to_words(text: str, start: int, end: int) -> tuple[int, int]:
    start, end = _snap(text, start), _snap(text, end)
    while start < end and text[start] == " ":
        start += 1
    while end > start and text[end - 1] == " ":
        end -= 1
    return start, end
