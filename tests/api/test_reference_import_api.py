"""importReferenceFragments over GraphQL, Source.referenceFragments pages, the REST route and
the `mmos import-reference` command, on the test database."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest

from api.ids import to_global
from db.keys import KeyRepository
from domain.services.sources import create_source

TEXT = ("The harbour was quiet that morning. “Where were you?” she asked, without looking "
        "up. “At the mill, with Tom,” he said. I never trusted a plan I couldn’t explain "
        "to my grandmother. The rest of the day was spent counting crates by the river.")

FILE = "---\n".join([
    'id: "A"\ncategory: "Cognitive"\ncontent: "I never trusted a plan I couldn\'t explain '
    'to my grandmother."\ntags: ["simplicity"]\nmetadata: {confidence: 0.9}\n',
    'id: "B"\ncategory: "social"\ntype: "citação direta"\n'
    'content: \'"Where were you?" "At the mill, with Tom,"\'\n',
    'id: "C"\ncategory: "EMO"\ncontent: "The lighthouse keeper sold his boat to a stranger."\n',
])

IMPORT = """mutation($input: ImportReferenceFragmentsInput!) {
  importReferenceFragments(input: $input) {
    __typename
    ... on ImportReferenceFragmentsPayload {
      created updated unchanged groundedCount ungroundedCount
      grounded { id externalId charStart charEnd grounding category fragmentType tags
                 metadata verificationStatus reviewer provenanceFile }
      ungrounded { externalId content closestStart closestEnd closestText score line }
    }
    ... on ValidationError { fieldErrors { field message } }
    ... on NotFound { field kind }
  }
}"""

PAGE = """query($id: ID!, $after: String) { node(id: $id) { ... on Source {
  referenceFragments(first: 2, after: $after) { totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { id externalId verificationStatus grounding closestStart } } } } } }"""


async def source_id(runtime: Any) -> int:
    row = await create_source(runtime.ports, {"source_code": "REF_1", "title": "T",
                                              "source_type": "interview", "content": TEXT})
    return int(row.id)


def variables(source: int, **changes: Any) -> dict[str, Any]:
    values = {"sourceId": to_global("Source", source), "format": "MMOS_YAML", "data": FILE,
              "reviewer": "ana", "fileName": "notes.yaml"}
    values.update(changes)
    return {"input": values}


async def test_the_mutation_imports_grounds_and_reports(db: Any, gql: Any) -> None:
    source = await source_id(db)
    # When
    body = await gql(IMPORT, variables(source))
    # Then
    payload = body["data"]["importReferenceFragments"]
    assert payload["__typename"] == "ImportReferenceFragmentsPayload"
    assert (payload["created"], payload["groundedCount"], payload["ungroundedCount"]) == (
        3, 2, 1)
    grounded = {f["externalId"]: f for f in payload["grounded"]}
    assert TEXT[grounded["A"]["charStart"]:grounded["A"]["charEnd"]].startswith("I never")
    assert grounded["A"]["metadata"] == {"confidence": 0.9}
    assert grounded["A"]["tags"] == ["simplicity"]
    assert grounded["B"]["fragmentType"] == "DIRECT_QUOTE"
    assert grounded["B"]["category"] == "SOCIAL"
    assert grounded["A"]["verificationStatus"] == "VERIFIED"
    assert grounded["A"]["provenanceFile"] == "notes.yaml"
    [missing] = payload["ungrounded"]
    assert missing["externalId"] == "C" and missing["line"] == 12
    assert missing["closestText"] == TEXT[missing["closestStart"]:missing["closestEnd"]]
    # and again: nothing changes
    again = (await gql(IMPORT, variables(source)))["data"]["importReferenceFragments"]
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 3)
    assert [f["id"] for f in again["grounded"]] == [f["id"] for f in payload["grounded"]]


async def test_errors_come_back_as_data_with_field_paths(db: Any, gql: Any) -> None:
    source = await source_id(db)
    bad = FILE.replace('"EMO"', '"Nonsense"')
    payload = (await gql(IMPORT, variables(source, data=bad)))["data"][
        "importReferenceFragments"]
    assert payload["__typename"] == "ValidationError"
    [error] = payload["fieldErrors"]
    assert error["field"] == "input.data.2.category" and "line 13" in error["message"]
    blank = (await gql(IMPORT, variables(source, reviewer=" ")))["data"][
        "importReferenceFragments"]
    assert blank["fieldErrors"][0]["field"] == "input.reviewer"
    missing = (await gql(IMPORT, variables(source + 99)))["data"]["importReferenceFragments"]
    assert (missing["__typename"], missing["field"]) == ("NotFound", "input.sourceId")
    page = await gql(PAGE, {"id": to_global("Source", source)})
    assert page["data"]["node"]["referenceFragments"]["totalCount"] == 0


async def test_a_viewer_key_cannot_import(production: Any) -> None:
    http, runtime = production
    source = await source_id(runtime)
    async with runtime.transaction() as session:
        viewer = (await KeyRepository(session).create("viewer", "viewer")).secret
        editor = (await KeyRepository(session).create("editor", "editor")).secret
    refused = (await http.post("/graphql", json={"query": IMPORT,
                                                 "variables": variables(source)},
                               headers={"Authorization": f"Bearer {viewer}"})).json()
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    allowed = (await http.post("/graphql", json={"query": IMPORT,
                                                 "variables": variables(source)},
                               headers={"Authorization": f"Bearer {editor}"})).json()
    assert allowed["data"]["importReferenceFragments"]["created"] == 3
    rest = await http.post(f"/sources/{source}/reference",
                           json={"format": "mmos_yaml", "data": FILE, "reviewer": "v"},
                           headers={"Authorization": f"Bearer {viewer}"})
    assert rest.status_code == 403


async def test_source_reference_fragments_are_paged(db: Any, gql: Any) -> None:
    source = await source_id(db)
    await gql(IMPORT, variables(source))
    first = (await gql(PAGE, {"id": to_global("Source", source)}))["data"]["node"][
        "referenceFragments"]
    assert first["totalCount"] == 3 and first["pageInfo"]["hasNextPage"]
    second = (await gql(PAGE, {"id": to_global("Source", source),
                               "after": first["pageInfo"]["endCursor"]}))["data"]["node"][
        "referenceFragments"]
    nodes = [e["node"] for e in first["edges"] + second["edges"]]
    assert [n["externalId"] for n in nodes] == ["A", "B", "C"]
    assert not second["pageInfo"]["hasNextPage"]
    assert nodes[2]["verificationStatus"] == "NEEDS_REVIEW"
    assert nodes[2]["grounding"] == "UNGROUNDED" and nodes[2]["closestStart"] is not None
    node = (await gql("query($id: ID!) { node(id: $id) { ... on ReferenceFragment { "
                      "externalId } } }", {"id": nodes[0]["id"]}))["data"]["node"]
    assert node == {"externalId": "A"}
    assert base64.b64decode(nodes[0]["id"]).startswith(b"ReferenceFragment:")


async def test_the_rest_route_imports_and_refuses_like_the_mutation(db: Any,
                                                                    client: Any) -> None:
    source = await source_id(db)
    body = {"format": "mmos_yaml", "data": FILE, "reviewer": "ana", "file_name": "n.yaml"}
    # When
    created = await client.post(f"/sources/{source}/reference", json=body)
    # Then
    assert created.status_code == 201, created.text
    result = created.json()
    assert (result["created"], result["grounded_count"], result["ungrounded_count"]) == (3, 2, 1)
    assert result["ungrounded"][0]["external_id"] == "C"
    by_global = await client.post(f"/sources/{to_global('Source', source)}/reference",
                                  json=body)
    assert by_global.status_code == 201 and by_global.json()["unchanged"] == 3
    bad = await client.post(f"/sources/{source}/reference",
                            json={**body, "data": FILE.replace('"EMO"', '"Nope"')})
    assert bad.status_code == 422
    assert bad.json()["error"]["fields"][0]["field"] == "data.2.category"
    unknown = await client.post(f"/sources/{source + 99}/reference", json=body)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["fields"][0]["field"] == "source_id"
    extra = await client.post(f"/sources/{source}/reference", json={**body, "x": 1})
    assert extra.status_code == 422
    plain = await client.post(f"/sources/{source}/reference", content=json.dumps(body),
                              headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415


async def test_the_cli_imports_files_and_reports_each(db: Any, database_url: str,
                                                      tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    from api import cli
    from api.settings import get_settings

    await source_id(db)
    (tmp_path / "notes.yaml").write_text(FILE)
    (tmp_path / "more.jsonl").write_text(json.dumps(
        {"id": "J1", "content": "The rest of the day was spent counting crates"}) + "\n")
    (tmp_path / "bad.jsonl").write_text('{"id": "Z", "content": "x", "category": "??"}\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        # When
        code = await asyncio.to_thread(cli.main, [
            "import-reference", "REF_1", "notes.yaml", "more.jsonl", "--reviewer", "ana"])
        out = capsys.readouterr().out
        refused = await asyncio.to_thread(cli.main, ["import-reference", "REF_1", "bad.jsonl"])
        err = capsys.readouterr().err
        unknown = await asyncio.to_thread(cli.main, ["import-reference", "NOPE", "more.jsonl"])
    finally:
        get_settings.cache_clear()
    # Then
    assert code == 0, out
    assert "notes.yaml: 2 grounded, 1 ungrounded; 3 created, 0 updated, 0 unchanged" in out
    assert "ungrounded C (line 12): closest" in out
    assert "more.jsonl: 1 grounded, 0 ungrounded; 1 created" in out
    assert refused == 1 and "data.0.category" in err and "nothing written" in err
    assert unknown == 2
