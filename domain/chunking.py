"""Split a source into chunks that fit a model's token budget, with exact code-point offsets.

Chunks break at paragraphs first, then sentences, then words, and only split inside a word
when one word alone exceeds the budget (even then an accent or emoji modifier stays with its
character, so one such cluster may exceed a budget of a token). A chunk never starts or ends
with whitespace; the gaps between consecutive chunks hold whitespace only, so every visible
character of the source lies in at least one chunk.

Transcripts add two hints. `protected` spans (a cue's words) are never cut: no chunk starts
or ends strictly inside one, nor does an overlap start there, whenever a clean break fits the
budget (only when none does, the plain rule decides). `strong` positions (turn starts) rank
above paragraphs as the break a chunk prefers to end at.
"""

from __future__ import annotations

import math
import re
import unicodedata
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from domain.model import Span

TokenCounter = Callable[[str], int]

# Strength of the break *before* a piece: chunks prefer to end at the strongest break.
_TURN, _PARAGRAPH, _LINE, _SENTENCE, _WORD, _CHAR = 5, 4, 3, 2, 1, 0

_PARAGRAPH_BREAK = re.compile(r"(?:\r\n|\r|\n)[^\S\r\n]*(?:\r\n|\r|\n)\s*")
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s|$)")
_WORD_RUN = re.compile(r"\S+")
_NON_SPACE = re.compile(r"\S")


def _word_set(*lines: str) -> frozenset[str]:
    """Space-separated words as a set (keeps long marker lists readable)."""
    return frozenset(" ".join(lines).split())


# Words whose final period is part of the word, not the end of a sentence (EN and PT).
_ABBREVIATIONS = _word_set(
    "mr mrs ms dr dra drs dras sr sra srs sras srta prof profa profs st jr "
    "e.g i.e cf vs al p.ex ex exa exmo exma av gen gov sen dep fig vol cap pág pp",
)


@dataclass(frozen=True)
class Chunk:
    """One piece of a source: `text == source[start:end]` (code-point offsets)."""

    index: int
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class _Piece:
    start: int
    end: int
    level: int  # strength of the break before this piece
    # The piece's start / end falls strictly inside a protected span.
    cuts_start: bool = False
    cuts_end: bool = False


def estimate_tokens(text: str) -> int:
    """Rough token count: about four characters per token, rounded up."""
    return math.ceil(len(text) / 4)


def paragraph_spans(text: str) -> list[Span]:
    """Paragraphs separated by blank lines, trimmed of surrounding whitespace."""
    spans: list[Span] = []
    cursor = 0
    for brk in _PARAGRAPH_BREAK.finditer(text):
        spans.extend(_trimmed(text, cursor, brk.start()))
        cursor = brk.end()
    spans.extend(_trimmed(text, cursor, len(text)))
    return spans


def sentence_spans(text: str) -> list[Span]:
    """Sentences of `text`, trimmed; a blank line always ends a sentence.

    A sentence ends at `. ! ? …` (plus closing quotes or brackets) followed by whitespace,
    unless the next word starts in lower case (ellipsis inside a sentence, "e.g. the") or the
    period closes a known abbreviation or an initial ("Dr.", "Sra.", "J."). A single line
    break counts as a space: hard-wrapped prose keeps its sentences whole.
    """
    spans: list[Span] = []
    for paragraph in paragraph_spans(text):
        cursor = paragraph.start
        for end_mark in _SENTENCE_END.finditer(text, paragraph.start, paragraph.end):
            following = _NON_SPACE.search(text, end_mark.end(), paragraph.end)
            if following is None:
                break
            if _continues_sentence(text, end_mark.start(), following.start()):
                continue
            spans.append(Span(cursor, end_mark.end()))
            cursor = following.start()
        spans.append(Span(cursor, paragraph.end))
    return spans


