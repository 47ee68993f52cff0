"""The normalised text of a converted file, written paragraph by paragraph with its segments.

Every converter but TEXT writes through `DocumentBuilder`, so the rules of the normalised text
hold in one place: paragraphs separated by exactly one blank line, no blank line inside a
paragraph, no leading or trailing whitespace, no NUL or other control characters but "\\n"
and "\\t", and segments that index the final text exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from domain.documents import (
    ConversionError,
    ConversionLimits,
    ConvertedDocument,
    Segment,
    SegmentKind,
)

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")  # and lone surrogates
_SPACES = re.compile(r"[^\S\n]+")
_NEWLINES = re.compile(r" *\n[\s]*")


def clean_line(text: str) -> str:
    """`text` with control characters removed and runs of whitespace (newlines too) collapsed."""
    return " ".join(_CONTROL.sub(" ", text).split())


def clean_control(text: str) -> str:
    """`text` with line ends as "\\n" and control characters (but tab) replaced by spaces."""
    return _CONTROL.sub(" ", text.replace("\r\n", "\n").replace("\r", "\n"))


def clean_block(text: str) -> str:
    """`text` with its lines kept (blank ones dropped) and spaces collapsed inside each line."""
    text = _SPACES.sub(" ", clean_control(text))
    return _NEWLINES.sub("\n", text).strip()


def too_long(limits: ConversionLimits) -> ConversionError:
    """The error for a text beyond `limits.max_text_chars`."""
    return ConversionError(
        f"the text is longer than {limits.max_text_chars:,} characters, the limit")


class DocumentBuilder:
    """Collects paragraphs (already cleaned) and the segments that point into them."""

    def __init__(self, limits: ConversionLimits) -> None:
        self._limits = limits
        self._parts: list[str] = []
        self._length = 0
        self.segments: list[Segment] = []

    @property
    def length(self) -> int:
        """The number of characters written so far."""
        return self._length

    def paragraph(self, text: str) -> tuple[int, int]:
        """Append one paragraph (no blank line inside, no edge whitespace); its char range."""
        if not text:
            raise ValueError("empty paragraph")
        if self._parts:
            self._parts.append("\n\n")
            self._length += 2
        start = self._length
        self._parts.append(text)
        self._length += len(text)
        if self._length > self._limits.max_text_chars:
            raise too_long(self._limits)
        return start, self._length

    def segment(self, kind: SegmentKind, start: int, end: int, **fields: object) -> None:
        """Record that `text[start:end]` came from a `kind` (page, cue, chapter, ...)."""
        if end > start:
            self.segments.append(Segment(kind, start, end, **fields))  # type: ignore[arg-type]

    def chapters(self, openings: Iterable[tuple[int, str]]) -> None:
        """CHAPTER segments from (char_start, heading) openings, each to the next or the end."""
        ordered = sorted(openings)
        for i, (start, heading) in enumerate(ordered):
            end = ordered[i + 1][0] - 2 if i + 1 < len(ordered) else self._length
            self.segment(SegmentKind.CHAPTER, start, end, heading=heading)

    def build(self, *, title: str | None = None, author: str | None = None,
              language: str | None = None, notes: Iterable[str] = (),
              empty: str = "the file has no text") -> ConvertedDocument:
        """The document; raises ConversionError(`empty`) when no paragraph was written."""
        if not self._parts:
            raise ConversionError(empty)
        segments = sorted(self.segments, key=lambda s: (s.char_start, -s.char_end))
        return ConvertedDocument(
            text="".join(self._parts), segments=tuple(segments), title=_meta(title),
            author=_meta(author), language=_meta(language), notes=tuple(notes))


def _meta(value: str | None) -> str | None:
    cleaned = clean_line(value) if value else ""
    return cleaned or None
