"""Generated files of every format, each with the truth a test checks it against.

Nothing is downloaded: transcripts, pages and archives are written here, PDFs with fpdf2,
DOCX with python-docx. Text comes from a seeded generator of first-person sentences, so
every fixture is the same on every run. The refusals (corrupt, encrypted, zip bombs, a page
tree claiming a million pages) stay small on disk.
"""

from __future__ import annotations

import io
import random
import zipfile
from dataclasses import dataclass, field

MIB = 1024 * 1024
HEADER = "The River Years — Marta Silva"
_PLACES = ("Porto", "Lisbon", "Coimbra", "Aveiro", "the old harbour", "my grandmother's village")
_PEOPLE = ("my mother", "my father", "my grandmother", "my brother", "our neighbour",
           "Jean-Paul", "my first teacher")
_THINGS = ("the river", "the fishing boats", "the bridge", "the market", "the bakery",
           "the tram line", "the shipyard", "the photographs")
_VERBS = ("repair nets", "read the tide tables", "bake bread", "draw bridges",
          "measure the current", "keep careful notebooks", "listen to conversations")
_LESSONS = ("patience matters more than talent", "you check everything twice",
            "people remember kindness", "responsibilities arrive before you are ready")
_QUESTIONS = ("And what about {thing}?", "Tell me more about {thing}.",
              "How did {thing} change over the years?", "Who showed you {thing}?")
_TEMPLATES = (
    "I grew up in {place} near {thing}.",
    "{Person} taught me to {verb} before breakfast.",
    "We moved to {place} when I was {age}.",
    "I still remember {thing} in {place} every winter.",
    "Every summer I would {verb} with {person}.",
    "Honestly, I think {person} understood {thing} better than anyone in the neighbourhood.",
    "It was {person} who first showed me {thing}.",
    "Later I recognised that {thing} had shaped everything I believed about work.",
    "I never expected to {verb} for a living, but that is extraordinarily close to what happened.",
    "What I learned there was simple: {lesson}.",
    "My apprenticeship began the year {person} left {place}.",
    "Sometimes I wonder whether I would {verb} again if I could choose.",
)


def sentences(count: int, seed: int = 7) -> list[str]:
    """`count` varied first-person sentences, the same for the same seed."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        person = rng.choice(_PEOPLE)
        out.append(rng.choice(_TEMPLATES).format(
            place=rng.choice(_PLACES), thing=rng.choice(_THINGS), verb=rng.choice(_VERBS),
            person=person, Person=person[0].upper() + person[1:], age=rng.randint(5, 17),
            lesson=rng.choice(_LESSONS)))
    return out


# --- transcripts ----------------------------------------------------------------------------

@dataclass
class Transcript:
    """A transcript file and its cues as (start_ms, end_ms, speaker, text)."""

    data: bytes
    cues: list[tuple[int, int, str, str]]
    turns: list[tuple[str, int, int]] = field(default_factory=list)  # speaker, first, last cue


def _interview(cues: int, subject: str, interviewer: str, seed: int) -> Transcript:
    rng = random.Random(seed)
    pool = iter(sentences(cues * 3, seed))
    out: list[tuple[int, int, str, str]] = []
    turns: list[tuple[str, int, int]] = []
    clock = 1_000
    while len(out) < cues:
        asking = len(turns) % 2 == 0
        speaker = interviewer if asking else subject
        words = rng.choice(_QUESTIONS).format(thing=rng.choice(_THINGS)).split() if asking else \
            " ".join(next(pool) for _ in range(rng.randint(2, 5))).split()
        first = len(out)
        while words and len(out) < cues:
            take = rng.randint(5, 11)  # cue boundaries cut through sentences
            chunk, words = words[:take], words[take:]
            end = clock + 560 * len(chunk)
            out.append((clock, end, speaker, " ".join(chunk)))
            clock = end + rng.randint(0, 500)
        turns.append((speaker, first, len(out) - 1))
        clock += rng.randint(800, 2_500)
    return Transcript(b"", out, turns)


def _vtt_time(ms: int, sep: str = ".") -> str:
    hours, minutes, seconds = ms // 3_600_000, ms // 60_000 % 60, ms // 1000 % 60
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{sep}{ms % 1000:03d}"


def interview_vtt(cues: int = 1500, subject: str = "Marta Silva",
                  interviewer: str = "Interviewer", seed: int = 7) -> Transcript:
    """A two-hour interview in WebVTT: voice tags, cue ids and settings, a NOTE, an entity."""
    truth = _interview(cues, subject, interviewer, seed)
    parts = ["\ufeffWEBVTT - interview\n\nNOTE recorded in Porto\nby the river\n"]
    for i, (start, end, speaker, text) in enumerate(truth.cues):
        shown = text.replace("&", "&amp;").replace("river", "<i>river</i>")
        settings = " align:start position:10%" if i % 7 == 0 else ""
        parts.append(f"cue-{i + 1}\n{_vtt_time(start)} --> {_vtt_time(end)}{settings}\n"
                     f"<v {speaker}>{shown}</v>\n")
    truth.data = "\n".join(parts).encode()
    return truth


def interview_srt(cues: int = 1500, subject: str = "Marta Silva",
                  interviewer: str = "Interviewer", seed: int = 7) -> Transcript:
    """The same interview in SubRip: "MARTA SILVA:" labels open each turn, CRLF line ends."""
    truth = _interview(cues, subject, interviewer, seed)
    firsts = {first for _, first, _ in truth.turns}
    blocks, labelled = [], []
    for i, (start, end, speaker, text) in enumerate(truth.cues):
        label = f"{speaker.upper()}: " if i in firsts else ""
        words = text.split()
        lines = " ".join(words[:4]) + ("\n" + " ".join(words[4:]) if words[4:] else "")
        blocks.append(f"{i + 1}\n{_vtt_time(start, ',')} --> {_vtt_time(end, ',')}\n"
                      f"{label}{lines}\n")
        labelled.append((start, end, speaker.upper(), text))
    truth.data = "\n".join(blocks).replace("\n", "\r\n").encode()
    truth.cues = labelled
    truth.turns = [(speaker.upper(), first, last) for speaker, first, last in truth.turns]
    return truth


# --- PDF --------------------------------------------------------------------------------------

@dataclass
class Book:
    """A PDF book and its truth: paragraphs, each sentence's pages, the words broken at ends."""

    data: bytes
    paragraphs: list[str]
    sentence_pages: list[tuple[str, frozenset[int]]]
    joined: list[str]  # words hyphenated at a line end, as the text must have them
    kept: list[str]  # hyphenated compounds broken at their hyphen ("Jean-Paul")
    pages: int


