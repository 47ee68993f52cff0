"""Sources in formats: createSource(contentFormat), POST /sources/upload, Source.segments,
Source.speakers, the subject, and the refusals, on the test database."""

from __future__ import annotations

import hashlib
import io
import zipfile
from typing import Any

import pytest

from api.ids import to_global

VTT = """WEBVTT

1
00:00:01.000 --> 00:00:04.000
<v Interviewer>Where did you grow up?

2
00:00:04.500 --> 00:00:08.000
<v Marta Silva>I grew up in Porto, near the river. My father

3
00:00:08.000 --> 00:00:11.250
<v Marta Silva>fixed boats in a workshop by the water.

4
00:00:12.000 --> 00:00:14.000
<v Interviewer>And school?

5
00:00:14.500 --> 00:00:18.000
<v Marta Silva>School was hard for me. I hated the noise.
"""

CREATE = """mutation($input: CreateSourceInput!) { createSource(input: $input) {
  __typename
  ... on CreateSourcePayload { source { id content contentFormat charCount
        subject { name aliases }
        speakers { speaker turns words isSubject }
        segments(first: 100) { totalCount edges { node {
            kind charStart charEnd timeStartMs timeEndMs speaker text } } } } }
  ... on ValidationError { message fieldErrors { field message } }
  ... on Conflict { message field }
} }"""

UPDATE = """mutation($input: UpdateSourceInput!) { updateSource(input: $input) {
  __typename
  ... on UpdateSourcePayload { source { subject { name aliases }
        speakers { speaker isSubject } contentFormat } }
  ... on ValidationError { fieldErrors { field message } }
} }"""

SOURCE = """query($id: ID!, $after: String, $kinds: [SegmentKind!]) { node(id: $id) {
  ... on Source { segments(first: 2, after: $after, kinds: $kinds) { totalCount
      pageInfo { hasNextPage endCursor } edges { node { kind text speaker } } } } } }"""


def _input(**changes: Any) -> dict[str, Any]:
    values = {"sourceCode": "VTT_1", "title": "Marta", "sourceType": "INTERVIEW",
              "content": VTT, "contentFormat": "VTT",
              "subject": {"name": "Marta Silva", "aliases": ["Marta"]}}
    values.update(changes)
    return {"input": values}


async def test_a_vtt_transcript_becomes_turns_cues_and_speakers(gql: Any) -> None:
    # When
    body = await gql(CREATE, _input())
    # Then
    payload = body["data"]["createSource"]
    assert payload["__typename"] == "CreateSourcePayload", payload
    source = payload["source"]
    text = source["content"]
    assert text == ("Interviewer: Where did you grow up?\n\n"
                    "Marta Silva: I grew up in Porto, near the river. My father fixed boats in "
                    "a workshop by the water.\n\n"
                    "Interviewer: And school?\n\n"
                    "Marta Silva: School was hard for me. I hated the noise.")
    assert source["contentFormat"] == "VTT"
    assert source["subject"] == {"name": "Marta Silva", "aliases": ["Marta"]}
    segments = [edge["node"] for edge in source["segments"]["edges"]]
    cues = [s for s in segments if s["kind"] == "CUE"]
    assert [(c["timeStartMs"], c["timeEndMs"], c["speaker"]) for c in cues] == [
        (1000, 4000, "Interviewer"), (4500, 8000, "Marta Silva"), (8000, 11250, "Marta Silva"),
        (12000, 14000, "Interviewer"), (14500, 18000, "Marta Silva")]
    assert [c["text"] for c in cues][1:3] == ["I grew up in Porto, near the river. My father",
                                               "fixed boats in a workshop by the water."]
    for segment in segments:
        assert text[segment["charStart"]:segment["charEnd"]] == segment["text"]
    turns = [s for s in segments if s["kind"] == "TURN"]
    assert [(t["speaker"], t["timeStartMs"], t["timeEndMs"]) for t in turns] == [
        ("Interviewer", 1000, 4000), ("Marta Silva", 4500, 11250), ("Interviewer", 12000, 14000),
        ("Marta Silva", 14500, 18000)]
    assert source["speakers"] == [
        {"speaker": "Interviewer", "turns": 2, "words": 7, "isSubject": False},
        {"speaker": "Marta Silva", "turns": 2, "words": 27, "isSubject": True}]


