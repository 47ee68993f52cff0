"""REST compatibility routes: the original MMOS calls, same validation as GraphQL, JSON errors
with field paths, never a 500 for what a client sent."""

from __future__ import annotations

from typing import Any

import pytest

SOURCE = {"source_code": "SRC_001", "title": "Discovery Interview", "source_type": "interview",
          "quality": "primary", "extraction_priority": "CRITICAL",
          "content": "I moved to Lisbon in 2019. I still check every calculation twice."}


def fields(body: dict[str, Any]) -> dict[str, str]:
    return {f["field"]: f["message"] for f in body["error"]["fields"]}


async def test_a_source_posted_as_in_the_original_readme_is_stored(client: Any) -> None:
    response = await client.post("/sources", json=SOURCE)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["id"], body["source_code"], body["extraction_priority"]) == \
        (1, "SRC_001", "critical")
    seen = await client.post("/graphql", json={
        "query": "query($id: ID!) { source(id: $id) { sourceCode title } }",
        "variables": {"id": body["global_id"]}})
    assert seen.json()["data"]["source"] == {"sourceCode": "SRC_001",
                                             "title": "Discovery Interview"}


async def test_invalid_source_fields_come_back_with_their_snake_case_paths(client: Any) -> None:
    response = await client.post("/sources", json={
        "source_code": "bad code!", "source_type": "tweet", "source_date": "yesterday",
        "colour": "blue"})
    assert response.status_code == 422
    body = response.json()
    assert body["error"]["type"] == "validation_error"
    assert {"source_type", "source_date", "colour"} <= set(fields(body))
    assert "interview" in fields(body)["source_type"]
    # The enum checks come first; the shared validation then names every other field.
    fixed = await client.post("/sources", json={"source_code": "bad code!", "title": ""})
    assert {"source_code", "title", "content"} <= set(fields(fixed.json()))


async def test_a_duplicate_source_is_a_conflict_on_its_field(client: Any) -> None:
    assert (await client.post("/sources", json=SOURCE)).status_code == 201
    again = await client.post("/sources", json=SOURCE)
    assert again.status_code == 409
    assert again.json()["error"]["type"] == "conflict"
    assert set(fields(again.json())) == {"source_code"}


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'{"title": "nul \\u0000 here"}',
                                 b'{"title": "\\ud800"}'])
async def test_a_body_that_is_not_a_clean_json_object_is_a_bad_request(client: Any,
                                                                        raw: bytes) -> None:
    response = await client.post("/sources", content=raw,
                                 headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "bad_request"


async def test_multi_model_processing_validates_like_the_mutation(client: Any) -> None:
    await client.post("/sources", json=SOURCE)
    cases = [
        ({"source_id": 1, "models": ["no-such-model"]}, 422, "models.0"),
        ({"source_id": 1, "models": []}, 422, "models"),
        ({"source_id": 1}, 422, "models"),
        ({"source_id": "not-an-id", "models": ["rules-fast"]}, 422, "source_id"),
        ({"source_id": 99, "models": ["rules-fast"]}, 404, "source_id"),
        ({"source_id": 1, "models": ["rules-fast"], "budget_usd": "-1"}, 422, "budget_usd"),
        ({"source_id": 1, "models": "rules-fast"}, 422, "models"),
        ({"source_id": 1, "models": ["rules-fast"], "strategy": "x"}, 422, "strategy"),
    ]
    for body, status, field in cases:
        response = await client.post("/process/multi-model", json=body)
        assert response.status_code == status, (body, response.text)
        assert field in fields(response.json()), (body, response.json())
    batches = await client.post("/graphql", json={"query": "{ batches { totalCount } }"})
    assert batches.json()["data"]["batches"]["totalCount"] == 0  # nothing was started


async def test_the_report_of_an_unprocessed_source_says_nothing_qualifies(client: Any) -> None:
    await client.post("/sources", json=SOURCE)
    response = await client.get("/reports/optimization/1")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["source"]["source_code"] == "SRC_001"
    assert (report["comparison"], report["pending_runs"], report["savings"]) == ([], 0, None)
    spot = report["sweet_spot"]
    assert (spot["model"], spot["qualified"], spot["threshold"]) == (None, False, 8.5)
    assert "no model has been measured" in spot["reason"]
    assert report["recommendation"].startswith("No model qualifies yet")


async def test_reports_of_unknown_or_malformed_sources_are_404_and_422(client: Any) -> None:
    missing = await client.get("/reports/optimization/42")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found"
    malformed = await client.get("/reports/optimization/%F0%9F%92%A9")
    assert malformed.status_code == 422
    assert set(fields(malformed.json())) == {"source_id"}


async def test_the_savings_report_without_measurements_is_an_empty_table(client: Any) -> None:
    response = await client.get("/reports/savings")
    assert response.status_code == 200
    body = response.json()
    assert body["rows"] == []
    assert body["table"].startswith("| Source Type | Original Model | Optimized Model |")