_WIDTH = 80
_BODY_LINES = 34


def _wrap(words: list[str]) -> tuple[list[str], list[int], list[str], list[str]]:
    """Lines of at most _WIDTH chars, the line each word starts on, and the broken words."""
    lines: list[str] = []
    starts: list[int] = []
    joined: list[str] = []
    kept: list[str] = []
    line = ""
    for word in words:
        starts.append(len(lines))
        if not line or len(line) + 1 + len(word) <= _WIDTH:
            line = f"{line} {word}" if line else word
            continue
        room = _WIDTH - len(line) - 2  # a space before, a hyphen after
        head, _, tail = word.partition("-")
        if tail and tail[0].isupper() and len(head) + 1 <= room + 1:
            lines.append(f"{line} {head}-")
            kept.append(word)
            line = tail
        elif (cut := min(room, len(word) - 3)) >= 3 and word[:cut].isalpha() and \
                word[cut].islower():
            lines.append(f"{line} {word[:cut]}-")
            joined.append(word.rstrip(".,:;?!"))
            line = word[cut:]
        else:
            lines.append(line)
            starts[-1] = len(lines)
            line = word
    lines.append(line)
    return lines, starts, joined, kept


def book_pdf(pages: int = 40, seed: int = 11, photo_side: int = 0) -> Book:
    """A book with a running header, page-number footers, hyphenated line ends, paragraphs
    that run across pages; `photo_side` > 0 adds a distinct noise photo of that many pixels
    square to every page (about 1 KB per 1,000 pixels: a big file)."""
    from fpdf import FPDF

    pool = iter(sentences(pages * 60, seed))
    rng = random.Random(seed)
    lines: list[str] = []
    paragraphs: list[str] = []
    sentence_lines: list[tuple[str, list[int]]] = []
    joined: list[str] = []
    kept: list[str] = []
    while True:
        chosen = [next(pool) for _ in range(rng.randint(2, 6))]
        while True:
            words = " ".join(chosen).split()
            wrapped, starts, broken, compounds = _wrap(words)
            if len(wrapped[-1]) <= _WIDTH * 0.6 and all(
                    len(x) >= _WIDTH * 0.9 for x in wrapped[:-1]):
                break
            chosen.append(next(pool))
        if len(lines) + len(wrapped) > pages * _BODY_LINES:
            break
        at = 0
        for sentence in chosen:
            count = len(sentence.split())
            sentence_lines.append((sentence, [len(lines) + s for s in starts[at:at + count]]))
            at += count
        paragraphs.append(" ".join(chosen))
        lines += wrapped
        joined += broken
        kept += compounds
    total = -(-len(lines) // _BODY_LINES)
    pdf = FPDF(format="A4")
    pdf.core_fonts_encoding = "windows-1252"
    pdf.set_title("The River Years")
    pdf.set_author("Marta Silva")
    pdf.set_auto_page_break(False)
    for page in range(total):
        pdf.add_page()
        pdf.set_font("Helvetica", size=9)
        pdf.text(70, 12, HEADER)
        pdf.set_font("Helvetica", size=10)
        for row, text in enumerate(lines[page * _BODY_LINES:(page + 1) * _BODY_LINES]):
            pdf.text(15, 22 + row * 6.5, text)
        if photo_side:
            pdf.image(_noise_jpeg(rng, photo_side), x=150, y=250, w=30)
        pdf.set_font("Helvetica", size=9)
        pdf.text(104, 290, str(page + 1))
    pages_of = [frozenset(1 + line // _BODY_LINES for line in starts)
                for _, starts in sentence_lines]
    return Book(bytes(pdf.output()), paragraphs,
                [(s, p) for (s, _), p in zip(sentence_lines, pages_of, strict=True)],
                joined, kept, total)


def _noise_jpeg(rng: random.Random, side: int = 160) -> io.BytesIO:
    from PIL import Image

    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3)).save(
        out, "JPEG", quality=90)
    out.seek(0)
    return out


