"""What a file is, from its first bytes: signatures first, then the file name for plain text.

`signature()` says what the bytes are whatever their name; `detect()` adds the extension for
text that carries no signature (Markdown, or a transcript or page that does not start like one).
"""

from __future__ import annotations

import io
import re
import zipfile
from enum import Enum

from domain.documents import ContentFormat

BOM = "\ufeff"
_HTML_START = re.compile(
    rb"^(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*(?:<!doctype\s+html|<html[\s>])",
    re.IGNORECASE | re.DOTALL)
_SRT_START = re.compile(r"^\s*\d+[ \t]*\r?\n[ \t]*\d{1,3}:\d{2}:\d{2}[,.]\d{3}[ \t]*-->")
_EXTENSIONS = {
    ".md": ContentFormat.MARKDOWN, ".markdown": ContentFormat.MARKDOWN,
    ".vtt": ContentFormat.VTT, ".srt": ContentFormat.SRT,
    ".html": ContentFormat.HTML, ".htm": ContentFormat.HTML, ".xhtml": ContentFormat.HTML,
    ".txt": ContentFormat.TEXT,
}


class Kind(Enum):
    """What a signature says beyond the formats: a text without one, an unknown binary."""

    TEXT = "text"
    ZIP = "a ZIP archive that is neither a DOCX nor an EPUB document"
    BINARY = "binary data of an unknown kind"


def signature(data: bytes) -> ContentFormat | Kind:
    """The format the bytes announce, `Kind.TEXT` for UTF-8 text without a signature."""
    head = data[:1024]
    if head.lstrip(b" \t\r\n").startswith(b"%PDF-"):
        return ContentFormat.PDF
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(data)
    if _HTML_START.match(head):
        return ContentFormat.HTML
    if b"\x00" in data or not _is_utf8(data):
        return Kind.BINARY
    start = data[:512].decode("utf-8", errors="ignore").lstrip(BOM)
    first = start.split("\n", 1)[0].rstrip("\r")
    if first.startswith("WEBVTT") and (len(first) == 6 or first[6] in " \t"):
        return ContentFormat.VTT
    if _SRT_START.match(start):
        return ContentFormat.SRT
    return Kind.TEXT


def detect(data: bytes, file_name: str | None = None) -> ContentFormat | None:
    """The format of `data`: its signature, else (UTF-8 text) its extension, else TEXT."""
    found = signature(data)
    if isinstance(found, ContentFormat):
        return found
    if found is not Kind.TEXT:
        return None
    suffix = "." + file_name.rsplit(".", 1)[-1].lower() if file_name and "." in file_name else ""
    return _EXTENSIONS.get(suffix, ContentFormat.TEXT)


def describe(found: ContentFormat | Kind) -> str:
    """`found` as a user reads it: "a DOCX document", "text", "binary data of an unknown kind"."""
    if isinstance(found, Kind):
        return found.value
    if found is ContentFormat.VTT:
        return "a WebVTT transcript"
    if found is ContentFormat.SRT:
        return "an SRT transcript"
    if found is ContentFormat.HTML:
        return "an HTML page"
    return f"{'an' if found is ContentFormat.EPUB else 'a'} {found.value} document"


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _zip_kind(data: bytes) -> ContentFormat | Kind:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            names = {info.filename for info in infos}
            if "word/document.xml" in names:
                return ContentFormat.DOCX
            first = infos[0] if infos else None
            if first is not None and first.filename == "mimetype" and first.file_size < 100 \
                    and archive.read(first).strip() == b"application/epub+zip":
                return ContentFormat.EPUB
            if "META-INF/container.xml" in names and any(n.endswith(".opf") for n in names):
                return ContentFormat.EPUB
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError):
        # A damaged archive still announces itself; the converter says what is wrong with it.
        return Kind.ZIP
    return Kind.ZIP
