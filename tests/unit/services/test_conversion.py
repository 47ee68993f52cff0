"""Sources from files and formatted text (domain/services/conversion.py, sources.py) over the
fakes, with the real converters: defaults from the file, refusals naming the field, nothing
stored on any refusal, duplicates, and `mmos import`'s per-file summary."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from api.file_import import import_files
from domain.documents import ContentFormat, SegmentKind
from domain.errors import Conflict, InvalidInput
from domain.services import conversion, sources
from tests.support.documents import article_html, corrupt_pdf, interview_srt, no_text_pdf
from tests.support.fakes import make_ports
from workers.converters import Converters

VTT = ("WEBVTT\n\n00:00:01.000 --> 00:00:03.000\n<v Host>Who taught you to fish?\n\n"
       "00:00:03.500 --> 00:00:06.000\n<v Marta>My grandmother did, every summer.\n")


def ports(**settings: Any) -> Any:
    return make_ports(converter=Converters(), **settings)


def stored(p: Any) -> list[Any]:
    return list(p.uow.state.sources.values())


async def test_a_file_takes_its_code_title_type_and_author_from_itself() -> None:
    p = ports()
    page = article_html()
    row = await conversion.create_source_from_file(p, {}, page.data, "Jornal: a casa.html")
    assert (row.source_code, row.title, row.author) == ("JORNAL_A_CASA", page.title,
                                                        page.author)
    assert row.source_type == "article"
    assert row.content_format == "HTML"
    assert row.original_sha256 == hashlib.sha256(page.data).hexdigest()
    assert row.original_bytes == len(page.data)


async def test_request_fields_win_over_what_the_file_says() -> None:
    p = ports()
    row = await conversion.create_source_from_file(
        p, {"source_code": "MINE", "title": "Mine", "author": "Me"}, article_html().data,
        "a.html")
    assert (row.source_code, row.title, row.author) == ("MINE", "Mine", "Me")


async def test_a_subject_is_matched_to_the_speakers_of_the_file() -> None:
    p = ports()
    transcript = interview_srt(40)
    row = await conversion.create_source_from_file(
        p, {"subject": {"name": "Marta Silva"}}, transcript.data, "talk.srt")
    assert row.subject_speakers == ["MARTA SILVA"]
    segments = p.uow.state.segments[row.id]
    assert {s.kind for s in segments} == {SegmentKind.CUE, SegmentKind.TURN}


@pytest.mark.parametrize(("data", "name", "raw", "path", "words"), [
    (b"", "a.txt", {}, ("file",), "is empty"),
    (b"x" * 40_000, "a.txt", {}, ("file",), "the limit is 30000 bytes"),
    (bytes(range(256)), "a.bin", {}, ("file",), "not in a format"),
    (no_text_pdf(), "scan.pdf", {}, ("file",), "no text layer; run OCR first"),
    (corrupt_pdf(), "broken.pdf", {}, ("file",), "PDF"),
    (VTT.encode(), "a.vtt", {"content_format": "PDF"}, ("file",), "declared PDF"),
    (VTT.encode(), "a.vtt", {"content_format": "ODT"}, ("contentFormat",), "must be one of"),
    (VTT.encode(), "a.vtt", {"language": "portuguese!"}, ("language",), "language tag"),
    (VTT.encode(), "a.vtt", {"subject": {"name": ""}}, ("subject", "name"), "empty"),
    (VTT.encode(), "a.vtt", {"source_code": "bad code!"}, ("sourceCode",), "2-64 characters"),
])
async def test_refusals_name_the_field_and_store_nothing(
        data: bytes, name: str, raw: dict[str, Any], path: tuple[str, ...], words: str) -> None:
    p = ports(max_upload_bytes=30_000)
    with pytest.raises(InvalidInput) as caught:
        await conversion.create_source_from_file(p, raw, data, name)
    [issue] = [i for i in caught.value.issues if i.path == path]
    assert words in issue.message
    assert stored(p) == []
    assert p.uow.state.segments == {}


async def test_text_read_from_a_file_must_fit_the_content_limit() -> None:
    p = ports(max_content_bytes=100)
    with pytest.raises(InvalidInput) as caught:
        await conversion.create_source_from_file(p, {}, interview_srt(30).data, "talk.srt")
    [issue] = caught.value.issues
    assert issue.path == ("content",)
    assert issue.message.startswith("the text read from the file is ")


async def test_the_same_text_twice_is_a_conflict_and_the_same_bytes_are_found() -> None:
    p = ports()
    first = await conversion.create_source_from_file(p, {}, VTT.encode(), "one.vtt")
    assert (await conversion.source_of_file(p, VTT.encode())).id == first.id
    with pytest.raises(Conflict) as caught:
        await conversion.create_source_from_file(p, {}, VTT.encode(), "two.vtt")
    assert caught.value.path == ("content",)


async def test_create_source_converts_text_formats_and_refuses_file_formats() -> None:
    p = ports()
    row = await sources.create_source(p, {"source_code": "VTT_1", "title": "T",
                                          "content": VTT, "content_format": "VTT"})
    assert row.content.startswith("Host: Who taught you to fish?")
    assert row.content_format == ContentFormat.VTT.value
    with pytest.raises(InvalidInput) as caught:
        await sources.create_source(p, {"source_code": "PDF_1", "title": "T",
                                        "content": "x", "content_format": "PDF"})
    assert caught.value.issues[0].path == ("input", "contentFormat")


async def test_new_content_replaces_the_segments_and_plain_text_drops_them() -> None:
    p = ports()
    row = await sources.create_source(p, {"source_code": "VTT_1", "title": "T",
                                          "content": VTT, "content_format": "VTT",
                                          "subject": {"name": "Marta"}})
    assert row.subject_speakers == ["Marta"]
    changed = await sources.update_source(p, row.id, {"content": "Now plain words only."})
    assert changed.content_format == "TEXT"
    assert changed.subject_speakers == []
    assert p.uow.state.segments[row.id] == []


async def test_import_files_reports_created_duplicates_and_errors(tmp_path: Path) -> None:
    p = ports()
    files = {"talk.vtt": VTT.encode(), "again.vtt": VTT.encode(), "page.html":
             article_html().data, "scan.pdf": no_text_pdf()}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    seen: list[str] = []
    summary = await import_files(p, [tmp_path / n for n in [*files, "missing.txt"]],
                                 {"quality": "secondary"}, progress=lambda f: seen.append(f.name))
    assert [code for _, code in summary.created] == ["TALK", "PAGE"]
    assert [Path(name).name for name, _ in summary.duplicates] == ["again.vtt"]
    assert {Path(name).name: why for name, why in summary.errors} == {
        "scan.pdf": "file: no text layer; run OCR first",
        "missing.txt": "cannot be read: No such file or directory"}
    assert summary.line() == "2 created, 1 duplicates, 2 errors"
    assert seen == [*files, "missing.txt"]
    assert {row.quality for row in stored(p)} == {"secondary"}
