"""GraphQL over HTTP: media type negotiation, status codes, and graphql-http's server audits."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import GraphQLView
from db.keys import KeyRepository
from tests.support.serve_process import REPO_ROOT, serve_env, serving

AUDIT_DIR = REPO_ROOT / "scripts" / "graphql-http-audit"
GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
MUSTS, SHOULDS = 13, 23  # graphql-http 1.23.1's server audits


@pytest.mark.parametrize(("accept", "expected"), [
    (None, JSON),
    ("", JSON),
    ("application/json", JSON),
    ("*/*", JSON),
    ("application/*", JSON),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", JSON),
    (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
    (f"{GRAPHQL_RESPONSE}; charset=utf-8", GRAPHQL_RESPONSE),
    (f"{GRAPHQL_RESPONSE}, application/json;q=0.9", GRAPHQL_RESPONSE),
    (f"application/json, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),  # equal q: the spec's type
    (f"application/json, {GRAPHQL_RESPONSE};q=0.5", JSON),
    (f"{GRAPHQL_RESPONSE}, */*;q=0.1", GRAPHQL_RESPONSE),
    (f"{GRAPHQL_RESPONSE};q=0, */*", JSON),  # explicitly refused
    ("APPLICATION/GRAPHQL-RESPONSE+JSON", GRAPHQL_RESPONSE),
    (f"{GRAPHQL_RESPONSE}; charset=latin1, application/json", JSON),  # only UTF-8 is produced
    (f"{GRAPHQL_RESPONSE};q=bogus, application/json", JSON),
    ("text/plain", JSON),  # nothing we produce: the header is disregarded, not a 406
    ("application/json;q=0", JSON),
])
def test_the_response_media_type_follows_the_accept_header(accept: str | None,
                                                           expected: str) -> None:
    assert GraphQLView.response_media_type(accept) == expected


async def _post(client: httpx.AsyncClient, body: Any, accept: str | None,
                **headers: str) -> httpx.Response:
    if accept is not None:
        headers["accept"] = accept
    return await client.post("/graphql", content=json.dumps(body).encode(),
                             headers={"content-type": "application/json", **headers})


PARSE_FAILURE = {"query": "{"}
VALIDATION_FAILURE = {"query": "{ noSuchField }"}
COERCION_FAILURE = {"query": "query Q($id: ID!) { __typename }", "variables": {"id": None}}


@pytest.mark.parametrize("body", [PARSE_FAILURE, VALIDATION_FAILURE, COERCION_FAILURE],
                         ids=["parse", "validation", "variable-coercion"])
async def test_a_request_error_is_a_400_without_data_for_graphql_response_json(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    # When
    response = await _post(client, body, GRAPHQL_RESPONSE)
    # Then
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == f"{GRAPHQL_RESPONSE}; charset=utf-8"
    decoded = response.json()
    assert "data" not in decoded
    assert decoded["errors"] and all("message" in error for error in decoded["errors"])


@pytest.mark.parametrize("accept", [None, JSON, "*/*", "text/plain"])
@pytest.mark.parametrize("body", [PARSE_FAILURE, VALIDATION_FAILURE, COERCION_FAILURE],
                         ids=["parse", "validation", "variable-coercion"])
async def test_a_request_error_stays_a_200_with_null_data_for_json_clients(
    client: httpx.AsyncClient, body: dict[str, Any], accept: str | None
) -> None:
    response = await _post(client, body, accept)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == JSON
    decoded = response.json()
    assert decoded["data"] is None and decoded["errors"]


async def test_a_successful_operation_is_a_200_in_the_negotiated_type(
    client: httpx.AsyncClient
) -> None:
    for accept, content_type in ((GRAPHQL_RESPONSE, f"{GRAPHQL_RESPONSE}; charset=utf-8"),
                                 (JSON, JSON), (None, JSON)):
        response = await _post(client, {"query": "{ __typename }"}, accept)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == content_type
        assert response.json() == {"data": {"__typename": "Query"}}
        # GET answers the same way
        got = await client.get("/graphql", params={"query": "{ __typename }"},
                               headers={"accept": accept} if accept else {})
        assert got.status_code == 200 and got.headers["content-type"] == content_type


async def test_a_field_error_after_execution_began_is_a_200_with_data(
    client: httpx.AsyncClient
) -> None:
    # A node id that does not decode: execution started, the field resolves to an error.
    response = await _post(client, {"query": '{ node(id: "not-a-global-id") { id } }'},
                           GRAPHQL_RESPONSE)
    assert response.status_code == 200, response.text
    decoded = response.json()
    assert "data" in decoded and decoded["errors"][0]["path"] == ["node"]


async def test_a_malformed_request_is_answered_as_a_graphql_response(
    client: httpx.AsyncClient
) -> None:
    # graphql-response+json: the 400 carries a GraphQL error in that media type
    bad_json = await client.post("/graphql", content=b'{ "not a JSON',
                                 headers={"content-type": "application/json",
                                          "accept": GRAPHQL_RESPONSE})
    assert bad_json.status_code == 400
    assert bad_json.headers["content-type"] == f"{GRAPHQL_RESPONSE}; charset=utf-8"
    assert bad_json.json()["errors"][0]["message"] == "Unable to parse request body as JSON"
    # application/json: exactly as before, Strawberry's plain-text reason
    legacy = await client.post("/graphql", content=b'{ "not a JSON',
                               headers={"content-type": "application/json",
                                        "accept": JSON})
    assert legacy.status_code == 400
    assert legacy.headers["content-type"].startswith("text/plain")
    assert legacy.text == "Unable to parse request body as JSON"


async def test_a_mutation_over_get_is_refused_in_the_negotiated_type(
    client: httpx.AsyncClient
) -> None:
    response = await client.get("/graphql", params={"query": "mutation { __typename }"},
                                headers={"accept": GRAPHQL_RESPONSE})
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert "errors" in response.json() and "data" not in response.json()


async def test_auth_failures_use_401_and_403_in_graphql_response_json(production: Any) -> None:
    http, runtime = production
    budget = {"query": 'mutation { setDailyBudget(input: {amountUsd: "5"}) { __typename } }'}
    # No key: 401, as a GraphQL response
    anonymous = await _post(http, budget, GRAPHQL_RESPONSE)
    assert anonymous.status_code == 401
    assert "API key" in anonymous.json()["errors"][0]["message"]
    # A viewer's key on an operator's mutation: refused before execution, 403 without data
    async with runtime.transaction() as session:
        viewer = (await KeyRepository(session).create("viewer", "viewer")).secret
    refused = await _post(http, budget, GRAPHQL_RESPONSE, authorization=f"Bearer {viewer}")
    assert refused.status_code == 403, refused.text
    assert "data" not in refused.json()
    assert refused.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # ... and for application/json clients it stays a 200 with `data: null`
    legacy = await _post(http, budget, JSON, authorization=f"Bearer {viewer}")
    assert legacy.status_code == 200 and legacy.json()["data"] is None


def _report(results: list[dict[str, Any]]) -> str:
    lines = []
    for result in results:
        line = f"{result['status']:>6}  {result['id']}  {result['name']}"
        if result["status"] != "ok":
            response = result.get("response") or {}
            line += (f"\n          reason: {result.get('reason')}; response: "
                     f"{response.get('status')} {response.get('contentType')} "
                     f"{(response.get('body') or '')[:300]!r}")
        lines.append(line)
    return "\n".join(lines)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("node") is None,
                    reason="needs Node.js (`node`) to run graphql-http's audits")
@pytest.mark.skipif(not (AUDIT_DIR / "node_modules").is_dir(),
                    reason="needs `npm ci --prefix scripts/graphql-http-audit` (CI runs it)")
def test_mmos_serve_passes_every_must_and_should_graphql_over_http_audit(
    database_url: str, tmp_path: Path
) -> None:
    # Given: `mmos serve` on the session's test database
    with serving(serve_env(database_url, tmp_path / "data"), tmp_path) as server:
        server.wait_healthy()
        # When
        audit = subprocess.run(
            ["node", str(AUDIT_DIR / "audit.mjs"), "--url", server.graphql_url],
            capture_output=True, text=True, timeout=120, check=False)
        logs = server.log_tail()
    assert audit.returncode == 0, f"{audit.stderr}\n{audit.stdout}\nserver log:\n{logs}"
    results: list[dict[str, Any]] = json.loads(audit.stdout)["results"]
    # Then
    report = _report(results)
    print(f"\n{report}")
    counts = {level: (sum(r["status"] == "ok" for r in results if r["level"] == level),
                      sum(r["level"] == level for r in results))
              for level in ("MUST", "SHOULD")}
    assert counts == {"MUST": (MUSTS, MUSTS), "SHOULD": (SHOULDS, SHOULDS)}, (
        f"MUST {counts['MUST'][0]}/{counts['MUST'][1]}, "
        f"SHOULD {counts['SHOULD'][0]}/{counts['SHOULD'][1]}:\n{report}")
