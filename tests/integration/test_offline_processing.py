"""End to end on the embedded path: offline models, in-process workers, real PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from api.demo_data import load_samples
from domain.grounding import normalise_text
from tests.support.database import reset_database
from tests.support.graphql import GraphQLClient
from tests.support.waiting import wait_for

START = """mutation($input: StartMultiModelProcessingInput!) {
  startMultiModelProcessing(input: $input) { __typename
    ... on StartMultiModelProcessingPayload { batches { id model status } }
    ... on ValidationError { fieldErrors { field message } } ... on NotFound { message } } }"""

BATCH = """query($id: ID!) { batch(id: $id) { status model costUsd progress
  runs { status fragmentCount groundedFragmentCount costUsd inputTokens outputTokens latencyMs
         errorMessage chunkCount chunksDone } } }"""

FRAGMENTS = """query($after: String, $batch: ID!) {
  fragments(first: 100, after: $after, filter: {batchId: $batch}) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { node { content quote charStart charEnd grounding groundingScore category
                   fragmentType relevance confidence isComplete hasCleanBoundaries
                   fragmentCode source { id } batch { id } } } } }"""


@pytest.fixture
async def gql_processing(processing: Any, settings: Any) -> Any:
    from api.app import create_app

    await reset_database(processing)
    app = create_app(settings, runtime=processing)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield GraphQLClient(http)


async def create_sample(gql: Any, language: str) -> str:
    sample = next(s for s in load_samples() if s["language"].startswith(language))
    body = await gql("""mutation($input: CreateSourceInput!) { createSource(input: $input) {
        ... on CreateSourcePayload { source { id } } } }""", {"input": {
        "sourceCode": sample["sourceCode"], "title": sample["title"], "sourceType": "INTERVIEW",
        "content": sample["content"], "language": sample["language"],
        "author": sample["author"]}})
    return str(body["data"]["createSource"]["source"]["id"])


async def all_fragments(gql: Any, batch_id: str) -> list[dict[str, Any]]:
    nodes, after = [], None
    while True:
        page = (await gql(FRAGMENTS, {"after": after, "batch": batch_id}))["data"]["fragments"]
        nodes += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]


@pytest.mark.parametrize("language", ["en", "pt"])
async def test_two_offline_models_complete_with_exact_spans(gql_processing: Any,
                                                            language: str) -> None:
    gql = gql_processing
    # Given
    source_id = await create_sample(gql, language)
    # When
    started = (await gql(START, {"input": {"sourceId": source_id,
                                           "models": ["rules-fast", "rules-thorough"]}}))
    payload = started["data"]["startMultiModelProcessing"]
    assert payload["__typename"] == "StartMultiModelProcessingPayload", payload
    batches = payload["batches"]
    assert [b["model"] for b in batches] == ["rules-fast", "rules-thorough"]

    async def finished() -> list[dict[str, Any]] | None:
        states = [(await gql(BATCH, {"id": b["id"]}))["data"]["batch"] for b in batches]
        done = all(s["status"] in ("COMPLETED", "FAILED") for s in states)
        return states if done else None

    states = await wait_for(finished, timeout=120)
    # Then
    source = (await gql("query($id: ID!) { source(id: $id) { content status } }",
                        {"id": source_id}))["data"]["source"]
    assert source["status"] == "PROCESSED"
    counts = {}
    for batch, state in zip(batches, states, strict=True):
        assert state["status"] == "COMPLETED", state
        assert state["costUsd"] == "0" or float(state["costUsd"]) == 0
        assert state["progress"] == 1.0
        run = state["runs"][0]
        assert run["status"] == "COMPLETED"
        assert run["chunksDone"] == run["chunkCount"] > 1
        assert run["inputTokens"] > 0 and run["outputTokens"] > 0
        fragments = await all_fragments(gql, batch["id"])
        assert len(fragments) == run["fragmentCount"] > 20
        exact = [f for f in fragments if f["grounding"] == "EXACT"]
        assert len(exact) >= 0.9 * len(fragments)
        for fragment in exact:
            span = source["content"][fragment["charStart"]:fragment["charEnd"]]
            assert normalise_text(span).casefold() == normalise_text(fragment["quote"]).casefold()
        codes = [f["fragmentCode"] for f in fragments]
        assert len(set(codes)) == len(codes)
        assert all(code.startswith("FRAG_") for code in codes)
        counts[batch["model"]] = len(fragments)
    assert counts["rules-thorough"] != counts["rules-fast"]
