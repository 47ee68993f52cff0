"""Span metrics people already know, reported beside the IoU agreement of `domain/quality.py`.

Two families (docs/QUALITY.md has the formulas):

- **Word level.** The source is cut into words (`word_spans`); a word counts as *predicted*
  when any of its characters lies inside a predicted span, as *reference* when any lies inside
  a reference span. Precision = overlap / predicted words, recall = overlap / reference words,
  F1 their harmonic mean, where *overlap* counts the words that are both. A fragment that is a
  few characters off still earns nearly all its words, where IoU matching gives all or nothing.
- **Span-match rates.** The one-to-one greedy IoU matching of `domain.quality.match_spans`, at
  IoU 0.3, 0.5 and 0.7, so a reader sees how the agreement depends on the threshold.

Empty sides follow `domain.quality.MatchResult`: both empty → precision = recall = F1 = 1.0
(nothing to find, nothing invented); one side empty → 0.0 for all three.

Pure functions: no I/O, no framework. Spans are half-open character ranges [start, end) in
code points, as everywhere in MMOS.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from domain.model import Span
from domain.quality import MatchResult, match_spans

__all__ = [
    "DEFAULT_THRESHOLDS", "SpanMatchRate", "WordScores", "span_match_rates",
    "word_counts_by_block", "word_level", "word_spans",
]

DEFAULT_THRESHOLDS: tuple[float, ...] = (0.3, 0.5, 0.7)

# A word is a maximal run of word characters, where a word character is a Unicode letter or
# digit (`str.isalnum()`: `[^\W_]` in Python's Unicode regex) or a combining mark of the
# Combining Diacritical Marks block (U+0300-U+036F, so decomposed accents stay inside their
# word). An apostrophe (U+0027 ' or U+2019 ’) joins two such runs when it has a word character
# on both sides ("don't", "l’homme" are one word each); anywhere else it is punctuation.
# Underscores, hyphens, other punctuation, symbols and whitespace are never part of a word, so
# "well-known" is two words and "snake_case" is two words.
_WORD_CHAR = r"(?:[^\W_]|[\u0300-\u036f])"
_WORD = re.compile(rf"{_WORD_CHAR}+(?:['\u2019]{_WORD_CHAR}+)*")


def word_spans(text: str) -> tuple[Span, ...]:
    """The words of `text` as spans, in source order (disjoint, non-empty); see `_WORD`."""
    return tuple(Span(m.start(), m.end()) for m in _WORD.finditer(text))


# --- word level ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WordScores:
    """Word-level agreement: counts of words, and the rates computed from them."""

    precision: float
    recall: float
    f1: float
    predicted_words: int
    reference_words: int
    overlap_words: int

    @classmethod
    def of_counts(cls, predicted: int, reference: int, overlap: int) -> WordScores:
        """Rates from counts, with `MatchResult`'s conventions for empty sides."""
        if not 0 <= overlap <= min(predicted, reference):
            raise ValueError(f"overlap {overlap} exceeds a side ({predicted}, {reference})")
        as_match = MatchResult(tp=overlap, fp=predicted - overlap, fn=reference - overlap)
        return cls(precision=as_match.precision, recall=as_match.recall, f1=as_match.f1,
                   predicted_words=predicted, reference_words=reference,
                   overlap_words=overlap)


class _Union:
    """The union of some spans as sorted disjoint intervals; `touches` costs O(log n)."""

    def __init__(self, spans: Iterable[Span]) -> None:
        starts: list[int] = []
        ends: list[int] = []
        for s in sorted((s for s in spans if s.length), key=lambda s: s.start):
            if ends and s.start <= ends[-1]:
                ends[-1] = max(ends[-1], s.end)
            else:
                starts.append(s.start)
                ends.append(s.end)
        self._starts = starts
        self._ends = ends

    def touches(self, span: Span) -> bool:
        """True when `span` shares at least one character with the union."""
        # The intervals are disjoint and sorted: the first one ending after span.start is the
        # only one that can overlap it.
        i = bisect_right(self._ends, span.start)
        return bool(span.length) and i < len(self._ends) and self._starts[i] < span.end


def _flags(predicted: Sequence[Span], reference: Sequence[Span],
           words: Sequence[Span]) -> Iterable[tuple[Span, bool, bool]]:
    pred, ref = _Union(predicted), _Union(reference)
    for word in words:
        if word.length:  # an empty span has no character to be covered
            yield word, pred.touches(word), ref.touches(word)


def word_level(predicted: Sequence[Span], reference: Sequence[Span],
               words: Sequence[Span]) -> WordScores:
    """Word-level precision, recall and F1 of `predicted` against `reference`.

    A word is predicted (reference) when any of its characters is covered by a predicted
    (reference) span. O((words + spans) log spans): the spans are merged once, each word is
    then looked up by bisection. Empty words are ignored.
    """
    p = r = both = 0
    for _, in_pred, in_ref in _flags(predicted, reference, words):
        p += in_pred
        r += in_ref
        both += in_pred and in_ref
    return WordScores.of_counts(p, r, both)


def word_counts_by_block(predicted: Sequence[Span], reference: Sequence[Span],
                         words: Sequence[Span], blocks: Sequence[Span]
                         ) -> list[tuple[int, int, int]]:
    """(predicted_words, reference_words, overlap_words) per block, in the order of `blocks`.

    The counts are additive: summed over blocks they are `word_level`'s counts, so a bootstrap
    can resample blocks (chunks). A word belongs to the last block starting at or before the
    word's start (overlapping blocks: the later one); a word before the first block goes to the
    first block. Raises ValueError without blocks.
    """
    if not blocks:
        raise ValueError("word counts by block need at least one block")
    order = sorted(range(len(blocks)), key=lambda i: (blocks[i].start, i))
    starts = [blocks[i].start for i in order]
    counts = [[0, 0, 0] for _ in blocks]
    for word, in_pred, in_ref in _flags(predicted, reference, words):
        row = counts[order[max(0, bisect_right(starts, word.start) - 1)]]
        row[0] += in_pred
        row[1] += in_ref
        row[2] += in_pred and in_ref
    return [(a, b, c) for a, b, c in counts]


# --- span-match rates ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpanMatchRate:
    """One-to-one IoU matching at one threshold: counts and rates."""

    iou: float
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float


def span_match_rates(predicted: Sequence[Span], reference: Sequence[Span],
                     thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
                     rejected: Sequence[Span] = ()) -> tuple[SpanMatchRate, ...]:
    """`match_spans` at each IoU threshold (in the order given); matches on `rejected` spans
    are false positives, as in the score's agreement term."""
    rates = []
    for threshold in thresholds:
        m = match_spans(predicted, reference, threshold, rejected=rejected)
        rates.append(SpanMatchRate(iou=threshold, tp=m.tp, fp=m.fp, fn=m.fn,
                                   precision=m.precision, recall=m.recall, f1=m.f1))
    return tuple(rates)
