"""Sources as users have them (pure): formats, the normalised text and its segment map.

A converter (`workers/converters/`) turns a file into one `ConvertedDocument`: the normalised
text every offset and grounding refers to, and the segments that say where each character
range came from (a page, a cue, a chapter, a heading, a speaker's turn).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class ContentFormat(enum.Enum):
    """How a source's content arrives."""

    TEXT = "TEXT"
    MARKDOWN = "MARKDOWN"
    VTT = "VTT"
    SRT = "SRT"
    HTML = "HTML"
    PDF = "PDF"
    DOCX = "DOCX"
    EPUB = "EPUB"

    @property
    def is_text(self) -> bool:
        """Formats that may arrive as a string (`createSource`); the others are files only."""
        return self in _TEXT_FORMATS


_TEXT_FORMATS = frozenset({ContentFormat.TEXT, ContentFormat.MARKDOWN, ContentFormat.VTT,
                           ContentFormat.SRT, ContentFormat.HTML})


class SegmentKind(enum.Enum):
    """What a character range of the normalised text came from."""

    PAGE = "PAGE"
    CUE = "CUE"
    CHAPTER = "CHAPTER"
    HEADING = "HEADING"
    TURN = "TURN"


@dataclass(frozen=True, slots=True)
class Segment:
    """`text[char_start:char_end]` came from this page, cue, chapter, heading or turn.

    - PAGE: one page's text (1-based `page`).
    - CUE: one transcript cue's words (its label excluded), with its time range.
    - TURN: one speaker's uninterrupted turn, label included, with its time range if timed.
    - CHAPTER: a chapter's whole text; `heading` is its title.
    - HEADING: a heading's own line; `heading` is its text.
    """

    kind: SegmentKind
    char_start: int
    char_end: int
    page: int | None = None
    time_start_ms: int | None = None
    time_end_ms: int | None = None
    speaker: str | None = None
    heading: str | None = None


@dataclass(frozen=True, slots=True)
class ConvertedDocument:
    """A file read into MMOS: the normalised text, its segments, what the file said of itself."""

    text: str
    segments: tuple[Segment, ...] = ()
    title: str | None = None
    author: str | None = None
    language: str | None = None
    # What the converter did that a reader should know ("dropped a running header on 38 of
    # 40 pages", "joined 12 words hyphenated at a line end").
    notes: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class ConversionLimits:
    """Bounds on one conversion: a file beyond them is refused, never half read."""

    max_file_bytes: int = 50 * 1024 * 1024
    max_text_chars: int = 20_000_000
    max_pages: int = 5_000
    max_cues: int = 200_000
    # Archives (DOCX, EPUB): the sum of the members' uncompressed sizes, and the ratio of
    # uncompressed to compressed bytes a member may reach (zip bombs).
    max_unpacked_bytes: int = 200 * 1024 * 1024
    max_compression_ratio: int = 100
    max_archive_members: int = 10_000


class ConversionError(Exception):
    """The file cannot be read as declared; `message` is safe to show to the client.

    `line` (1-based) names the input line at fault when there is one (a broken timestamp).
    """

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