def no_text_pdf() -> bytes:
    """Two pages with drawings only, as a scan without OCR looks to a text extractor."""
    from fpdf import FPDF

    pdf = FPDF()
    for _ in range(2):
        pdf.add_page()
        pdf.rect(20, 20, 100, 60, style="F")
        pdf.image(_noise_jpeg(random.Random(3)), x=20, y=100, w=80)
    return bytes(pdf.output())


def encrypted_pdf() -> bytes:
    """A one-page PDF that needs the user password "secret"."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_encryption(owner_password="owner", user_password="secret")
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.text(20, 20, "I grew up in Porto near the river.")
    return bytes(pdf.output())


def corrupt_pdf() -> bytes:
    """A PDF cut off after its first kilobytes, as an interrupted upload leaves it."""
    return book_pdf(pages=3).data[:1500]


def garbled_pdf() -> bytes:
    """A PDF signature and end marker around bytes that are no PDF at all."""
    return b"%PDF-1.7\n" + random.Random(5).randbytes(4000) + b"\n%%EOF\n"


def claimed_pages_pdf(claimed: int = 1_000_000, fan_out: int = 10, depth: int = 6) -> bytes:
    """A tiny PDF whose page tree claims `claimed` pages; each node lists the next one
    `fan_out` times, so the tree really expands to fan_out ** depth pages."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>"]
    for level in range(depth):
        kids = " ".join([f"{level + 3} 0 R"] * fan_out)
        count = claimed if level == 0 else fan_out ** (depth - level)
        parent = f" /Parent {level + 1} 0 R" if level else ""
        objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {count}{parent} >>")
    objects.append(f"<< /Type /Page /Parent {depth + 1} 0 R /MediaBox [0 0 612 792] >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n"
            f"startxref\n{xref}\n%%EOF\n").encode()
    return bytes(out)


# --- HTML -------------------------------------------------------------------------------------

@dataclass
class Page:
    """A web page and its truth: the article's paragraphs and what must not be kept."""

    data: bytes
    title: str
    author: str
    paragraphs: list[str]
    headings: list[str]
    absent: list[str]


