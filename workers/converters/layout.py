"""Page text as paragraphs: running headers and footers dropped, lines joined, hyphens mended.

Running headers and footers: among the first two and the last two lines of each page, a line
that repeats (digits read as '#', spaces collapsed, case ignored) at the same edge on at least
60% of the pages with text, or of the odd or of the even pages (a book's title on one side,
its chapter on the other), and on at least 3, is dropped; so is a bare page number there
("12", "Page 12", "12 of 40", "- 12 -", "xii").

Paragraphs: the lines of a paragraph are joined with one space. A paragraph ends at a blank
line; after a short line (under 85% of the document's usual line length) that ends a
sentence; or, within a page, after a short line without final punctuation followed by a
capitalised line (a heading). A page's last line runs on into the next page's first unless
one of those breaks applies, so a sentence cut by a page break is joined with a space.

Hyphenation at a line end (the rule a note in the document repeats): a letter then "-" at
the end of a line, followed by a line that starts with a lower-case letter, is one word
broken in two, joined without the hyphen and without a space ("recog-" + "nised" →
"recognised"); before an upper-case letter or a digit the hyphen is part of the word and
kept, still without a space ("Jean-" + "Paul" → "Jean-Paul"). A soft hyphen (U+00AD) at a
line end always joins without a trace; soft hyphens inside lines are removed. A word joined
across a page break belongs to the page where it starts.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field

SHORT_LINE = 0.85
_EDGE = 2
_SOFT_HYPHEN = "\u00ad"
_BROKEN_WORD = re.compile(r"[^\W\d_]-$")
_SENTENCE_END = re.compile(r"[.!?…:;][\"'”’»)\]]*$")
_PAGE_NUMBER = re.compile(
    r"^(?:page\s+)?(?:\d{1,5}(?:\s*(?:/|of)\s*\d{1,5})?|[-–—]\s*\d{1,5}\s*[-–—]|[ivxlcdm]{1,7})$",
    re.IGNORECASE)
HYPHEN_RULE = ("line-end hyphenation: a letter + '-' at a line end before a lower-case letter "
               "is joined without the hyphen (recog-/nised → recognised); before an upper-case "
               "letter or a digit the hyphen is kept (Jean-/Paul → Jean-Paul)")


@dataclass
class Paragraph:
    """One paragraph's text (in parts) and the [page, start, end] pieces it took from pages."""

    parts: list[str] = field(default_factory=list)
    length: int = 0
    pieces: list[list[int]] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The paragraph's text."""
        return "".join(self.parts)


@dataclass
class Layout:
    """The paragraphs of a document and what was done to get them."""

    paragraphs: list[Paragraph]
    headers_dropped: int = 0
    numbers_dropped: int = 0
    hyphens_joined: int = 0
    hyphens_kept: int = 0


def _key(line: str) -> str:
    return " ".join(re.sub(r"\d+", "#", line).split()).lower()


def drop_running_lines(pages: list[list[str]]) -> tuple[int, int]:
    """Remove running headers, footers and bare page numbers in place; (lines, numbers)."""
    with_text = [(number, lines) for number, lines in enumerate(pages) if lines]
    # All pages together, and odd and even pages apart: books often run the title on one
    # side and the chapter on the other, each on half of the pages.
    groups = [with_text, [p for p in with_text if p[0] % 2 == 0],
              [p for p in with_text if p[0] % 2 == 1]]
    tallies = [(max(3, math.ceil(0.6 * len(group))), _edges(group, 0), _edges(group, -1))
               for group in groups]

    def running_line(number: int, line: str, edge: int) -> bool:
        key = _key(line)
        for index, (threshold, top, bottom) in enumerate(tallies):
            if index and index - 1 != number % 2:
                continue
            if (top if edge == 0 else bottom)[key] >= threshold:
                return True
        return False

    running = numbers = 0
    for number, lines in with_text:
        for edge in (0, -1):
            for _ in range(_EDGE):
                if not lines:
                    break
                line = lines[edge]
                if _PAGE_NUMBER.match(line.strip()):
                    numbers += 1
                elif running_line(number, line, edge):
                    running += 1
                else:
                    break
                del lines[edge]
    return running, numbers


def _edges(group: list[tuple[int, list[str]]], edge: int) -> Counter[str]:
    """How many pages of `group` have each key among their first (edge 0) or last lines."""
    cut = slice(None, _EDGE) if edge == 0 else slice(-_EDGE, None)
    return Counter(k for _, lines in group for k in {_key(x) for x in lines[cut]})


def paragraphs(pages: list[list[str]]) -> Layout:
    """The paragraphs of `pages` (lines per page, 1-based page = index + 1), see the rules."""
    lengths = sorted(len(line) for lines in pages for line in lines if line)
    usual = lengths[int(len(lengths) * 0.75)] if lengths else 0
    layout = Layout([])
    current = Paragraph()
    lines = [(number, line.replace(_SOFT_HYPHEN, "") if not line.endswith(_SOFT_HYPHEN)
              else line[:-1].replace(_SOFT_HYPHEN, "") + _SOFT_HYPHEN)
             for number, page in enumerate(pages, start=1) for line in page]
    for i, (page, line) in enumerate(lines):
        if not line.strip():
            current = _close(layout, current)
            continue
        _append(layout, current, page, " ".join(line.split()))
        following = next((x for x in lines[i + 1:i + 2]), None)
        short = len(line) < SHORT_LINE * usual
        ends = bool(_SENTENCE_END.search(line))
        heading = (following is not None and following[0] == page and short and not ends
                   and following[1][:1].isupper() and not line.endswith(("-", ",")))
        if (short and ends) or heading:
            current = _close(layout, current)
    _close(layout, current)
    return layout


def _close(layout: Layout, current: Paragraph) -> Paragraph:
    if current.parts:
        if current.parts[-1].endswith(_SOFT_HYPHEN):
            current.parts[-1] = current.parts[-1][:-1]
            current.length -= 1
            current.pieces[-1][2] = min(current.pieces[-1][2], current.length)
        layout.paragraphs.append(current)
    return Paragraph()


def _append(layout: Layout, current: Paragraph, page: int, line: str) -> None:
    parts = current.parts
    if not parts:
        parts.append(line)
        current.length = len(line)
        current.pieces.append([page, 0, len(line)])
        return
    previous = parts[-1]
    glue = " "
    if previous.endswith(_SOFT_HYPHEN) or (_BROKEN_WORD.search(previous[-2:])
                                           and line[0].islower()):
        parts[-1] = previous[:-1]
        current.length -= 1
        glue = ""
        layout.hyphens_joined += 1
    elif _BROKEN_WORD.search(previous[-2:]) and (line[0].isupper() or line[0].isdigit()):
        glue = ""
        layout.hyphens_kept += 1
    joint = current.length
    start = joint + len(glue)
    parts.append(glue + line)
    current.length = start + len(line)
    last = current.pieces[-1]
    last[2] = min(last[2], joint)
    if last[0] == page:
        last[2] = current.length
        return
    if not glue:
        # The word joined across the page break belongs to the page where it starts.
        word = len(line.split(" ", 1)[0])
        last[2] = start + word
        start += word + (1 if len(line) > word else 0)
    if start < current.length:
        current.pieces.append([page, start, current.length])