async def test_segments_page_in_text_order_and_filter_by_kind(gql: Any) -> None:
    created = (await gql(CREATE, _input()))["data"]["createSource"]["source"]
    seen: list[str] = []
    after = None
    while True:
        page = (await gql(SOURCE, {"id": created["id"], "after": after,
                                   "kinds": ["TURN"]}))["data"]["node"]["segments"]
        assert page["totalCount"] == 4
        seen += [edge["node"]["speaker"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == ["Interviewer", "Marta Silva", "Interviewer", "Marta Silva"]


async def test_the_subject_can_be_set_changed_and_cleared(gql: Any) -> None:
    created = (await gql(CREATE, _input(subject=None)))["data"]["createSource"]["source"]
    assert created["subject"] is None
    assert all(not s["isSubject"] for s in created["speakers"])
    # When: the name matches the label "Marta Silva" ignoring case and spacing
    body = await gql(UPDATE, {"input": {"id": created["id"], "subject": {"name": "marta SILVA"}}})
    source = body["data"]["updateSource"]["source"]
    assert source["subject"] == {"name": "marta SILVA", "aliases": []}
    assert [s["speaker"] for s in source["speakers"] if s["isSubject"]] == ["Marta Silva"]
    # When: cleared
    body = await gql(UPDATE, {"input": {"id": created["id"], "subject": None}})
    source = body["data"]["updateSource"]["source"]
    assert source["subject"] is None
    assert not any(s["isSubject"] for s in source["speakers"])


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"content": VTT.replace("00:00:08.000 --> 00:00:11.250", "00:00:08.000 --> 00:0x:11.250")},
     "input.content", "line 12"),
    ({"content": VTT.replace("00:00:08.000 --> 00:00:11.250", "00:00:08.000 --> 00:00:07.000")},
     "input.content", "line 12"),
    ({"content": "no header here\n\n00:00:01.000 --> 00:00:02.000\nhi"}, "input.content",
     "WEBVTT"),
    ({"contentFormat": "PDF"}, "input.contentFormat", "file"),
    ({"subject": {"name": "  "}}, "input.subject.name", "empty"),
    ({"subject": {"name": "Marta", "aliases": ["x" * 300]}}, "input.subject.aliases.0", "200"),
])
async def test_bad_input_is_refused_naming_the_field_and_nothing_is_stored(
        gql: Any, changes: dict[str, Any], field: str, words: str) -> None:
    # When
    body = await gql(CREATE, _input(**changes))
    # Then
    payload = body["data"]["createSource"]
    assert payload["__typename"] == "ValidationError", payload
    [error] = [e for e in payload["fieldErrors"] if e["field"] == field]
    assert words in error["message"]
    listing = await gql("{ sources(first: 5) { totalCount } }")
    assert listing["data"]["sources"]["totalCount"] == 0


async def test_plain_text_is_kept_exactly_as_given(gql: Any) -> None:
    text = "Line one.\r\nLine two,  with  spaces.\n\n\nThird   paragraph. "
    body = await gql(CREATE, {"input": {"sourceCode": "TXT_1", "title": "T",
                                        "sourceType": "INTERVIEW", "content": text}})
    source = body["data"]["createSource"]["source"]
    assert source["content"] == text
    assert source["contentFormat"] == "TEXT"
    assert source["segments"]["totalCount"] == 0
    assert source["speakers"] == []


# -- POST /sources/upload ------------------------------------------------------------------------


async def _upload(client: Any, name: str, data: bytes, **fields: str) -> Any:
    return await client.post("/sources/upload", files={"file": (name, data)}, data=fields)


async def test_an_upload_stores_the_file_with_its_name_hash_and_defaults(client: Any,
                                                                         gql: Any) -> None:
    data = VTT.encode()
    # When
    response = await _upload(client, "marta interview (2).vtt", data, subject_name="Marta Silva",
                             subject_aliases="Marta, M. Silva", quality="secondary")
    # Then
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["source_code"] == "MARTA_INTERVIEW_2"
    assert body["title"] == "marta interview (2)"
    assert body["content_format"] == "VTT"
    assert body["original_file_name"] == "marta interview (2).vtt"
    assert body["original_sha256"] == hashlib.sha256(data).hexdigest()
    assert body["original_bytes"] == len(data)
    assert body["quality"] == "secondary"
    assert body["subject"] == {"name": "Marta Silva", "aliases": ["Marta", "M. Silva"]}
    query = ("query($id: ID!) { node(id: $id) { ... on Source { originalFileName "
             "speakers { speaker isSubject } } } }")
    node = (await gql(query, {"id": to_global("Source", body["id"])}))["data"]["node"]
    assert node["originalFileName"] == "marta interview (2).vtt"
    assert {s["speaker"]: s["isSubject"] for s in node["speakers"]} == {
        "Interviewer": False, "Marta Silva": True}