def article_html(paragraphs: int = 6, seed: int = 13) -> Page:
    """A news-style page: nav, header, ads, sidebar, share buttons, comments, cookie banner,
    footer, and the article (h1, author meta, paragraphs, an h2 half way)."""
    pool = iter(sentences(paragraphs * 4, seed))
    body = [" ".join(next(pool) for _ in range(4)) for _ in range(paragraphs)]
    title, author, subheading = "The River Years", "Ana Costa", "Learning the tides"
    half = paragraphs // 2
    article = [f"<p>{p.replace('&', '&amp;')}</p>" for p in body]
    article.insert(half, f"<h2>{subheading}</h2>")
    absent = ["Home", "Subscribe to our newsletter", "Buy cheap boats now", "Sponsored content",
              "Most read this week", "Share on Facebook", "Great article, thanks!",
              "I disagree with the second point", "We use cookies", "All rights reserved",
              "Site Header Logo", "Related: The bridge at night"]
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{title} | The Porto Gazette</title>
<meta name="author" content="{author}"><meta property="og:title" content="{title}">
<script>var ads = "Buy cheap boats now";</script><style>p {{ color: black; }}</style>
</head><body>
<header class="site-header"><div>Site Header Logo</div>
<nav class="main-menu"><ul><li><a href="/">Home</a></li><li><a href="/news">News</a></li>
</ul></nav></header>
<div id="cookie-banner">We use cookies to improve your experience. <button>Accept</button></div>
<div class="layout"><main id="content">
<div class="ad-banner">Buy cheap boats now</div>
<article>
<header><h1>{title}</h1><p class="byline">By <a rel="author" href="/ana">{author}</a></p></header>
{chr(10).join(article)}
<div class="share-buttons"><a href="#">Share on Facebook</a> <a href="#">Share on X</a></div>
<aside class="related">Related: The bridge at night</aside>
</article>
<div class="sponsored">Sponsored content: Buy cheap boats now</div>
<section id="comments"><h3>Comments</h3>
<div class="comment"><p>Great article, thanks!</p></div>
<div class="comment"><p>I disagree with the second point of the piece.</p></div>
<div class="comment"><p>My grandfather worked at the shipyard too.</p></div>
</section>
</main>
<aside class="sidebar"><h3>Most read this week</h3><ul><li>Ten bridges</li></ul></aside>
</div>
<div class="newsletter-signup">Subscribe to our newsletter</div>
<footer><p>© 2026 The Porto Gazette. All rights reserved.</p></footer>
</body></html>"""
    expected = [title, f"By {author}", *body[:half], subheading, *body[half:]]
    return Page(page.encode(), title, author, expected, [title, subheading],
                [*absent, "My grandfather worked at the shipyard"])


# --- DOCX and EPUB ----------------------------------------------------------------------------

@dataclass
class Archive:
    """A DOCX or EPUB file and its truth: paragraphs and chapters (heading, first paragraph)."""

    data: bytes
    paragraphs: list[str]
    headings: list[str]
    chapters: list[tuple[str, str]]
    title: str
    author: str
    language: str


def report_docx(sections: int = 2, paragraphs: int = 3, seed: int = 17,
                photos: int = 0) -> Archive:
    """A report: Title, Heading 1 sections with Heading 2 subsections, paragraphs, a table;
    `photos` adds that many distinct noise photos (about 140 KB each)."""
    import docx

    pool = iter(sentences(sections * paragraphs * 3 + 10, seed))
    document = docx.Document()
    core = document.core_properties
    core.title, core.author, core.language = "River Survey 2026", "Marta Silva", "en-GB"
    expected, headings, chapters = [], [], []

    def heading(text: str, level: int) -> None:
        document.add_heading(text, level)
        expected.append(text)
        headings.append(text)
        if level == 1:
            chapters.append((text, text))

    document.add_heading("River Survey 2026", 0)
    expected.append("River Survey 2026")
    headings.append("River Survey 2026")
    for number in range(1, sections + 1):
        heading(f"Section {number}", 1)
        for i in range(paragraphs):
            if i == 1:
                heading(f"Part {number}.{i}", 2)
            text = " ".join(next(pool) for _ in range(3))
            document.add_paragraph(text)
            expected.append(text)
    table = document.add_table(rows=2, cols=3)
    for r, row in enumerate((("Station", "Depth", "Notes"), ("Ribeira", "12 m", "calm"))):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
            expected.append(value)
    rng = random.Random(seed)
    for _ in range(photos):
        document.add_picture(_noise_jpeg(rng, 400))
    closing = next(pool)
    document.add_paragraph(closing)
    expected.append(closing)
    out = io.BytesIO()
    document.save(out)
    return Archive(out.getvalue(), expected, headings, chapters, "River Survey 2026",
                   "Marta Silva", "en-GB")


_CONTAINER = """<?xml version="1.0"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>
</rootfiles></container>"""


def novel_epub(chapters: int = 3, paragraphs: int = 4, seed: int = 19,
               photos: int = 0) -> Archive:
    """An EPUB 3 novel: mimetype first, container, OPF with a spine, nav; the last chapter has
    no heading of its own (its title comes from the nav); `photos` adds images to chapter 1."""
    pool = iter(sentences(chapters * paragraphs * 3, seed))
    items, expected, headings, spine, truth = [], [], [], [], []
    files: dict[str, str] = {}
    for number in range(1, chapters + 1):
        texts = [" ".join(next(pool) for _ in range(3)) for _ in range(paragraphs)]
        title = f"Chapter {number}: The {('River', 'Bridge', 'Harbour', 'Market')[number % 4]}"
        own = number < chapters
        pictures = "".join(f'<img src="p{i}.jpg" alt=""/>' for i in range(photos)) \
            if number == 1 else ""
        body = (f"<h1>{title}</h1>" if own else "") + pictures + "".join(
            f"<p>{t.replace('&', '&amp;')}</p>" for t in texts)
        files[f"OEBPS/ch{number}.xhtml"] = (
            '<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml">'
            f"<head><title>{title}</title></head><body>{body}</body></html>")
        items.append(f'<item id="ch{number}" href="ch{number}.xhtml" '
                     'media-type="application/xhtml+xml"/>')
        spine.append(f'<itemref idref="ch{number}"/>')
        expected += ([title] if own else []) + texts
        headings += [title] if own else []
        truth.append((title, title if own else texts[0]))
    links = "".join(f'<li><a href="ch{n}.xhtml">{truth[n - 1][0]}</a></li>'
                    for n in range(1, chapters + 1))
    files["OEBPS/nav.xhtml"] = (
        '<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml" '
        'xmlns:epub="http://www.idpf.org/2007/ops"><head><title>Contents</title></head><body>'
        f'<nav epub:type="toc"><h1>Contents</h1><ol>{links}</ol></nav></body></html>')
    files["OEBPS/content.opf"] = f"""<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">
