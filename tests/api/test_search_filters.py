"""Fragment listings: every filter, ordering, per-source pages, coverage and summaries."""

from __future__ import annotations

from typing import Any

import pytest

from api.ids import to_global
from tests.support.graph_data import Seeded, seed_source

LIST = """
query($filter: FragmentFilter, $orderBy: FragmentOrder) {
  fragments(first: 100, filter: $filter, orderBy: $orderBy) {
    totalCount edges { node { content } } } }
"""


async def listed(gql: Any, flt: dict[str, Any] | None = None,
                 order: dict[str, Any] | None = None) -> list[str]:
    body = await gql(LIST, {"filter": flt, "orderBy": order})
    return [edge["node"]["content"] for edge in body["data"]["fragments"]["edges"]]


@pytest.fixture
async def two_sources(db: Any) -> tuple[Seeded, Seeded]:
    first = await seed_source(
        db, ["alpha", "beta", "gamma", "delta"],
        category=["biographical", "cognitive", "cognitive", "emotional"],
        fragment_type=["direct_quote", "pattern", "anecdote", "pattern"],
        relevance=[2, 5, 8, 10], confidence=[0.2, 0.5, 0.8, 1.0],
        grounding=["exact", "fuzzy", "ungrounded", "exact"],
        is_complete=[True, False, True, True], has_clean_boundaries=[True, True, False, True])
    second = await seed_source(db, ["epsilon"], model="rules-thorough", language="pt",
                               category="social", fragment_type="example", relevance=1,
                               confidence=0.1)
    return first, second


@pytest.mark.parametrize(("flt", "expected"), [
    ({"categories": ["COGNITIVE", "EMOTIONAL"]}, ["beta", "gamma", "delta"]),
    ({"fragmentTypes": ["PATTERN"]}, ["beta", "delta"]),
    ({"minRelevance": 5, "maxRelevance": 8}, ["beta", "gamma"]),
    ({"minConfidence": 0.5, "maxConfidence": 0.8}, ["beta", "gamma"]),
    ({"grounding": ["FUZZY", "UNGROUNDED"]}, ["beta", "gamma"]),
    ({"isComplete": False}, ["beta"]),
    ({"hasCleanBoundaries": False}, ["gamma"]),
    ({"model": "rules-thorough"}, ["epsilon"]),
    ({"categories": ["COGNITIVE"], "isComplete": True}, ["gamma"]),
])
async def test_each_filter_narrows_the_fragments(gql: Any, two_sources: Any,
                                                 flt: dict[str, Any],
                                                 expected: list[str]) -> None:
    assert sorted(await listed(gql, flt)) == sorted(expected)


async def test_source_and_batch_filters_take_global_or_numeric_ids(gql: Any,
                                                                   two_sources: Any) -> None:
    first, second = two_sources
    assert await listed(gql, {"sourceId": to_global("Source", second.source_id)}) == ["epsilon"]
    assert len(await listed(gql, {"batchId": str(first.batch_id)})) == 4
    assert await listed(gql, {"runId": to_global("Run", second.run_id)}) == ["epsilon"]


async def test_order_by_relevance_descending_breaks_ties_by_id(gql: Any,
                                                               two_sources: Any) -> None:
    assert await listed(gql, order={"field": "RELEVANCE", "direction": "DESC"}) == [
        "delta", "gamma", "beta", "alpha", "epsilon"]


@pytest.mark.parametrize(("flt", "message"), [
    ({"minConfidence": 1.5}, "filter.min_confidence: must be between 0 and 1"),
    ({"maxRelevance": 11}, "filter.max_relevance: must be between 1 and 10"),
    ({"sourceId": "U291cmNl"}, "filter.sourceId: is not a valid Source ID"),
    ({"tags": ["t"] * 51}, "filter.tags: may name at most 50"),
])
async def test_bad_filters_are_clear_errors(gql: Any, db: Any, flt: dict[str, Any],
                                            message: str) -> None:
    body = await gql(LIST, {"filter": flt}, expect_errors=True)
    assert body["errors"][0]["message"] == message


async def test_unknown_enum_value_in_a_filter_is_a_validation_error(gql: Any, db: Any) -> None:
    body = await gql(LIST, {"filter": {"categories": ["ASTROLOGY"]}}, expect_errors=True)
    assert "ASTROLOGY" in body["errors"][0]["message"]


