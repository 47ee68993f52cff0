"""HTML: the article only, with its title, author, language and headings."""

from __future__ import annotations

import pytest

from domain.documents import ContentFormat, ConversionError, SegmentKind
from tests.support.documents import article_html
from workers.converters import Converters

CONVERTERS = Converters()


@pytest.fixture(scope="module")
def page():
    return article_html()


def test_only_the_article_is_kept(page):
    doc = CONVERTERS.convert(page.data, ContentFormat.HTML)
    assert doc.text.split("\n\n") == page.paragraphs
    for furniture in page.absent:
        assert furniture not in doc.text, furniture


def test_title_author_language_and_headings_are_read(page):
    doc = CONVERTERS.convert(page.data, ContentFormat.HTML)
    assert (doc.title, doc.author, doc.language) == ("The River Years", "Ana Costa", "en")
    assert [(doc.text[s.char_start:s.char_end], s.heading) for s in doc.segments
            if s.kind is SegmentKind.HEADING] == [(h, h) for h in page.headings]


def test_without_an_article_element_the_densest_block_is_kept():
    body = "I grew up in Porto near the river and learned to read the tide tables. " * 3
    data = f"""<html><head><title>T</title></head><body>
    <div class="top"><a href="/">Home</a> <a href="/a">About us</a></div>
    <div class="story"><p>{body}</p><p>Second &amp; last<br>line.</p></div>
    <div class="links"><p><a href="/x">A long list of links that is not the text</a></p></div>
    </body></html>""".encode()
    doc = CONVERTERS.convert(data, ContentFormat.HTML)
    assert doc.text == f"{body.strip()}\n\nSecond & last\nline."


def test_a_page_without_article_text_is_refused():
    data = b"<!doctype html><html><body><nav>Home News</nav><div class='cookie'>We use" \
           b" cookies</div><script>x()</script></body></html>"
    with pytest.raises(ConversionError) as caught:
        CONVERTERS.convert(data, ContentFormat.HTML)
    assert caught.value.message == "the page has no readable text"


def test_entities_are_not_loaded_and_pages_in_another_encoding_are_read():
    data = ('<?xml version="1.0"?><!DOCTYPE html [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            '<html><head><meta charset="iso-8859-1"></head><body><article><p>São João &x;'
            '</p></article></body></html>').encode("latin-1")
    doc = CONVERTERS.convert(data, ContentFormat.HTML)
    assert doc.text == "São João &x;"


def test_a_wrapper_named_like_furniture_is_kept_when_it_holds_the_page():
    body = "I grew up in Porto near the river and learned to read the tide tables. " * 3
    data = (f"<html><body><div class='page-with-sidebar'><p>{body}</p><p>{body}</p>"
            "<div class='sidebar'>Most read</div></div></body></html>").encode()
    doc = CONVERTERS.convert(data, ContentFormat.HTML)
    assert doc.text == f"{body.strip()}\n\n{body.strip()}"