<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:identifier id="id">urn:x</dc:identifier>
<dc:title>The River Years</dc:title><dc:creator>Marta Silva</dc:creator>
<dc:language>pt-PT</dc:language></metadata>
<manifest><item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>
<item id="css" href="style.css" media-type="text/css"/>{"".join(items)}{"".join(
    f'<item id="p{i}" href="p{i}.jpg" media-type="image/jpeg"/>' for i in range(photos))}</manifest>
<spine><itemref idref="nav"/>{"".join(spine)}</spine></package>"""
    files["OEBPS/style.css"] = "p { margin: 0 }"
    rng = random.Random(seed)
    images = {f"OEBPS/p{i}.jpg": _noise_jpeg(rng, 400).getvalue() for i in range(photos)}
    return Archive(_epub(files, images), expected, headings, truth, "The River Years",
                   "Marta Silva", "pt-PT")


def _epub(files: dict[str, str], extra: dict[str, bytes] | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        archive.writestr("META-INF/container.xml", _CONTAINER)
        for name, text in files.items():
            archive.writestr(name, text)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return out.getvalue()


def _with_members(data: bytes, add: list[tuple[zipfile.ZipInfo | str, bytes | None]],
                  zeros: int = 0) -> bytes:
    """A copy of the archive `data` with members added (bytes, or `zeros` zero bytes)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            archive.writestr(info, source.read(info))
        for name, payload in add:
            if payload is not None:
                archive.writestr(name, payload)
                continue
            with archive.open(name, "w", force_zip64=True) as member:
                for _ in range(zeros // MIB):
                    member.write(bytes(MIB))
    return out.getvalue()


def zip_bomb_docx(zeros: int = 64 * MIB) -> bytes:
    """The report with a member of `zeros` zero bytes (about 1000:1; 64 KB on disk per 64 MB)."""
    return _with_members(report_docx().data, [("word/media/zeros.bin", None)], zeros)


def zip_bomb_epub(zeros: int = 64 * MIB) -> bytes:
    """The novel with a member of `zeros` zero bytes."""
    return _with_members(novel_epub().data, [("OEBPS/zeros.bin", None)], zeros)


def crowded_docx(members: int = 200) -> bytes:
    """The report with `members` tiny extra members."""
    return _with_members(report_docx().data,
                         [(f"word/media/m{i}.txt", b"x") for i in range(members)])


def unsafe_docx(kind: str) -> bytes:
    """The report with a member that is a symlink ("symlink"), or escapes ("parent", "absolute")."""
    if kind == "symlink":
        info = zipfile.ZipInfo("word/media/link")
        info.external_attr = (0o120777 << 16)
        return _with_members(report_docx().data, [(info, b"/etc/passwd")])
    name = {"parent": "../../evil.txt", "absolute": "/tmp/evil.txt"}[kind]
    info = zipfile.ZipInfo("placeholder")
    info.filename = name  # ZipInfo would normalise it away; a hostile archive does not
    return _with_members(report_docx().data, [(info, b"x")])


def corrupt_zip() -> bytes:
    """A ZIP signature followed by bytes that are no archive."""
    return b"PK\x03\x04" + random.Random(9).randbytes(2000)