def chunk_text(
    text: str,
    *,
    max_tokens: int,
    overlap_tokens: int = 0,
    count_tokens: TokenCounter | None = None,
    protected: Sequence[Span] = (),
    strong: Sequence[int] = (),
) -> list[Chunk]:
    """Chunks within `max_tokens`, each opening with ~`overlap_tokens` of the previous one's;
    no boundary inside a `protected` span when avoidable, `strong` positions preferred."""
    # The overlap is whole sentences and at most half the budget, so each chunk brings new text.
    if max_tokens < 1:
        raise ValueError("max_tokens must be at least 1")
    if overlap_tokens < 0:
        raise ValueError("overlap_tokens cannot be negative")
    count = count_tokens or estimate_tokens
    pieces = _pieces(text, max_tokens, count)
    if protected or strong:
        pieces = _hinted(pieces, protected, strong)
    overlap = min(overlap_tokens, max_tokens // 2)
    chunks: list[Chunk] = []
    first = floor = 0
    while first < len(pieces):
        last = _chunk_end(text, pieces, first, floor, max_tokens, count)
        start, end = pieces[first].start, pieces[last].end
        chunks.append(Chunk(len(chunks), start, end, text[start:end]))
        if last + 1 >= len(pieces):
            break
        first = _overlap_start(text, pieces, first, last, overlap, max_tokens, count)
        floor = last + 1  # the next chunk must bring at least one new piece
    return chunks


def split_chunk(chunk: Chunk) -> tuple[Chunk, Chunk]:
    """Halves of `chunk` cut near the middle (at a sentence, else a space), same index."""
    cut = _split_point(chunk.text)
    if cut is None:
        raise ValueError("a chunk needs at least two characters to be split")
    head_end, tail_start = cut
    head = Chunk(chunk.index, chunk.start, chunk.start + head_end, chunk.text[:head_end])
    tail_text = chunk.text[tail_start:]
    return head, Chunk(chunk.index, chunk.start + tail_start, chunk.end, tail_text)


def _trimmed(text: str, start: int, end: int) -> list[Span]:
    segment = text[start:end]
    stripped = segment.strip()
    if not stripped:
        return []
    lead = len(segment) - len(segment.lstrip())
    return [Span(start + lead, start + lead + len(stripped))]


def _continues_sentence(text: str, mark_start: int, next_start: int) -> bool:
    if text[next_start].islower():
        return True
    if text[mark_start] != ".":
        return False
    word_start = mark_start
    while word_start > 0 and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start:mark_start].lstrip("\"'“‘«([—–-")
    is_initial = len(word) == 1 and word.isupper()
    return is_initial or word.lower() in _ABBREVIATIONS


def _pieces(text: str, max_tokens: int, count: TokenCounter) -> list[_Piece]:
    """Sentences, with the sentences too big for the budget broken into words or characters."""
    pieces: list[_Piece] = []
    previous_end = 0
    for sentence in sentence_spans(text):
        gap = text[previous_end : sentence.start]
        level = _PARAGRAPH if not pieces or _PARAGRAPH_BREAK.search(gap) else _SENTENCE
        if level == _SENTENCE and ("\n" in gap or "\r" in gap):
            level = _LINE
        parts = _fitting_parts(text, sentence, max_tokens, count)
        pieces.append(_Piece(parts[0].start, parts[0].end, level))
        pieces.extend(parts[1:])
        previous_end = sentence.end
    return pieces


def _hinted(pieces: list[_Piece], protected: Sequence[Span], strong: Sequence[int]) -> list[_Piece]:
    """Pieces marked where they cut a protected span, and raised to _TURN after a strong
    position (one in the gap before a piece or at its start)."""
    spans = sorted((s.start, s.end) for s in protected if s.end - s.start > 1)
    starts = [a for a, _ in spans]
    reach: list[int] = []  # the furthest end among the spans starting so far
    for _, b in spans:
        reach.append(max(b, reach[-1]) if reach else b)

    def inside(position: int) -> bool:
        i = bisect_left(starts, position) - 1  # spans starting strictly before `position`
        return i >= 0 and reach[i] > position

    marks = sorted(strong)
    hinted: list[_Piece] = []
    previous_end = -1
    for piece in pieces:
        j = bisect_left(marks, previous_end + 1)
        turn = j < len(marks) and marks[j] <= piece.start
        hinted.append(replace(piece, level=_TURN if turn else piece.level,
                              cuts_start=inside(piece.start), cuts_end=inside(piece.end)))
        previous_end = piece.end
    return hinted


