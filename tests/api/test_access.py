"""Access control: keys required in production, roles, revocation, identity from the key."""

from __future__ import annotations

from typing import Any

import httpx

from db.keys import KeyRepository

SOURCE = """mutation($code: String!) { createSource(input: {sourceCode: $code, title: "T",
  sourceType: INTERVIEW, content: $code}) { __typename } }"""
BUDGET = """mutation { setDailyBudget(input: {amountUsd: "5"}) { __typename } }"""
QUERY = "{ sources(first: 1) { totalCount } }"


async def issue(runtime: Any, role: str, name: str | None = None) -> str:
    async with runtime.transaction() as session:
        return (await KeyRepository(session).create(name or role, role)).secret


async def post(http: httpx.AsyncClient, query: str, key: str | None = None,
               variables: dict[str, Any] | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return await http.post("/graphql", json={"query": query, "variables": variables or {}},
                           headers=headers)


async def test_without_a_key_everything_but_health_is_refused(production: Any) -> None:
    http, _ = production
    assert (await http.get("/healthz")).status_code == 200
    refused = await post(http, QUERY)
    assert refused.status_code == 401
    assert "API key" in refused.text
    assert (await post(http, SOURCE, variables={"code": "A_1"})).status_code == 401
    assert (await http.get("/metrics")).status_code == 401
    assert (await http.post("/sources", json={})).status_code == 401


async def test_a_viewer_reads_but_cannot_process_or_change_budgets(production: Any) -> None:
    http, runtime = production
    viewer = await issue(runtime, "viewer")
    ok = await post(http, QUERY, viewer)
    assert ok.status_code == 200 and ok.json()["data"]["sources"]["totalCount"] == 0
    for mutation in (BUDGET, SOURCE, """mutation { startMultiModelProcessing(input:
            {sourceId: "1", models: ["rules-fast"]}) { __typename } }"""):
        body = (await post(http, mutation, viewer, {"code": "V_1"})).json()
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body
    assert (await http.get("/metrics", headers={"Authorization": f"Bearer {viewer}"})
            ).status_code == 200


async def test_an_editor_curates_but_an_operator_steers_money(production: Any) -> None:
    http, runtime = production
    editor, operator = await issue(runtime, "editor"), await issue(runtime, "operator")
    created = (await post(http, SOURCE, editor, {"code": "E_1"})).json()
    assert created["data"]["createSource"]["__typename"] == "CreateSourcePayload"
    refused = (await post(http, BUDGET, editor)).json()
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    allowed = (await post(http, BUDGET, operator)).json()
    assert allowed["data"]["setDailyBudget"]["__typename"] == "SetBudgetPayload"


async def test_a_revoked_key_stops_working_at_once(production: Any) -> None:
    http, runtime = production
    key = await issue(runtime, "operator", "temporary")
    assert (await post(http, QUERY, key)).status_code == 200
    async with runtime.transaction() as session:
        assert await KeyRepository(session).revoke("temporary") == 1
    after = await post(http, QUERY, key)
    assert after.status_code == 401
    assert "revoked" in after.text


async def test_a_wrong_or_malformed_key_is_refused_even_in_development(client: Any) -> None:
    for token in ("nonsense", "mmos_deadbeef_" + "x" * 40):
        response = await client.post("/graphql", json={"query": QUERY},
                                     headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
    assert (await client.post("/graphql", json={"query": QUERY})).status_code == 200


async def test_keys_are_stored_only_as_hashes(db: Any) -> None:
    secret = await issue(db, "viewer", "hashed")
    async with db.read() as session:
        from sqlalchemy import text

        stored = (await session.execute(text("SELECT key_hash, prefix FROM api_keys"))).one()
    assert secret not in stored.key_hash and len(stored.key_hash) == 64
    assert secret.split("_")[1] == stored.prefix


def test_keys_are_required_beyond_loopback_or_in_production(settings: Any) -> None:
    from api.auth import keys_required

    assert not keys_required(settings.model_copy(update={"host": "127.0.0.1"}))
    assert not keys_required(settings.model_copy(update={"host": "localhost"}))
    assert keys_required(settings.model_copy(update={"host": "0.0.0.0"}))
    assert keys_required(settings.model_copy(update={"host": "127.0.0.1",
                                                     "env": "production"}))
