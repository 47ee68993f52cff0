"""Formats are told by their signatures, then by the file name; a mismatch is refused."""

from __future__ import annotations

import pytest

from domain.documents import ContentFormat, ConversionError, ConversionLimits
from tests.support.documents import (
    article_html,
    book_pdf,
    corrupt_zip,
    interview_srt,
    interview_vtt,
    novel_epub,
    report_docx,
)
from workers.converters import Converters

CONVERTERS = Converters()


@pytest.mark.parametrize(("data", "name", "expected"), [
    (book_pdf(pages=2).data, "notes.txt", ContentFormat.PDF),
    (report_docx().data, None, ContentFormat.DOCX),
    (novel_epub().data, "book.zip", ContentFormat.EPUB),
    (interview_vtt(cues=3).data, None, ContentFormat.VTT),
    (interview_srt(cues=3).data, "a.txt", ContentFormat.SRT),
    (article_html().data, None, ContentFormat.HTML),
    (b"\xef\xbb\xbf  <!-- saved page -->\n<HTML><body>x</body></HTML>", None, ContentFormat.HTML),
    (b"# Title\n\ntext", "notes.md", ContentFormat.MARKDOWN),
    (b"# Title\n\ntext", "notes.MARKDOWN", ContentFormat.MARKDOWN),
    (b"00:00:01.000 --> 00:00:02.000\nhi", "talk.vtt", ContentFormat.VTT),
    (b"<p>hi</p>", "page.htm", ContentFormat.HTML),
    (b"plain words", None, ContentFormat.TEXT),
    (b"plain words", "notes.pdf", ContentFormat.TEXT),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "photo.png", None),
    ("Porto é".encode("latin-1"), "a.txt", None),
    (corrupt_zip(), None, None),
])
def test_detect(data, name, expected):
    assert CONVERTERS.detect(data, name) is expected


@pytest.mark.parametrize(("data", "fmt", "message"), [
    (report_docx().data, ContentFormat.PDF, "declared PDF, but the file is a DOCX document"),
    (book_pdf(pages=2).data, ContentFormat.EPUB,
     "declared EPUB, but the file is a PDF document"),
    (novel_epub().data, ContentFormat.DOCX, "declared DOCX, but the file is an EPUB document"),
    (b"I grew up in Porto.", ContentFormat.PDF, "declared PDF, but the file is text"),
    (interview_vtt(cues=3).data, ContentFormat.DOCX,
     "declared DOCX, but the file is a WebVTT transcript"),
    (interview_srt(cues=3).data, ContentFormat.VTT,
     "declared VTT, but the file is an SRT transcript"),
    (book_pdf(pages=2).data, ContentFormat.TEXT, "declared TEXT, but the file is a PDF document"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", ContentFormat.PDF,
     "declared PDF, but the file is binary data of an unknown kind"),
    (corrupt_zip(), ContentFormat.MARKDOWN,
     "declared MARKDOWN, but the file is a ZIP archive that is neither a DOCX nor an EPUB "
     "document"),
])
def test_a_declared_format_the_bytes_contradict_is_refused(data, fmt, message):
    with pytest.raises(ConversionError) as caught:
        CONVERTERS.convert(data, fmt)
    assert caught.value.message == message


def test_text_formats_may_be_declared_for_text_that_looks_like_another():
    vtt = interview_vtt(cues=3).data
    assert CONVERTERS.convert(vtt, ContentFormat.TEXT).text == vtt.decode().removeprefix(
        "\ufeff")
    assert CONVERTERS.convert(article_html().data, ContentFormat.MARKDOWN).text


def test_a_file_past_the_byte_limit_is_refused_before_it_is_read():
    with pytest.raises(ConversionError) as caught:
        Converters(ConversionLimits(max_file_bytes=1024)).convert(b"%PDF-" + bytes(2000),
                                                                  ContentFormat.PDF)
    assert caught.value.message == "the file is 2 KB; the limit is 1 KB"


def test_a_library_error_never_escapes(monkeypatch):
    import workers.converters.registry as registry

    def broken(data, limits):
        raise KeyError("word/styles.xml")

    monkeypatch.setitem(registry._CONVERTERS, ContentFormat.MARKDOWN, broken)
    with pytest.raises(ConversionError) as caught:
        CONVERTERS.convert(b"# hi", ContentFormat.MARKDOWN)
    assert caught.value.message == "the file is not a readable MARKDOWN file: 'word/styles.xml'"


def test_converters_implement_the_file_converter_port():
    from domain.ports import FileConverter

    port: FileConverter = CONVERTERS  # mypy checks the signatures
    assert port.detect(b"plain words", None) is ContentFormat.TEXT
