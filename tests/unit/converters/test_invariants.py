"""Every converter's text obeys the rules of the normalised text its offsets refer to."""

from __future__ import annotations

import pytest

from domain.documents import ContentFormat
from tests.support import documents
from workers.converters import Converters

CASES = [
    (lambda: documents.interview_vtt(cues=300).data, ContentFormat.VTT),
    (lambda: documents.interview_srt(cues=300).data, ContentFormat.SRT),
    (lambda: documents.article_html().data, ContentFormat.HTML),
    (lambda: documents.book_pdf(pages=6).data, ContentFormat.PDF),
    (lambda: documents.report_docx().data, ContentFormat.DOCX),
    (lambda: documents.novel_epub().data, ContentFormat.EPUB),
    (lambda: b"# A\n\nB *c*\n\n\n\n- d\n- e\n", ContentFormat.MARKDOWN),
]


@pytest.mark.parametrize(("make", "fmt"), CASES, ids=[fmt.value for _, fmt in CASES])
def test_paragraphs_are_separated_by_one_blank_line_and_segments_index_the_text(make, fmt):
    doc = Converters().convert(make(), fmt)
    text = doc.text
    assert text == text.strip() and "\n\n\n" not in text and "\x00" not in text
    assert all(p == p.strip() and p for p in text.split("\n\n"))
    text.encode("utf-8")  # no lone surrogate
    starts = [s.char_start for s in doc.segments]
    assert starts == sorted(starts)
    for segment in doc.segments:
        assert 0 <= segment.char_start < segment.char_end <= len(text)
        covered = text[segment.char_start:segment.char_end]
        assert covered == covered.strip()
