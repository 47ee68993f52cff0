"""The API the review page reads: who is calling, a source's spans in one request, runs per
model."""

from __future__ import annotations

from typing import Any

from tests.support.graphql import GraphQLClient
from tests.support.processing import create_source, fragments_of, interview, start, wait_batch

ME = "{ me { name role canReview keyless } }"
SPANS = """query($id: ID!, $runs: [ID!]) { source(id: $id) {
  runsPerModel { model runs completedRuns activeRuns }
  fragmentSpans(runIds: $runs) { fragmentId runId model charStart charEnd grounding } } }"""


async def test_me_is_the_local_developer_without_a_key_and_the_key_with_one(
        gql: GraphQLClient, db: Any) -> None:
    from domain.services.keys import create_key

    assert (await gql(ME))["data"]["me"] == {"name": "local", "role": "operator",
                                            "canReview": True, "keyless": True}
    key = await create_key(db.ports, "reader", "viewer")
    me = (await gql(ME, headers={"Authorization": f"Bearer {key.secret}"}))["data"]["me"]
    assert me == {"name": "key:reader", "role": "viewer", "canReview": False, "keyless": False}


async def test_fragment_spans_and_runs_per_model_match_the_fragments_listing(
        engine_gql: GraphQLClient) -> None:
    source_id = await create_source(engine_gql, "SPANS", interview("SPANS", 30))
    payload = await start(engine_gql, source_id, ["rules-fast", "rules-thorough"])
    batches = {b["model"]: b["id"] for b in payload["batches"]}
    for batch_id in batches.values():
        await wait_batch(engine_gql, batch_id)
    listed = {model: await fragments_of(engine_gql, batch) for model, batch in batches.items()}
    run_of = {model: fragments[0]["run"]["id"] for model, fragments in listed.items()}

    # Every span of the source, in text order
    source = (await engine_gql(SPANS, {"id": source_id}))["data"]["source"]
    spans = source["fragmentSpans"]
    assert len(spans) == sum(len(f) for f in listed.values())
    starts = [s["charStart"] for s in spans if s["charStart"] is not None]
    assert starts == sorted(starts)
    assert sorted(source["runsPerModel"], key=lambda r: r["model"]) == [
        {"model": "rules-fast", "runs": 1, "completedRuns": 1, "activeRuns": 0},
        {"model": "rules-thorough", "runs": 1, "completedRuns": 1, "activeRuns": 0}]

    # Of one run only: exactly that run's fragments, with the listing's offsets
    fast = (await engine_gql(SPANS, {"id": source_id, "runs": [run_of["rules-fast"]]})
            )["data"]["source"]["fragmentSpans"]
    assert {(s["charStart"], s["charEnd"]) for s in fast} == {
        (f["charStart"], f["charEnd"]) for f in listed["rules-fast"]}
    assert {s["model"] for s in fast} == {"rules-fast"}
    assert {s["runId"] for s in fast} == {run_of["rules-fast"]}
