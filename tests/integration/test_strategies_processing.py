"""processBatch strategies through the real workers: each decision path, recorded on batches.

Weights are set so that scores are easy to predict: the score is the mean of F1 (with a
reference), grounded rate, coverage (and, for some tests, relevance/10 = 0.7); the model that
finds half the sentences then scores about 7.5 alone, the echoing one 10.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tests.support.fake_provider import FakeProvider
from tests.support.graphql import GraphQLClient
from tests.support.scenarios import HALF, REFERENCE, behaviour
from tests.support.strategies import (
    CANDIDATES,
    GOOD,
    INVENTOR,
    THRESHOLDS,
    plan_batches,
    prepare,
    process,
    sources,
    steps,
)


def decided(batches: list[Any]) -> list[dict[str, Any]]:
    """The decisions taken after each step (recorded once per step, on each of its batches)."""
    seen: dict[int, dict[str, Any]] = {}
    for batch in batches:
        for decision in batch.decisions:
            if decision["kind"] == "decided":
                seen[decision["afterStep"]] = decision
    return [seen[step] for step in sorted(seen)]


async def test_progressive_stops_at_the_first_model_that_meets_the_bar(
        engine_gql: GraphQLClient, processing: Any, provider: FakeProvider,
        small_chunks: int, one_source_sample: int) -> None:
    gql = engine_gql
    await prepare(gql, provider, relevance=0.0, threshold=("INTERVIEW", 9.0))
    ids = await sources(gql, "INTERVIEW", ["P1", "P2", "P3"])
    # When
    opened = await process(gql, ids, "PROGRESSIVE")
    # Then: it opens with the cheapest candidate on the one-source sample
    assert [(b["model"], b["strategy"]) for b in opened] == [(HALF, "PROGRESSIVE")]
    batches = await plan_batches(processing, opened[0]["groupId"])
    # half falls short, good meets the bar: good processes the two other sources; the dearer
    # models never run.
    assert steps(batches) == [(0, HALF, 1), (1, GOOD, 1), (2, GOOD, 2)]
    first, second = decided(batches)
    assert (first["action"], first["models"]) == ("test", [GOOD])
    assert first["measured"][HALF]["quality"] < 9.0
    assert any(note.startswith(f"{HALF} scores") and "< 9" in note for note in first["notes"])
    assert (second["action"], second["chosen"], second["final"]) == ("use", GOOD, True)
    assert second["measured"][GOOD]["quality"] >= 9.0
    assert second["batchIds"] == [batches[-1].id]
    assert batches[-1].config["final"] is True
    assert batches[-1].decisions[0]["kind"] == "started"
    # Every step's batch kept its forecast (its model over its sources), not only the first.
    assert all(b.forecast and b.forecast["model"] == b.model_name for b in batches), [
        b.forecast for b in batches]


async def test_conservative_uses_the_cheapest_lower_bound_that_meets_the_bar(
        engine_gql: GraphQLClient, processing: Any, provider: FakeProvider,
        small_chunks: int, one_source_sample: int) -> None:
    gql = engine_gql
    await prepare(gql, provider, relevance=1.0, threshold=("PODCAST", 9.0))
    ids = await sources(gql, "PODCAST", ["C1", "C2", "C3"])
    opened = await process(gql, ids, "CONSERVATIVE")
    # Every candidate, the reference included, is measured on the sample first.
    assert sorted(b["model"] for b in opened) == sorted(CANDIDATES)
    batches = await plan_batches(processing, opened[0]["groupId"])
    [decision] = decided(batches)
    lows = {m: v["low"] for m, v in decision["measured"].items()}
    qualifying = [m for m in (HALF, GOOD, INVENTOR, REFERENCE) if lows[m] >= 9.0]
    assert qualifying, lows
    assert (decision["action"], decision["chosen"]) == ("use", qualifying[0])
    assert qualifying[0] == GOOD
    assert any("lower bound" in note for note in decision["notes"])
    assert steps(batches)[-1] == (1, GOOD, 2)


async def test_conservative_falls_back_to_the_reference_when_no_lower_bound_is_enough(
        engine_gql: GraphQLClient, processing: Any, provider: FakeProvider,
        small_chunks: int, one_source_sample: int) -> None:
    gql = engine_gql
    await prepare(gql, provider, relevance=1.0, threshold=("PODCAST", 9.6))
    ids = await sources(gql, "PODCAST", ["F1", "F2"])
    opened = await process(gql, ids, "CONSERVATIVE")
    batches = await plan_batches(processing, opened[0]["groupId"])
    [decision] = decided(batches)
    assert all(v["low"] < 9.6 for v in decision["measured"].values())
    assert (decision["action"], decision["chosen"]) == ("fallback_reference", REFERENCE)
    assert steps(batches)[-1] == (1, REFERENCE, 1)


async def test_aggressive_tests_without_history_then_reuses_it_without_testing(
        engine_gql: GraphQLClient, processing: Any, provider: FakeProvider,
        small_chunks: int, one_source_sample: int) -> None:
    gql = engine_gql
    await prepare(gql, provider, relevance=1.0, threshold=("ARTICLE", 9.0))
    # Given: no history for articles, so every candidate is tested on the sample
    first = await process(gql, await sources(gql, "ARTICLE", ["A1", "A2"]), "AGGRESSIVE")
    assert sorted(b["model"] for b in first) == sorted(CANDIDATES)
    assert "no history" in first[0]["decisions"][0]["notes"][0]
    batches = await plan_batches(processing, first[0]["groupId"])
    [decision] = decided(batches)
    assert (decision["action"], decision["chosen"]) == ("use", GOOD)
    # When: more articles arrive
    again = await process(gql, await sources(gql, "ARTICLE", ["A3", "A4", "A5"]),
                          "AGGRESSIVE")
    # Then: history decides at once; one batch over every new source, nothing tested
    assert [b["model"] for b in again] == [GOOD]
    opening = again[0]["decisions"][0]
    assert (opening["action"], opening["final"], len(opening["sourceIds"])) == ("use", True, 3)
    assert any("without testing" in note for note in opening["notes"])
    later = await plan_batches(processing, again[0]["groupId"])
    assert [b.model_name for b in later] == [GOOD]


async def test_a_threshold_outside_zero_to_ten_is_refused_with_its_field(
        engine_gql: GraphQLClient) -> None:
    body = await engine_gql(THRESHOLDS, {"input": [
        {"sourceType": "INTERVIEW", "threshold": 11}, {"sourceType": "INTERVIEW",
                                                       "threshold": 5}]})
    payload = body["data"]["setQualityThresholds"]
    assert payload["__typename"] == "ValidationError"
    assert {e["field"] for e in payload["fieldErrors"]} == {"input.0.threshold",
                                                            "input.1.sourceType"}


async def test_thresholds_default_to_the_design_and_null_restores_a_default(
        engine_gql: GraphQLClient) -> None:
    gql = engine_gql
    changed = await gql(THRESHOLDS, {"input": [{"sourceType": "PODCAST", "threshold": 6.5}]})
    table = {t["sourceType"]: t for t in
             changed["data"]["setQualityThresholds"]["thresholds"]}
    assert (table["PODCAST"]["threshold"], table["PODCAST"]["isDefault"]) == (6.5, False)
    assert [table[k]["threshold"] for k in ("INTERVIEW", "ARTICLE", "SOCIAL_MEDIA", "BOOK")] \
        == [8.5, 7.0, 6.0, 7.0]
    restored = await gql(THRESHOLDS, {"input": [{"sourceType": "PODCAST", "threshold": None}]})
    table = {t["sourceType"]: t for t in
             restored["data"]["setQualityThresholds"]["thresholds"]}
    assert (table["PODCAST"]["threshold"], table["PODCAST"]["isDefault"]) == (7.5, True)


CANCEL = """mutation($id: ID!) { cancelBatch(input: {batchId: $id}) { __typename } }"""


async def test_cancelling_a_step_stops_the_plan_and_says_so(
        engine_gql: GraphQLClient, processing: Any, provider: FakeProvider,
        small_chunks: int, one_source_sample: int) -> None:
    gql = engine_gql
    await prepare(gql, provider, relevance=0.0, threshold=("INTERVIEW", 9.0))
    provider.set_default(lambda request: replace(behaviour(request), latency=1.0))
    opened = await process(gql, await sources(gql, "INTERVIEW", ["X1", "X2"]), "PROGRESSIVE")
    # When
    cancelled = await gql(CANCEL, {"id": opened[0]["id"]})
    assert cancelled["data"]["cancelBatch"]["__typename"] == "CancelBatchPayload"
    # Then: no further step; the decision says why
    batches = await plan_batches(processing, opened[0]["groupId"])
    assert [b.model_name for b in batches] == [HALF]
    [decision] = decided(batches)
    assert (decision["action"], decision["final"], decision["batchIds"]) == ("stop", True, [])
    assert "cancelled" in decision["notes"][0]
