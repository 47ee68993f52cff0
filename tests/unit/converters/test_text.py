"""TEXT is kept as given; Markdown becomes plain text with headings and chapters."""

from __future__ import annotations

import pytest

from domain.documents import ContentFormat, ConversionError, SegmentKind
from workers.converters import Converters

CONVERTERS = Converters()


def test_text_is_kept_exactly_but_for_a_leading_bom():
    # Given a text with CRLF line ends, edge whitespace and a BOM
    data = "\ufeff  I grew up in Porto.\r\n\r\n\r\nNear the river.  \n".encode()
    # When
    doc = CONVERTERS.convert(data, ContentFormat.TEXT)
    # Then
    assert doc.text == "  I grew up in Porto.\r\n\r\n\r\nNear the river.  \n"
    assert doc.segments == ()


@pytest.mark.parametrize(("data", "message"), [
    (b"I grew up\x00 in Porto", "the file is not UTF-8 text: it contains NUL bytes (binary data)"),
    ("Porto é".encode("latin-1"),
     "the file is not UTF-8 text: invalid byte 0xe9 at offset 6; save it as UTF-8"),
    (b"  \n\t ", "the file is empty"),
    (b"\xef\xbb\xbf \n", "the file has no text"),
])
def test_text_that_is_not_utf8_or_is_empty_is_refused(data, message):
    with pytest.raises(ConversionError) as caught:
        CONVERTERS.convert(data, ContentFormat.TEXT)
    assert caught.value.message == message


MARKDOWN = b"""# The River Years

I grew up in **Porto**, near [the river](http://example.org). I kept `notes`
every day.

## Early life

- first *item*
- second item

```
def tide():

    return 1
```

| Station | Depth |
|---------|-------|
| Ribeira | 12 m  |

# The Bridge

Last &amp; final. ![a photo of the bridge](bridge.png)
"""


def test_markdown_is_rendered_to_plain_paragraphs():
    doc = CONVERTERS.convert(MARKDOWN, ContentFormat.MARKDOWN)
    assert doc.text.split("\n\n") == [
        "The River Years",
        "I grew up in Porto, near the river. I kept notes every day.",
        "Early life",
        "first item\nsecond item",
        "def tide():\n    return 1",
        "Station | Depth\nRibeira | 12 m",
        "The Bridge",
        "Last & final. a photo of the bridge",
    ]


def test_markdown_headings_get_segments_and_level_one_opens_chapters():
    doc = CONVERTERS.convert(MARKDOWN, ContentFormat.MARKDOWN)
    found = [(s.kind, doc.text[s.char_start:s.char_end], s.heading) for s in doc.segments]
    first_chapter = doc.text[:doc.text.index("\n\nThe Bridge")]
    assert found == [
        (SegmentKind.CHAPTER, first_chapter, "The River Years"),
        (SegmentKind.HEADING, "The River Years", "The River Years"),
        (SegmentKind.HEADING, "Early life", "Early life"),
        (SegmentKind.CHAPTER, "The Bridge\n\nLast & final. a photo of the bridge", "The Bridge"),
        (SegmentKind.HEADING, "The Bridge", "The Bridge"),
    ]


def test_markdown_without_level_one_headings_opens_chapters_at_level_two():
    doc = CONVERTERS.convert(b"Intro.\n\n## One\n\nA.\n\n### Sub\n\nB.\n\n## Two\n\nC.\n",
                             ContentFormat.MARKDOWN)
    chapters = [(doc.text[s.char_start:s.char_end], s.heading) for s in doc.segments
                if s.kind is SegmentKind.CHAPTER]
    assert chapters == [("One\n\nA.\n\nSub\n\nB.", "One"), ("Two\n\nC.", "Two")]


def test_markdown_of_markup_only_is_refused_as_empty():
    with pytest.raises(ConversionError) as caught:
        CONVERTERS.convert(b"---\n\n***\n", ContentFormat.MARKDOWN)
    assert caught.value.message == "the file has no text"
