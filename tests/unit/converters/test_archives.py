"""DOCX and EPUB: body text in order, headings and chapters, metadata; unsafe zips refused."""

from __future__ import annotations

import pytest

from domain.documents import ContentFormat, ConversionError, ConversionLimits, SegmentKind
from tests.support.documents import (
    corrupt_zip,
    crowded_docx,
    novel_epub,
    report_docx,
    unsafe_docx,
    zip_bomb_docx,
    zip_bomb_epub,
)
from workers.converters import Converters

CONVERTERS = Converters()


def _segments(doc, kind):
    return [(doc.text[s.char_start:s.char_end], s.heading) for s in doc.segments
            if s.kind is kind]


def test_docx_paragraphs_and_table_cells_in_body_order_with_properties():
    truth = report_docx()
    doc = CONVERTERS.convert(truth.data, ContentFormat.DOCX)
    assert doc.text.split("\n\n") == truth.paragraphs
    assert (doc.title, doc.author, doc.language) == ("River Survey 2026", "Marta Silva", "en-GB")
    assert [heading for _, heading in _segments(doc, SegmentKind.HEADING)] == truth.headings


def test_docx_heading_1_opens_a_chapter_that_runs_to_the_next():
    truth = report_docx()
    doc = CONVERTERS.convert(truth.data, ContentFormat.DOCX)
    chapters = _segments(doc, SegmentKind.CHAPTER)
    assert [heading for _, heading in chapters] == ["Section 1", "Section 2"]
    second = doc.text.index("Section 2")
    assert chapters[0][0] == doc.text[doc.text.index("Section 1"):second - 2]
    assert chapters[1][0] == doc.text[second:]


def test_epub_chapters_follow_the_spine_with_headings_from_the_text_or_the_nav():
    truth = novel_epub()
    doc = CONVERTERS.convert(truth.data, ContentFormat.EPUB)
    assert doc.text.split("\n\n") == truth.paragraphs
    assert (doc.title, doc.author, doc.language) == ("The River Years", "Marta Silva", "pt-PT")
    chapters = _segments(doc, SegmentKind.CHAPTER)
    assert [(text.split("\n\n")[0], heading) for text, heading in chapters] == [
        (first, heading) for heading, first in truth.chapters]
    assert "Contents" not in doc.text
    assert [heading for _, heading in _segments(doc, SegmentKind.HEADING)] == truth.headings


@pytest.mark.parametrize(("data", "fmt", "limits", "message"), [
    (zip_bomb_docx(), ContentFormat.DOCX, ConversionLimits(),
     "the DOCX archive member 'word/media/zeros.bin' is compressed 1029:1, past the 100:1 "
     "limit (a zip bomb?)"),
    (zip_bomb_epub(), ContentFormat.EPUB, ConversionLimits(),
     "the EPUB archive member 'OEBPS/zeros.bin' is compressed 1029:1, past the 100:1 limit "
     "(a zip bomb?)"),
    (zip_bomb_docx(), ContentFormat.DOCX, ConversionLimits(max_unpacked_bytes=32 * 1024 ** 2,
                                                           max_compression_ratio=10_000),
     "the DOCX archive unpacks to more than 32 MB, the limit"),
    (novel_epub().data, ContentFormat.EPUB, ConversionLimits(max_unpacked_bytes=2048),
     "the EPUB archive unpacks to more than 2 KB, the limit"),
    (crowded_docx(200), ContentFormat.DOCX, ConversionLimits(max_archive_members=100),
     "the DOCX archive has 217 members; the limit is 100"),
    (unsafe_docx("symlink"), ContentFormat.DOCX, ConversionLimits(),
     "the DOCX archive has a symbolic link: 'word/media/link'"),
    (unsafe_docx("parent"), ContentFormat.DOCX, ConversionLimits(),
     "the DOCX archive has an unsafe member path: '../../evil.txt'"),
    (unsafe_docx("absolute"), ContentFormat.DOCX, ConversionLimits(),
     "the DOCX archive has an unsafe member path: '/tmp/evil.txt'"),
    (corrupt_zip(), ContentFormat.DOCX, ConversionLimits(),
     "the file is not a readable DOCX document: File is not a zip file"),
    (corrupt_zip(), ContentFormat.EPUB, ConversionLimits(),
     "the file is not a readable EPUB document: File is not a zip file"),
])
def test_unsafe_or_broken_archives_are_refused_before_they_are_unpacked(data, fmt, limits,
                                                                        message):
    with pytest.raises(ConversionError) as caught:
        Converters(limits).convert(data, fmt)
    assert caught.value.message == message


def test_the_zip_bomb_is_small_on_disk():
    assert len(zip_bomb_docx()) < 200_000


def test_an_epub_without_its_package_is_refused():
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("mimetype", "application/epub+zip")
        archive.writestr("META-INF/container.xml", "<container><rootfiles/></container>")
    with pytest.raises(ConversionError) as caught:
        CONVERTERS.convert(out.getvalue(), ContentFormat.EPUB)
    assert caught.value.message == "the EPUB document's container.xml names no package (OPF)"
