"""HTML pages: the article's text, without navigation, ads, comments and other page furniture.

trafilatura is not in the offline package mirror, so this is a small main-content extractor
over lxml (no network, no entity loading, no huge trees):

1. Read title (og:title, <title>, first h1), author (meta name=author, rel=author,
   itemprop=author) and language (<html lang>) before anything is removed.
2. Drop what is never the article: scripts, styles, forms, nav/aside/header/footer elements
   (an <article>'s own <header>, with its title, stays), hidden elements, and elements whose
   id, class, role or aria-label has a boilerplate word (ad, sponsor, comment, share, cookie,
   sidebar, ...). Containers of an article are never dropped this way.
3. The article is the <article>, <main>, [itemprop=articleBody] or [role=main] with the most
   text; failing those, the element whose paragraphs carry the most text that is not links.
4. Its block-level elements become paragraphs; headings get HEADING segments.
"""

from __future__ import annotations

import re
from collections import defaultdict

from lxml import etree
from lxml import html as lxml_html

from domain.documents import ConversionError, ConversionLimits, ConvertedDocument, SegmentKind
from workers.converters.builder import DocumentBuilder
from workers.converters.markup import blocks, element_text, local_name

_FURNITURE_TAGS = frozenset({"script", "style", "noscript", "template", "iframe", "svg", "nav",
                             "header", "footer", "aside", "form", "button", "dialog"})
_FURNITURE_WORDS = ("advert", "sponsor", "promo", "banner", "comment", "disqus", "share",
                    "social", "related", "recommend", "sidebar", "menu", "nav", "breadcrumb",
                    "cookie", "consent", "newsletter", "subscri", "popup", "modal", "footer",
                    "header", "complementary", "contentinfo")
_EXACT_WORDS = frozenset({"ad", "ads", "adslot", "adunit", "advert"})
_PAGE_EDGE_WORDS = ("header",)
_CHARSET = re.compile(rb"""(?:charset|encoding)\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.I)
_TOKEN = re.compile(r"[a-z0-9]+")
_ARTICLE_XPATH = "//article | //main | //*[@itemprop='articleBody'] | //*[@role='main']"
_KEPT = frozenset({"html", "body", "article", "main"})
_PARAGRAPHS = ("p", "pre", "blockquote", "li", "td", "dd")


def convert_html(data: bytes, limits: ConversionLimits) -> ConvertedDocument:
    """HTML: the article's paragraphs, title, author and language."""
    root = _parse(data)
    title, author = _title(root), _author(root)
    language = root.get("lang") or root.get("{http://www.w3.org/XML/1998/namespace}lang")
    _drop_furniture(root)
    article = _article(root)
    builder = DocumentBuilder(limits)
    for block in blocks(article) if article is not None else ():
        start, end = builder.paragraph(block.text)
        if block.level:
            builder.segment(SegmentKind.HEADING, start, end, heading=block.text)
    return builder.build(title=title, author=author, language=language,
                         empty="the page has no readable text")


def _decode(data: bytes) -> str:
    """The page as text: UTF-8, else the charset it declares, else Windows-1252."""
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        pass
    declared = _CHARSET.search(data[:4096])
    if declared:
        try:
            return data.decode(declared.group(1).decode("ascii"), errors="replace")
        except LookupError:
            pass
    return data.decode("cp1252", errors="replace")


def _parse(data: bytes) -> etree._Element:
    parser = lxml_html.HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True,
                                  no_network=True, huge_tree=False, default_doctype=False)
    try:
        root = lxml_html.document_fromstring(_decode(data).encode("utf-8"), parser=parser)
    except (etree.ParserError, etree.XMLSyntaxError, ValueError) as exc:
        raise ConversionError(f"the file is not a readable HTML page: {exc}") from None
    if root is None:
        raise ConversionError("the page has no readable text")
    return root


def _first(root: etree._Element, xpath: str) -> str | None:
    for found in root.xpath(xpath):
        text = found if isinstance(found, str) else element_text(found)
        if text and text.strip():
            return str(text).strip()
    return None


def _title(root: etree._Element) -> str | None:
    return (_first(root, "//meta[@property='og:title']/@content")
            or _first(root, "//title") or _first(root, "//h1"))


def _author(root: etree._Element) -> str | None:
    return (_first(root, "//meta[@name='author']/@content")
            or _first(root, "//*[@rel='author']")
            or _first(root, "//*[@itemprop='author']/@content")
            or _first(root, "//*[@itemprop='author']"))


def _is_furniture(element: etree._Element, in_article: bool) -> bool:
    tag = local_name(element)
    if tag in _KEPT:
        return False
    if tag in _FURNITURE_TAGS and not (in_article and tag == "header"):
        return True
    if element.get("hidden") is not None or element.get("aria-hidden") == "true" or \
            re.search(r"display\s*:\s*none", element.get("style") or ""):
        return True
    words = " ".join(element.get(name) or "" for name in ("id", "class", "role", "aria-label"))
    for token in _TOKEN.findall(words.lower()):
        if token in _EXACT_WORDS:
            return True
        for word in _FURNITURE_WORDS:
            if token.startswith(word) and not (in_article and word in _PAGE_EDGE_WORDS):
                return True
    return False


def _drop_furniture(root: etree._Element) -> None:
    # Without an article element, a wrapper named like furniture ("layout-with-sidebar") may
    # hold the whole page: an element with most of the page's text in paragraphs stays.
    whole = 0 if root.xpath(_ARTICLE_XPATH) else len(element_text(root))
    doomed = []
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        in_article = any(local_name(a) == "article" for a in element.iterancestors())
        if _is_furniture(element, in_article) and not element.xpath(
                ".//article | .//main | .//*[@itemprop='articleBody']") and not (
                whole and local_name(element) not in _FURNITURE_TAGS
                and len(element_text(element)) > whole / 2 and len(element.xpath(".//p")) > 1):
            doomed.append(element)
    for element in doomed:
        parent = element.getparent()
        if parent is not None and not any(a in doomed for a in element.iterancestors()):
            _remove_keeping_tail(element)


def _remove_keeping_tail(element: etree._Element) -> None:
    parent = element.getparent()
    if element.tail:
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + element.tail
        else:
            parent.text = (parent.text or "") + element.tail
    parent.remove(element)


def _article(root: etree._Element) -> etree._Element | None:
    candidates = root.xpath(_ARTICLE_XPATH)
    if candidates:
        best = max(candidates, key=lambda el: len(element_text(el)))
        if element_text(best):
            return best
    scores: dict[etree._Element, float] = defaultdict(float)
    for paragraph in root.iter(*_PARAGRAPHS):
        links = sum(len(element_text(a)) for a in paragraph.iter("a"))
        value = max(len(element_text(paragraph)) - links, 0)
        parent = paragraph.getparent()
        if parent is not None and value:
            scores[parent] += value
            grandparent = parent.getparent()
            if grandparent is not None:
                scores[grandparent] += value / 2
    if scores:
        return max(scores, key=lambda el: scores[el])
    body = root.find("body")
    return body if body is not None and element_text(body) else None
