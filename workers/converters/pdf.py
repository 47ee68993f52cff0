"""PDF documents with pypdf: the text layer page by page, laid out by `layout`.

The page count is read from the page tree, and the tree walked with a bound, before any page
is read, so a file that claims a million pages is refused at once. Pages are read one at a
time and only their text is kept: pypdf's cache of parsed objects is emptied after each page,
so memory follows the largest page, not the file. Encrypted files are refused unless they
open with the empty password; a file without any text is a scan that needs OCR.
"""

from __future__ import annotations

import io
from typing import Any

from pypdf import PdfReader
from pypdf.errors import PdfReadError
from pypdf.generic import DictionaryObject

from domain.documents import ConversionError, ConversionLimits, ConvertedDocument, SegmentKind
from workers.converters.builder import DocumentBuilder, clean_control
from workers.converters.layout import HYPHEN_RULE, drop_running_lines, paragraphs

NO_TEXT = "no text layer; run OCR first"
ENCRYPTED = "the PDF is encrypted; remove the password first"


def convert_pdf(data: bytes, limits: ConversionLimits) -> ConvertedDocument:
    """PDF: paragraphs, PAGE segments, running headers and footers dropped, hyphens mended."""
    if b"%%EOF" not in data[-2048:]:
        raise ConversionError("the file is not a readable PDF: it is truncated (no %%EOF "
                              "end-of-file marker)")
    try:
        reader, pages = _read(data, limits)
        title, author, language = _metadata(reader)
    except ConversionError:
        raise
    except (PdfReadError, Exception) as exc:  # pypdf raises many kinds on broken files
        raise ConversionError(f"the file is not a readable PDF: {_short(exc)}") from None
    if not any(pages):
        raise ConversionError(NO_TEXT)
    running, numbers = drop_running_lines(pages)
    layout = paragraphs(pages)
    builder = DocumentBuilder(limits)
    spans: dict[int, list[int]] = {}
    for paragraph in layout.paragraphs:
        start, _ = builder.paragraph(paragraph.text)
        for page, first, last in paragraph.pieces:
            span = spans.setdefault(page, [start + first, start + last])
            span[1] = start + last
    for page, (first, last) in spans.items():
        builder.segment(SegmentKind.PAGE, first, last, page=page)
    notes = []
    if running:
        notes.append(f"dropped {running} running header or footer lines")
    if numbers:
        notes.append(f"dropped {numbers} page numbers")
    if layout.hyphens_joined or layout.hyphens_kept:
        notes.append(f"joined {layout.hyphens_joined} words hyphenated at a line end, kept "
                     f"{layout.hyphens_kept} hyphens; {HYPHEN_RULE}")
    return builder.build(title=title, author=author, language=language, notes=notes,
                         empty=NO_TEXT)


def _short(exc: Exception) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0][:160]


def _read(data: bytes, limits: ConversionLimits) -> tuple[PdfReader, list[list[str]]]:
    reader = PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted:
        try:
            opened = reader.decrypt("")
        except Exception:  # AES without a crypto library, or a broken security handler
            raise ConversionError(ENCRYPTED) from None
        if not opened:
            raise ConversionError(ENCRYPTED)
    count = _page_count(reader, limits)
    pages: list[list[str]] = []
    chars = 0
    for number in range(count):
        page = reader.pages[number]
        try:
            text = page.extract_text() or ""
        except Exception as exc:
            raise ConversionError(
                f"the file is not a readable PDF: page {number + 1}: {_short(exc)}") from None
        lines = [line.strip() for line in clean_control(text).split("\n")]
        while lines and not lines[-1]:
            lines.pop()
        while lines and not lines[0]:
            lines.pop(0)
        pages.append(lines)
        chars += len(text)
        if chars > 2 * limits.max_text_chars:
            raise ConversionError(
                f"the text is longer than {limits.max_text_chars:,} characters, the limit")
        # What a page parsed (content streams, images, fonts) is not needed again: keep the
        # memory of one page, not of the whole file.
        reader.resolved_objects.clear()
    return reader, pages


def _page_count(reader: PdfReader, limits: ConversionLimits) -> int:
    """The number of pages, refused past the limit before the page tree is expanded."""
    tree = reader.root_object["/Pages"].get_object()
    if not isinstance(tree, DictionaryObject):
        raise ConversionError("the file is not a readable PDF: it has no page tree")
    claimed = tree.get("/Count", 0)
    if isinstance(claimed, int) and claimed > limits.max_pages:
        raise ConversionError(
            f"the PDF has {claimed:,} pages; the limit is {limits.max_pages:,}")
    # Counting the leaves ourselves, with a bound, refuses a tree whose nodes repeat each
    # other (a few objects that expand to millions of pages) whatever /Count claims.
    leaves = visited = 0
    stack: list[Any] = [tree]
    while stack:
        node = stack.pop().get_object()
        visited += 1
        if visited > 4 * limits.max_pages + 100:
            raise ConversionError("the file is not a readable PDF: its page tree is malformed")
        kids = node.get("/Kids") if isinstance(node, DictionaryObject) else None
        if kids is None or node.get("/Type") == "/Page":
            leaves += 1
            if leaves > limits.max_pages:
                raise ConversionError(
                    f"the PDF has more than {limits.max_pages:,} pages, the limit")
        else:
            stack.extend(kids.get_object() or ())
    return len(reader.pages)


def _metadata(reader: PdfReader) -> tuple[str | None, str | None, str | None]:
    info = reader.metadata
    title = str(info.title) if info is not None and info.title else None
    author = str(info.author) if info is not None and info.author else None
    lang = reader.root_object.get("/Lang")
    return title, author, str(lang) if lang else None