def _fitting_parts(text: str, sentence: Span, max_tokens: int, count: TokenCounter) -> list[_Piece]:
    if count(text[sentence.start : sentence.end]) <= max_tokens:
        return [_Piece(sentence.start, sentence.end, _WORD)]
    parts: list[_Piece] = []
    for word in _WORD_RUN.finditer(text, sentence.start, sentence.end):
        if count(word.group()) <= max_tokens:
            parts.append(_Piece(word.start(), word.end(), _WORD))
            continue
        characters = _characters(text, word.start(), word.end())
        parts.extend(
            _Piece(a, b, _WORD if k == 0 else _CHAR) for k, (a, b) in enumerate(characters)
        )
    return parts


def _characters(text: str, start: int, end: int) -> list[tuple[int, int]]:
    # Combining marks and joiners stay with their base character (é, 👍🏽, 👨‍👩‍👧).
    bounds: list[tuple[int, int]] = []
    for i in range(start, end):
        glued = (
            unicodedata.combining(text[i])
            or text[i] in "\u200d\ufe0f"
            or ("\U0001f3fb" <= text[i] <= "\U0001f3ff")
        )
        follows_joiner = i > start and text[i - 1] == "\u200d"
        if bounds and (glued or follows_joiner):
            bounds[-1] = (bounds[-1][0], i + 1)
        else:
            bounds.append((i, i + 1))
    return bounds


def _chunk_end(
    text: str,
    pieces: list[_Piece],
    first: int,
    floor: int,
    max_tokens: int,
    count: TokenCounter,
) -> int:
    """Index of the last piece of the chunk starting at `first`; never below `floor`."""
    start = pieces[first].start
    low, high = floor, len(pieces) - 1
    while low < high:  # the furthest piece that still fits (token counts grow with length)
        mid = (low + high + 1) // 2
        if count(text[start : pieces[mid].end]) <= max_tokens:
            low = mid
        else:
            high = mid - 1
    if low == len(pieces) - 1:
        return low
    # End at the strongest break found in the second half of the chunk, the latest if tied;
    # a break that cuts a protected span only when no clean one fits (first half included).
    halfway = start + (pieces[low].end - start) / 2
    candidates = [i for i in range(floor, low + 1) if pieces[i].end >= halfway]
    clean = [i for i in candidates if not _cuts(pieces, i)]
    if not clean:
        clean = [i for i in range(floor, low + 1) if not _cuts(pieces, i)]
    return max(clean or candidates, key=lambda i: (pieces[i + 1].level, i))


def _cuts(pieces: list[_Piece], i: int) -> bool:
    """Whether a break after piece `i` falls inside a protected span."""
    return pieces[i].cuts_end or pieces[i + 1].cuts_start


def _overlap_start(
    text: str,
    pieces: list[_Piece],
    first: int,
    last: int,
    overlap: int,
    max_tokens: int,
    count: TokenCounter,
) -> int:
    """First piece of the next chunk: whole sentences repeated from the end of this one."""
    chosen = last + 1
    for i in range(last, first, -1):
        if count(text[pieces[i].start : pieces[last].end]) > overlap:
            break
        fits_new_piece = count(text[pieces[i].start : pieces[last + 1].end]) <= max_tokens
        if pieces[i].level >= _SENTENCE and fits_new_piece and not pieces[i].cuts_start:
            chosen = i
    return chosen


def _split_point(text: str) -> tuple[int, int] | None:
    """(end of the head, start of the tail) inside `text`, or None if it cannot be split."""
    middle = len(text) / 2
    starts = [s.start for s in sentence_spans(text)[1:]]
    central = [s for s in starts if len(text) / 4 <= s <= 3 * len(text) / 4]
    if central:
        tail = min(central, key=lambda s: abs(s - middle))
        return len(text[:tail].rstrip()), tail
    gaps = [m for m in re.finditer(r"\s+", text) if m.start() > 0 and m.end() < len(text)]
    if gaps:
        gap = min(gaps, key=lambda m: abs(m.start() - middle))
        return gap.start(), gap.end()
    bounds = _characters(text, 0, len(text))
    if len(bounds) < 2:
        return None
    cut = bounds[len(bounds) // 2][0]
    return cut, cut