async def test_the_same_file_twice_is_a_conflict(client: Any) -> None:
    first = await _upload(client, "a.vtt", VTT.encode())
    second = await _upload(client, "b.vtt", VTT.encode())
    assert first.status_code == 201, first.text
    assert second.status_code == 409, second.text
    assert second.json()["error"]["fields"][0]["field"] == "content"


def _docx_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"\0" * (300 * 1024 * 1024))
    return buffer.getvalue()


@pytest.mark.parametrize(("name", "data", "fields", "status", "field", "words"), [
    ("empty.pdf", b"", {}, 422, "file", "empty"),
    ("broken.pdf", b"%PDF-1.7\n1 0 obj <<", {}, 422, "file", "PDF"),
    ("notes.bin", bytes(range(256)) * 4, {}, 422, "file", "format"),
    ("notes.txt", b"plain words here.", {"content_format": "pdf"}, 422, "file", "declared"),
    ("bomb.docx", None, {}, 422, "file", ""),
    ("x.vtt", VTT.encode(), {"content_format": "SPREADSHEET"}, 422, "content_format", "one of"),
    ("x.vtt", VTT.encode(), {"source_type": "poem"}, 422, "source_type", "one of"),
    ("x.vtt", VTT.encode(), {"colour": "red"}, 422, "colour", "not a field"),
    ("x.vtt", VTT.encode(), {"subject_aliases": "M"}, 422, "subject_name", "required"),
])
async def test_bad_uploads_are_refused_with_the_field_and_nothing_is_stored(
        client: Any, gql: Any, name: str, data: bytes | None, fields: dict[str, str],
        status: int, field: str, words: str) -> None:
    # When
    response = await _upload(client, name, _docx_bomb() if data is None else data, **fields)
    # Then
    assert response.status_code == status, response.text
    error = response.json()["error"]
    [named] = [f for f in error["fields"] if f["field"] == field]
    assert words.lower() in named["message"].lower()
    listing = await gql("{ sources(first: 5) { totalCount } }")
    assert listing["data"]["sources"]["totalCount"] == 0


async def test_an_upload_must_be_a_multipart_form_with_a_file(client: Any) -> None:
    as_json = await client.post("/sources/upload", json={"content": "hello"})
    assert as_json.status_code == 415
    no_file = await client.post("/sources/upload", data={"title": "x"},
                                files={"other": ("a.txt", b"x")})
    assert no_file.status_code == 422
    assert {f["field"] for f in no_file.json()["error"]["fields"]} >= {"file", "other"}


async def test_a_cross_site_browser_upload_is_refused(client: Any) -> None:
    response = await client.post("/sources/upload", files={"file": ("a.vtt", VTT.encode())},
                                 headers={"Origin": "https://evil.example",
                                          "Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403


async def test_an_upload_over_the_size_limit_is_refused_before_it_is_read(
        db: Any, settings: Any) -> None:
    import httpx

    from api.app import create_app

    small = settings.model_copy(update={"max_upload_bytes": 2048})
    app = create_app(small, runtime=db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://testserver") as http:
        # Over the body limit (file + 1 MiB of form): 413 before the app reads it.
        huge = await _upload(http, "big.txt", b"a" * (2 * 1024 * 1024))
        assert huge.status_code == 413


async def test_post_sources_takes_a_text_format_and_a_subject(client: Any) -> None:
    response = await client.post("/sources", json={
        "source_code": "VTT_REST", "title": "Marta", "source_type": "interview", "content": VTT,
        "content_format": "vtt", "subject": {"name": "Marta Silva", "aliases": ["Marta"]}})
    assert response.status_code == 201, response.text
    bad = await client.post("/sources", json={
        "source_code": "VTT_BAD", "title": "Marta", "content": VTT, "content_format": "vtt",
        "subject": {"name": "Marta", "aliases": "Marta Silva"}})
    assert bad.status_code == 422
    assert bad.json()["error"]["fields"][0]["field"] == "subject.aliases"
