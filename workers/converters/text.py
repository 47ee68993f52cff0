"""Plain text and Markdown.

TEXT is kept exactly as given but for a leading BOM, so its offsets match what `createSource`
stored before files existed. Markdown is rendered to plain text with markdown-it-py (CommonMark
plus tables): markers go, link and image text stay, list items and code lines become lines,
and every heading is a paragraph of its own with a HEADING segment; level-1 headings (level-2
when there is no level-1) open CHAPTER segments.
"""

from __future__ import annotations

import html
import re
import textwrap

from markdown_it import MarkdownIt
from markdown_it.token import Token

from domain.documents import ConversionError, ConversionLimits, ConvertedDocument, SegmentKind
from workers.converters.builder import (
    DocumentBuilder,
    clean_block,
    clean_control,
    clean_line,
    too_long,
)
from workers.converters.sniff import BOM

_TAG = re.compile(r"<[^>]*>")
_INLINE_BREAKS = {"softbreak": " ", "hardbreak": "\n"}


def decode_text(data: bytes) -> str:
    """`data` as UTF-8 without a leading BOM; binary or invalid bytes are a ConversionError."""
    if b"\x00" in data:
        raise ConversionError("the file is not UTF-8 text: it contains NUL bytes (binary data)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConversionError(
            f"the file is not UTF-8 text: invalid byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}; save it as UTF-8") from None
    return text.removeprefix(BOM)


def convert_text(data: bytes, limits: ConversionLimits) -> ConvertedDocument:
    """TEXT: the decoded text unchanged (a BOM dropped), no segments."""
    text = decode_text(data)
    if not text.strip():
        raise ConversionError("the file has no text")
    if len(text) > limits.max_text_chars:
        raise too_long(limits)
    return ConvertedDocument(text=text)


def convert_markdown(data: bytes, limits: ConversionLimits) -> ConvertedDocument:
    """MARKDOWN: plain text with HEADING and CHAPTER segments."""
    tokens = MarkdownIt("commonmark").enable(["table", "strikethrough"]).parse(
        decode_text(data))
    builder = DocumentBuilder(limits)
    headings: list[tuple[int, int, str]] = []
    lines: list[str] = []
    depth = 0  # open lists, blockquotes and tables gather their lines into one paragraph
    heading_level = 0
    row: list[str] = []
    in_cell = False
    for token in tokens:
        kind = token.type
        if kind in ("bullet_list_open", "ordered_list_open", "table_open"):
            depth += 1
        elif kind in ("bullet_list_close", "ordered_list_close", "table_close"):
            depth -= 1
            if depth == 0:
                _flush(builder, lines)
        elif kind == "heading_open":
            _flush(builder, lines)
            heading_level = int(token.tag[1])
        elif kind == "inline" and heading_level:
            text = clean_line(_inline(token))
            if text:
                start, end = builder.paragraph(text)
                builder.segment(SegmentKind.HEADING, start, end, heading=text)
                headings.append((heading_level, start, text))
            heading_level = 0
        elif kind in ("th_open", "td_open", "th_close", "td_close"):
            in_cell = kind.endswith("_open")
        elif kind == "inline" and in_cell:
            row.append(clean_line(_inline(token)))
        elif kind == "tr_close":
            if any(row):
                lines.append(" | ".join(row))
            row = []
        elif kind == "inline":
            lines.extend(line for line in clean_block(_inline(token)).split("\n") if line)
            if depth == 0:
                _flush(builder, lines)
        elif kind in ("fence", "code_block", "html_block"):
            content = clean_block(_strip_tags(token.content)) if kind == "html_block" \
                else _code(token.content)
            lines.extend(line for line in content.split("\n") if line)
            if depth == 0:
                _flush(builder, lines)
    _flush(builder, lines)
    top = min((level for level, _, _ in headings), default=0)
    opening = 1 if top == 1 else 2
    builder.chapters((start, text) for level, start, text in headings if level == opening)
    return builder.build()


def _flush(builder: DocumentBuilder, lines: list[str]) -> None:
    text = "\n".join(lines).strip()
    lines.clear()
    if text:
        builder.paragraph(text)


def _inline(token: Token) -> str:
    parts: list[str] = []
    for child in token.children or ():
        if child.type in ("text", "code_inline") or child.type == "image":
            parts.append(child.content)
        elif child.type in _INLINE_BREAKS:
            parts.append(_INLINE_BREAKS[child.type])
    return "".join(parts)


def _code(content: str) -> str:
    # Code keeps its indentation (after the common margin) but never a blank line, which
    # would read as a paragraph break in the normalised text.
    content = textwrap.dedent(content.expandtabs(4))
    return "\n".join(line.rstrip() for line in clean_control(content).split("\n")
                     if line.strip())


def _strip_tags(markup: str) -> str:
    return html.unescape(_TAG.sub(" ", markup))
