"""PDF: paragraphs rebuilt, running headers and page numbers dropped, hyphens mended, pages."""

from __future__ import annotations

import itertools

import pytest

from domain.documents import ContentFormat, ConversionError, ConversionLimits, SegmentKind
from tests.support.documents import (
    HEADER,
    book_pdf,
    claimed_pages_pdf,
    corrupt_pdf,
    encrypted_pdf,
    garbled_pdf,
    no_text_pdf,
)
from workers.converters import Converters
from workers.converters.layout import drop_running_lines, paragraphs

CONVERTERS = Converters()


@pytest.fixture(scope="module")
def book():
    return book_pdf(pages=40)


@pytest.fixture(scope="module")
def doc(book):
    return CONVERTERS.convert(book.data, ContentFormat.PDF)


def test_the_text_is_the_books_paragraphs_without_headers_or_page_numbers(book, doc):
    assert doc.text == "\n\n".join(book.paragraphs)
    assert HEADER not in doc.text
    assert "River Years —" not in doc.text
    assert (doc.title, doc.author) == ("The River Years", "Marta Silva")


def test_words_hyphenated_at_line_ends_are_joined_and_compounds_keep_their_hyphen(book, doc):
    assert len(book.joined) > 100 and len(book.kept) >= 3
    words = set(doc.text.replace(".", " ").replace(",", " ").replace(":", " ").split())
    assert set(book.joined) <= words
    assert "Jean-Paul" in doc.text and "JeanPaul" not in doc.text
    assert not any(word.endswith("-") for word in doc.text.split())
    hyphen_note = [note for note in doc.notes if "hyphen" in note]
    assert hyphen_note == [
        f"joined {len(book.joined)} words hyphenated at a line end, kept {len(book.kept)} "
        "hyphens; line-end hyphenation: a letter + '-' at a line end before a lower-case "
        "letter is joined without the hyphen (recog-/nised → recognised); before an "
        "upper-case letter or a digit the hyphen is kept (Jean-/Paul → Jean-Paul)"]


def test_page_segments_cover_each_page_in_order_without_overlap(book, doc):
    pages = [s for s in doc.segments if s.kind is SegmentKind.PAGE]
    assert [s.page for s in pages] == list(range(1, book.pages + 1))
    assert all(a.char_end <= b.char_start for a, b in itertools.pairwise(pages))
    assert pages[0].char_start == 0 and pages[-1].char_end == len(doc.text)
    for segment in pages:
        text = doc.text[segment.char_start:segment.char_end]
        assert text == text.strip() and text


def test_each_sentence_is_found_on_the_pages_it_was_printed_on(book, doc):
    pages = [s for s in doc.segments if s.kind is SegmentKind.PAGE]
    at = 0
    spanning = 0
    for sentence, expected in book.sentence_pages:
        start = doc.text.index(sentence, at)
        end = at = start + len(sentence)
        found = {s.page for s in pages if s.char_start < end and start < s.char_end}
        assert found == expected, sentence
        spanning += len(expected) > 1
    assert spanning >= 10  # sentences cut by a page break are joined, not split


def test_layout_keeps_hyphen_before_capitals_and_joins_across_pages():
    pages = [["Header", "I met Jean-", "Paul in the neigh-"], ["Header", "bourhood of Porto",
             "and we talked."], ["Header", "Then we left."]]
    running, numbers = drop_running_lines(pages)
    layout = paragraphs(pages)
    assert (running, numbers) == (3, 0)
    assert [p.text for p in layout.paragraphs] == [
        "I met Jean-Paul in the neighbourhood of Porto and we talked.", "Then we left."]
    # "neighbourhood" starts on page 1, so its tail is page 1's too.
    assert layout.paragraphs[0].pieces == [[1, 0, 36], [2, 37, 60]]


@pytest.mark.parametrize(("make", "message"), [
    (no_text_pdf, "no text layer; run OCR first"),
    (encrypted_pdf, "the PDF is encrypted; remove the password first"),
    (corrupt_pdf, "the file is not a readable PDF: it is truncated (no %%EOF end-of-file "
                  "marker)"),
    (garbled_pdf, "the file is not a readable PDF: startxref not found"),
    (claimed_pages_pdf, "the PDF has 1,000,000 pages; the limit is 5,000"),
    (lambda: claimed_pages_pdf(claimed=2), "the PDF has more than 5,000 pages, the limit"),
])
def test_unreadable_pdfs_are_refused_with_what_to_do(make, message):
    with pytest.raises(ConversionError) as caught:
        CONVERTERS.convert(make(), ContentFormat.PDF)
    assert caught.value.message == message


def test_the_million_page_pdf_is_small_on_disk():
    assert len(claimed_pages_pdf()) < 2_000


def test_a_pdf_past_the_page_limit_is_refused(book):
    with pytest.raises(ConversionError) as caught:
        Converters(ConversionLimits(max_pages=39)).convert(book.data, ContentFormat.PDF)
    assert caught.value.message == "the PDF has 40 pages; the limit is 39"


def test_a_pdf_past_the_text_limit_is_refused(book):
    with pytest.raises(ConversionError) as caught:
        Converters(ConversionLimits(max_text_chars=10_000)).convert(book.data,
                                                                    ContentFormat.PDF)
    assert caught.value.message == "the text is longer than 10,000 characters, the limit"


def test_headers_that_alternate_between_odd_and_even_pages_are_dropped() -> None:
    pages = [[("The River Years" if n % 2 == 0 else "Chapter One: Porto"),
              f"The body of page {'abcdefghij'[n] * 3}, its own words.", f"{n + 1}"]
             for n in range(10)]
    pages[3].insert(1, "A line two pages share")
    pages[5].insert(1, "A line two pages share")
    running, numbers = drop_running_lines(pages)
    assert (running, numbers) == (10, 10)
    assert all(not any(x in " ".join(p) for x in ("River Years", "Chapter One")) for p in pages)
    assert sum("A line two pages share" in p for p in pages) == 2  # 2 of 5 odd pages: kept