SOURCE_FRAGMENTS = """
query($id: ID!, $first: Int, $after: String, $filter: FragmentFilter, $orderBy: FragmentOrder) {
  source(id: $id) { fragments(first: $first, after: $after, filter: $filter,
                              orderBy: $orderBy) {
    totalCount pageInfo { hasNextPage endCursor } edges { node { content } } } } }
"""


async def test_source_fragments_are_filtered_ordered_and_paged(gql: Any,
                                                               two_sources: Any) -> None:
    # Given
    first, _ = two_sources
    variables = {"id": to_global("Source", first.source_id), "first": 2,
                 "filter": {"minRelevance": 3}, "orderBy": {"field": "RELEVANCE",
                                                            "direction": "DESC"}}
    # When
    page = (await gql(SOURCE_FRAGMENTS, variables))["data"]["source"]["fragments"]
    rest = (await gql(SOURCE_FRAGMENTS, {**variables, "after": page["pageInfo"]["endCursor"]})
            )["data"]["source"]["fragments"]
    # Then
    assert [e["node"]["content"] for e in page["edges"]] == ["delta", "gamma"]
    assert page["totalCount"] == 3 and page["pageInfo"]["hasNextPage"]
    assert [e["node"]["content"] for e in rest["edges"]] == ["beta"]
    assert not rest["pageInfo"]["hasNextPage"]


async def test_source_fragments_refuse_an_oversized_page(gql: Any, two_sources: Any) -> None:
    first, _ = two_sources
    body = await gql(SOURCE_FRAGMENTS, {"id": str(first.source_id), "first": 101},
                     expect_errors=True)
    assert body["errors"][0]["message"] == "first: must be between 0 and 100 (got 101)"


COVERAGE = """
query($id: ID!) { fragmentCoverage(sourceId: $id) {
  fragmentCount groundedCount verifiedCount rejectedCount miuCount missingCategories
  source { sourceCode }
  categories { category fragmentCount groundedCount miuCount modelCount meanRelevance } } }
"""


async def test_fragment_coverage_counts_every_category(gql: Any, two_sources: Any) -> None:
    # Given
    first, _ = two_sources
    # When
    coverage = (await gql(COVERAGE, {"id": to_global("Source", first.source_id)})
                )["data"]["fragmentCoverage"]
    # Then
    assert coverage["fragmentCount"] == 4
    assert coverage["groundedCount"] == 3
    assert coverage["miuCount"] == 2
    assert coverage["verifiedCount"] == coverage["rejectedCount"] == 0
    by_category = {c["category"]: c for c in coverage["categories"]}
    assert len(by_category) == 9
    assert by_category["COGNITIVE"] == {"category": "COGNITIVE", "fragmentCount": 2,
                                        "groundedCount": 1, "miuCount": 0, "modelCount": 1,
                                        "meanRelevance": 6.5}
    assert by_category["SOCIAL"]["fragmentCount"] == 0
    assert by_category["SOCIAL"]["meanRelevance"] is None
    assert "SOCIAL" in coverage["missingCategories"]
    assert "COGNITIVE" not in coverage["missingCategories"]


async def test_fragment_coverage_of_an_unknown_source_is_null(gql: Any, db: Any) -> None:
    body = await gql(COVERAGE, {"id": to_global("Source", 123456)})
    assert body["data"]["fragmentCoverage"] is None


async def test_processing_summary_rolls_up_the_runs(gql: Any, two_sources: Any) -> None:
    # Given
    first, _ = two_sources
    # When
    summary = (await gql("""query($id: ID!) { source(id: $id) { processingSummary {
        runCount completedRuns failedRuns activeRuns modelCount fragmentCount
        groundedFragmentCount totalCostUsd inputTokens outputTokens } } }""",
                         {"id": to_global("Source", first.source_id)})
               )["data"]["source"]["processingSummary"]
    # Then
    assert summary == {"runCount": 1, "completedRuns": 1, "failedRuns": 0, "activeRuns": 0,
                       "modelCount": 1, "fragmentCount": 4, "groundedFragmentCount": 4,
                       "totalCostUsd": "0E-8", "inputTokens": 0, "outputTokens": 0}
