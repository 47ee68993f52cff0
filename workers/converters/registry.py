"""`Converters`: the FileConverter port, one converter per format behind one entry point."""

from __future__ import annotations

from collections.abc import Callable

from domain.documents import ContentFormat, ConversionError, ConversionLimits, ConvertedDocument
from workers.converters import sniff
from workers.converters.archives import size
from workers.converters.docx import convert_docx
from workers.converters.epub import convert_epub
from workers.converters.html import convert_html
from workers.converters.pdf import convert_pdf
from workers.converters.text import convert_markdown, convert_text
from workers.converters.transcripts import convert_srt, convert_vtt

_CONVERTERS: dict[ContentFormat, Callable[[bytes, ConversionLimits], ConvertedDocument]] = {
    ContentFormat.TEXT: convert_text,
    ContentFormat.MARKDOWN: convert_markdown,
    ContentFormat.VTT: convert_vtt,
    ContentFormat.SRT: convert_srt,
    ContentFormat.HTML: convert_html,
    ContentFormat.PDF: convert_pdf,
    ContentFormat.DOCX: convert_docx,
    ContentFormat.EPUB: convert_epub,
}
_ARCHIVES = (ContentFormat.DOCX, ContentFormat.EPUB)


class Converters:
    """Reads files of every ContentFormat into a ConvertedDocument, within `limits`.

    Parameters:
        limits: the bounds of one conversion (file bytes, text, pages, cues, archives).
    """

    def __init__(self, limits: ConversionLimits = ConversionLimits()) -> None:
        self.limits = limits

    def detect(self, data: bytes, file_name: str | None = None) -> ContentFormat | None:
        """The format the bytes are in (by their signature, then the name), None if unknown."""
        return sniff.detect(data, file_name)

    def convert(self, data: bytes, fmt: ContentFormat, *,
                file_name: str | None = None) -> ConvertedDocument:
        """The document in `data` read as `fmt`; every failure is a ConversionError."""
        if len(data) > self.limits.max_file_bytes:
            raise ConversionError(
                f"the file is {size(len(data))}; the limit is {size(self.limits.max_file_bytes)}")
        if not data or data.isspace():  # not .strip(): a copy of a 50 MB file
            raise ConversionError("the file is empty")
        _check_declared(data, fmt)
        try:
            return _CONVERTERS[fmt](data, self.limits)
        except ConversionError:
            raise
        except RecursionError:
            raise ConversionError(
                f"the file is not a readable {fmt.value} file: it is nested too deeply") from None
        except Exception as exc:  # a library's own error must not escape as a server error
            reason = (str(exc) or type(exc).__name__).splitlines()[0][:160]
            raise ConversionError(
                f"the file is not a readable {fmt.value} file: {reason}") from None


def _check_declared(data: bytes, fmt: ContentFormat) -> None:
    """Refuse bytes that are plainly another format than the one declared."""
    found = sniff.signature(data)
    if found is fmt or (found is sniff.Kind.ZIP and fmt in _ARCHIVES):
        return  # a damaged archive: its converter says what is wrong with it
    if fmt.is_text and found is sniff.Kind.BINARY:
        return  # the text decoder names the offending byte
    if fmt.is_text:
        binary = found is sniff.Kind.ZIP or found in (
            ContentFormat.PDF, ContentFormat.DOCX, ContentFormat.EPUB)
        clash = fmt in (ContentFormat.VTT, ContentFormat.SRT) and found in (
            ContentFormat.VTT, ContentFormat.SRT)
        if not binary and not clash:
            return  # text read as declared: TEXT, MARKDOWN or HTML, or a transcript to parse
    raise ConversionError(f"declared {fmt.value}, but the file is {sniff.describe(found)}")
