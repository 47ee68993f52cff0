"""Word documents (DOCX) with python-docx, after the archive checks.

Paragraphs and table cells are read in body order (a cell is one paragraph; a merged cell
once). "Title" and "Heading N" styles get HEADING segments; Heading 1 opens a CHAPTER, or
Title when the document has no Heading 1. Title, author and language come from the core
properties.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import docx
from docx.document import Document
from docx.enum.style import WD_STYLE_TYPE
from docx.table import Table, _Cell
from docx.text.paragraph import Paragraph

from domain.documents import ConversionError, ConversionLimits, ConvertedDocument, SegmentKind
from workers.converters.archives import open_archive
from workers.converters.builder import DocumentBuilder, clean_block


def convert_docx(data: bytes, limits: ConversionLimits) -> ConvertedDocument:
    """DOCX: body paragraphs and table cells, headings and chapters, core properties."""
    with open_archive(data, limits, "DOCX") as archive:
        if "word/document.xml" not in archive.namelist():
            raise ConversionError("the file is not a readable DOCX document: it has no "
                                  "word/document.xml")
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises KeyError, ValueError, lxml errors, ...
        raise ConversionError(
            f"the file is not a readable DOCX document: {_short(exc)}") from None
    builder = DocumentBuilder(limits)
    headings: list[tuple[int, int, str]] = []  # (level, char_start, text); Title is level 0
    for text, level in _paragraphs(document, _style_names(document)):
        start, end = builder.paragraph(text)
        if level is not None:
            builder.segment(SegmentKind.HEADING, start, end, heading=text)
            headings.append((level, start, text))
    opening = 1 if any(level == 1 for level, _, _ in headings) else 0
    builder.chapters((start, text) for level, start, text in headings if level == opening)
    core = document.core_properties
    return builder.build(title=core.title, author=core.author, language=core.language,
                         empty="the DOCX document has no text")


def _short(exc: Exception) -> str:
    return (str(exc) or type(exc).__name__)[:160]


def _style_names(document: Document) -> dict[str | None, str]:
    """Paragraph style id → name, None → the default style's: python-docx looks a style up
    by scanning every style, once per paragraph, which is quadratic on a long document."""
    names: dict[str | None, str] = {}
    for style in document.styles:
        if style.type == WD_STYLE_TYPE.PARAGRAPH:
            names[style.style_id] = style.name or ""
    default = document.styles.default(WD_STYLE_TYPE.PARAGRAPH)
    names[None] = default.name or "" if default is not None else ""
    return names


def _level(paragraph: Paragraph, names: dict[str | None, str]) -> int | None:
    """0 for Title, N for Heading N, None for body text."""
    name = names.get(paragraph._p.style, "")
    if name == "Title":
        return 0
    words = name.split()
    if len(words) == 2 and words[0].lower() == "heading" and words[1].isdigit():
        return int(words[1])
    return None


def _paragraphs(container: Document | _Cell,
                names: dict[str | None, str]) -> Iterator[tuple[str, int | None]]:
    """(text, heading level) of each non-empty paragraph or table cell, in body order."""
    for item in container.iter_inner_content():
        if isinstance(item, Paragraph):
            text = clean_block(item.text)
            if text:
                yield text, _level(item, names)
        elif isinstance(item, Table):
            yield from _cells(item, names)


def _cells(table: Table, names: dict[str | None, str]) -> Iterator[tuple[str, int | None]]:
    seen: set[object] = set()  # the cells' XML elements, held so their identity is stable
    for row in table.rows:
        for cell in row.cells:
            if cell._tc in seen:  # a merged cell appears once per grid column it spans
                continue
            seen.add(cell._tc)
            lines = [text for text, _ in _paragraphs(cell, names)]
            if lines:
                yield "\n".join(lines), None
