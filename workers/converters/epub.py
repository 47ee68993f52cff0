"""EPUB books: every spine document's text in reading order, one CHAPTER per document.

ebooklib is not in the offline package mirror; an EPUB is a zip of XML, so it is read with
zipfile (after the archive checks) and lxml (no network, no entities, no DTDs):
META-INF/container.xml names the OPF package, whose spine gives the reading order. Each
spine document's whole body is kept (a book has no page furniture to strip); its CHAPTER
heading is its first heading, else its title in the nav document or the NCX.
"""

from __future__ import annotations

import posixpath
import zipfile
from urllib.parse import unquote

from lxml import etree
from lxml import html as lxml_html

from domain.documents import ConversionError, ConversionLimits, ConvertedDocument, SegmentKind
from workers.converters.archives import open_archive, read_member
from workers.converters.builder import DocumentBuilder
from workers.converters.markup import blocks, element_text, local_name

_NS = {"c": "urn:oasis:names:tc:opendocument:xmlns:container",
       "opf": "http://www.idpf.org/2007/opf", "dc": "http://purl.org/dc/elements/1.1/",
       "ncx": "http://www.daisy.org/z3986/2005/ncx/", "x": "http://www.w3.org/1999/xhtml",
       "epub": "http://www.idpf.org/2007/ops"}
_XHTML = ("application/xhtml+xml", "text/html", "application/x-dtbook+xml")


def convert_epub(data: bytes, limits: ConversionLimits) -> ConvertedDocument:
    """EPUB: chapters and headings in spine order, with dc:title, dc:creator, dc:language."""
    with open_archive(data, limits, "EPUB") as archive:
        container = _xml(read_member(archive, "META-INF/container.xml", "EPUB"), "container")
        opf_path = container.xpath("string(//c:rootfile/@full-path)", namespaces=_NS)
        if not opf_path:
            raise ConversionError("the EPUB document's container.xml names no package (OPF)")
        opf = _xml(read_member(archive, opf_path, "EPUB"), opf_path)
        base = posixpath.dirname(opf_path)
        manifest = {item.get("id"): item for item in opf.iterfind(".//opf:manifest/opf:item",
                                                                    _NS)}
        titles = _toc_titles(archive, opf, manifest, base)
        builder = DocumentBuilder(limits)
        openings: list[tuple[int, str]] = []
        for itemref in opf.iterfind(".//opf:spine/opf:itemref", _NS):
            item = manifest.get(itemref.get("idref"))
            if item is None or item.get("media-type") not in _XHTML or \
                    "nav" in (item.get("properties") or "").split():
                continue
            path = _join(base, item.get("href") or "")
            opening = _write_document(builder, read_member(archive, path, "EPUB"), path)
            if opening is not None:
                heading = opening[1] or titles.get(path) or posixpath.basename(path)
                openings.append((opening[0], heading))
        builder.chapters(openings)
    meta = {name: opf.xpath(f"string(//dc:{name})", namespaces=_NS).strip() or None
            for name in ("title", "creator", "language")}
    return builder.build(title=meta["title"], author=meta["creator"],
                         language=meta["language"], empty="the EPUB book has no text")


def _xml(data: bytes, name: str) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False, remove_comments=True, remove_pis=True)
    try:
        return etree.fromstring(data, parser=parser)
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise ConversionError(f"the EPUB document's {name} is not readable XML: {exc}") from None


def _join(base: str, href: str) -> str:
    return posixpath.normpath(posixpath.join(base, unquote(href.split("#", 1)[0])))


def _write_document(builder: DocumentBuilder, data: bytes,
                    path: str) -> tuple[int, str | None] | None:
    """Write one spine document; (its first char, its first heading) if it had text."""
    try:
        root = _xml(data, path)
    except ConversionError:
        # Many books carry sloppy XHTML; the HTML parser reads what the XML one refuses.
        parser = lxml_html.HTMLParser(no_network=True, huge_tree=False, remove_comments=True)
        try:
            root = lxml_html.document_fromstring(data, parser=parser)
        except (etree.ParserError, etree.XMLSyntaxError, ValueError):
            return None
    body = next((el for el in root.iter() if local_name(el) == "body"), root)
    first: int | None = None
    heading: str | None = None
    for block in blocks(body):
        start, end = builder.paragraph(block.text)
        first = start if first is None else first
        if block.level:
            builder.segment(SegmentKind.HEADING, start, end, heading=block.text)
            heading = heading or block.text
    return None if first is None else (first, heading)


def _toc_titles(archive: zipfile.ZipFile, opf: etree._Element, manifest: dict,
                base: str) -> dict[str, str]:
    """Document path → its title in the nav document (EPUB 3) or the NCX (EPUB 2)."""
    titles: dict[str, str] = {}
    for item in manifest.values():
        props = (item.get("properties") or "").split()
        is_ncx = item.get("media-type") == "application/x-dtbncx+xml"
        if "nav" not in props and not is_ncx:
            continue
        path = _join(base, item.get("href") or "")
        try:
            toc = _xml(read_member(archive, path, "EPUB"), path)
        except ConversionError:
            continue  # a table of contents is only a fallback for chapter headings
        toc_base = posixpath.dirname(path)
        if is_ncx:
            for point in toc.iterfind(".//ncx:navPoint", _NS):
                src = point.find("ncx:content", _NS)
                label = point.find("ncx:navLabel", _NS)
                if src is not None and label is not None:
                    titles.setdefault(_join(toc_base, src.get("src") or ""),
                                      element_text(label))
        else:
            for link in toc.iterfind(".//x:nav//x:a", _NS):
                titles.setdefault(_join(toc_base, link.get("href") or ""), element_text(link))
    return titles
