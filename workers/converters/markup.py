"""(X)HTML as paragraphs: the block-level text of an lxml tree, shared by HTML and EPUB.

Block elements (p, li, blockquote, h1-h6, td, div, ...) end a paragraph; inline elements run
into it; `<br>` is a line break inside it; `<pre>` keeps its lines. Whitespace in text nodes
collapses to one space, as a browser shows it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from workers.converters.builder import clean_block

HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
BLOCKS = HEADINGS | frozenset({
    "p", "li", "blockquote", "pre", "dd", "dt", "figcaption", "td", "th", "caption", "div",
    "section", "article", "main", "ul", "ol", "dl", "table", "thead", "tbody", "tfoot", "tr",
    "figure", "header", "footer", "body", "html", "address", "hr", "center", "details",
    "summary", "hgroup", "aside", "nav", "form", "fieldset", "legend", "option"})
UNREAD = frozenset({"script", "style", "noscript", "template", "iframe", "svg", "math",
                    "head", "title", "meta", "link", "object", "embed", "canvas", "video",
                    "audio", "select", "textarea", "input", "button"})
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Block:
    """One paragraph of a page: its text and its tag ("h2" for a heading, else "p" or "pre")."""

    tag: str
    text: str

    @property
    def level(self) -> int:
        """The heading level (1-6), 0 for a paragraph."""
        return int(self.tag[1]) if self.tag in HEADINGS else 0


def local_name(element: etree._Element) -> str:
    """The tag without its namespace, lower case; "" for comments and processing instructions."""
    tag = element.tag
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1].lower()


def element_text(element: etree._Element) -> str:
    """All the text of `element` on one line."""
    return _WHITESPACE.sub(" ", "".join(element.itertext())).strip()


def blocks(root: etree._Element) -> list[Block]:
    """The paragraphs under `root`, in document order."""
    out: list[Block] = []
    _walk(root, out, [], "p")
    return out


def _walk(element: etree._Element, out: list[Block], buffer: list[str], kind: str) -> None:
    tag = local_name(element)
    if tag in UNREAD or not tag:
        return
    if tag == "br":
        buffer.append("\n")
        return
    if tag == "pre":
        _flush(out, buffer, kind)
        lines = [line.rstrip() for line in "".join(element.itertext()).splitlines()]
        text = clean_block("\n".join(line for line in lines if line.strip()))
        if text:
            out.append(Block("pre", text))
        return
    if tag not in BLOCKS:
        _text(buffer, element.text)
        for child in element:
            _walk(child, out, buffer, kind)
            _text(buffer, child.tail)
        return
    _flush(out, buffer, kind)
    own: list[str] = []
    own_kind = tag if tag in HEADINGS else "p"
    _text(own, element.text)
    for child in element:
        _walk(child, out, own, own_kind)
        _text(own, child.tail)
    _flush(out, own, own_kind)


def _text(buffer: list[str], text: str | None) -> None:
    if text:
        buffer.append(_WHITESPACE.sub(" ", text))


def _flush(out: list[Block], buffer: list[str], kind: str) -> None:
    text = clean_block("".join(buffer))
    buffer.clear()
    if text:
        out.append(Block(kind, text))
