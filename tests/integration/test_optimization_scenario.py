"""Measured quality end to end: four priced models behind the fake provider, one behaving like
each kind of model a team meets. Scores rank them as they behave, cost counts grounded yield,
the sweet spot moves with the threshold exactly as defined, and the savings report is printed
from the measured runs.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import pytest

from tests.support.fake_provider import FakeProvider
from tests.support.graphql import GraphQLClient
from tests.support.processing import interview, register_fake_model
from tests.support.scenarios import (
    CREATE_SOURCE,
    EQUAL,
    HALF,
    INVENTOR,
    MODELS,
    PRICES,
    REFERENCE,
    START,
    behaviour,
)
from tests.support.waiting import wait_for

COMPARISON = """query($id: ID!) { comparison(sourceId: $id) {
  sourceType pendingRuns reference { kind model }
  entries { model runId qualityScore qualityLow qualityHigh provisional groundedRate miuRate
            precision recall f1 coverage coverageRatio meanRelevance fragmentCount
            groundedFragmentCount costUsd costPerFragment costPer1kChars latencyMs
            reference { kind model } } } }"""
SWEET_SPOT = """query($id: ID, $type: SourceType, $t: Float, $b: Decimal) {
  sweetSpot(sourceId: $id, sourceType: $type, qualityThreshold: $t, budgetPerFragment: $b) {
    model qualified reason savingsVsReference threshold budgetPerFragment referenceModel
    paretoFrontier { model quality costPerFragment } } }"""
SAVINGS = """{ savingsReport { table rows { sourceType originalModel optimizedModel qualified
  reason qualityChangePct costSavingPct samples interval { low high } } } }"""
REPORT = """query($id: ID!) { optimizationReport(sourceId: $id) { recommendation
  source { id } comparison { entries { model } } sweetSpot { model qualified }
  savings { originalModel optimizedModel costSavingPct } } }"""
SOURCE_FIELDS = """query($id: ID!) { source(id: $id) {
  comparison { entries { model qualityScore } }
  sweetSpot(qualityThreshold: 0) { model qualified } } }"""


async def register_models(gql: GraphQLClient, provider: FakeProvider) -> None:
    provider.set_default(behaviour)
    for name in MODELS:
        await register_fake_model(gql, provider, name=name, litellm_model=f"openai/{name}",
                                  prices=PRICES[name])


async def measured_source(gql: GraphQLClient, tag: str, source_type: str,
                          sentences: int = 48) -> tuple[str, str, dict[str, dict[str, Any]]]:
    """A source processed by the four models; returns its id, content and comparison entries."""
    created = (await gql(CREATE_SOURCE, {"input": {
        "sourceCode": f"SCN_{tag}", "title": f"Scenario {tag}", "sourceType": source_type,
        "content": interview(tag, sentences), "language": "en"}}))["data"]["createSource"]
    assert created["__typename"] == "CreateSourcePayload", created
    source_id, content = created["source"]["id"], created["source"]["content"]
    started = (await gql(START, {"input": {"sourceId": source_id, "models": MODELS}}))
    assert started["data"]["startMultiModelProcessing"]["__typename"] == \
        "StartMultiModelProcessingPayload", started

    async def measured() -> dict[str, Any] | None:
        found = (await gql(COMPARISON, {"id": source_id}))["data"]["comparison"]
        done = found["pendingRuns"] == 0 and len(found["entries"]) == len(MODELS)
        return found if done else None

    comparison = await wait_for(measured, timeout=120, interval=0.2)
    return source_id, content, {e["model"]: e | {"header": comparison["reference"]}
                                for e in comparison["entries"]}


async def sweet(gql: GraphQLClient, source_id: str, threshold: float,
                budget: str | None = None) -> dict[str, Any]:
    body = await gql(SWEET_SPOT, {"id": source_id, "t": threshold, "b": budget})
    return dict(body["data"]["sweetSpot"])


@pytest.fixture
async def scenario(engine_gql: GraphQLClient, provider: FakeProvider,
                   small_chunks: int) -> Any:
    await register_models(engine_gql, provider)
    source_id, content, entries = await measured_source(engine_gql, "INT", "INTERVIEW")
    return engine_gql, source_id, content, entries


async def test_scores_rank_the_models_as_they_behave(scenario: Any) -> None:
    _, _, _, e = scenario
    # Then: the reference model is the dearest one, and every run is measured against it
    assert e[EQUAL]["header"] == {"kind": "REFERENCE_MODEL", "model": REFERENCE}
    for model in MODELS:
        assert e[model]["reference"] == {"kind": "REFERENCE_MODEL", "model": REFERENCE}
    # Only the reference run itself is provisional: it agrees with itself by construction.
    assert {m for m, entry in e.items() if entry["provisional"]} == {REFERENCE}
    # Then: the equally good cheap model scores as the reference; inventing and missing cost
    score = {model: entry["qualityScore"] for model, entry in e.items()}
    assert score[EQUAL] == score[REFERENCE]
    assert score[EQUAL] > score[INVENTOR] > score[HALF]
    assert e[EQUAL]["f1"] == 1.0 and e[EQUAL]["coverageRatio"] == 1.0
    assert e[HALF]["recall"] < 0.6 and e[HALF]["precision"] == 1.0
    assert e[INVENTOR]["precision"] < 1.0 and e[INVENTOR]["recall"] == 1.0
    # Then: every score sits inside its 90% interval
    for entry in e.values():
        assert 0 <= entry["qualityLow"] <= entry["qualityScore"] <= entry["qualityHigh"] <= 10


async def test_invented_quotes_lower_the_grounded_rate_but_never_the_cost_per_fragment(
        scenario: Any) -> None:
    _, _, content, e = scenario
    inventor, equal = e[INVENTOR], e[EQUAL]
    assert equal["groundedRate"] == 1.0
    assert inventor["groundedFragmentCount"] < inventor["fragmentCount"]
    assert inventor["groundedRate"] == pytest.approx(
        inventor["groundedFragmentCount"] / inventor["fragmentCount"])
    for entry in e.values():
        cost = Decimal(entry["costUsd"])
        assert cost > 0
        per_fragment = Decimal(entry["costPerFragment"])
        # Counted on grounded fragments only (NUMERIC(18, 8) rounds the stored value).
        assert abs(per_fragment - cost / entry["groundedFragmentCount"]) <= Decimal("1e-8")
        assert abs(Decimal(entry["costPer1kChars"]) - cost * 1000 / len(content)) \
            <= Decimal("1e-8")
    # The invented fragments would have made the inventor look cheaper per fragment.
    assert Decimal(inventor["costPerFragment"]) > \
        Decimal(inventor["costUsd"]) / inventor["fragmentCount"]


async def test_the_sweet_spot_moves_with_the_threshold_exactly_as_defined(
        scenario: Any) -> None:
    gql, source_id, _, e = scenario
    score = {model: entry["qualityScore"] for model, entry in e.items()}
    cpf = {model: Decimal(entry["costPerFragment"]) for model, entry in e.items()}
    assert cpf[HALF] < cpf[INVENTOR] < cpf[EQUAL] < cpf[REFERENCE]

    def defined(threshold: float) -> str:
        """The definition: cheapest per grounded fragment among scores >= threshold."""
        return min((m for m in MODELS if score[m] >= threshold), key=lambda m: cpf[m])

    # Each score is a boundary: at it the model qualifies, a hair above it no longer does.
    cases = [(0.0, HALF), (score[HALF], HALF), (math.nextafter(score[HALF], 11), INVENTOR),
             (score[INVENTOR], INVENTOR), (math.nextafter(score[INVENTOR], 11), EQUAL),
             (score[EQUAL], EQUAL)]
    for threshold, expected in cases:
        result = await sweet(gql, source_id, threshold)
        assert defined(threshold) == expected
        assert (result["model"], result["qualified"]) == (expected, True), (threshold, result)
        assert result["threshold"] == threshold
        assert result["referenceModel"] == REFERENCE
        saving = (cpf[REFERENCE] - cpf[expected]) / cpf[REFERENCE] * 100
        assert abs(Decimal(result["savingsVsReference"]) - saving) <= Decimal("0.01")
    # The reference is dominated by the equally good, cheaper model.
    frontier = (await sweet(gql, source_id, 0.0))["paretoFrontier"]
    assert [c["model"] for c in frontier] == [HALF, INVENTOR, EQUAL]


async def test_an_impossible_threshold_is_not_qualified_and_says_why(scenario: Any) -> None:
    gql, source_id, _, e = scenario
    best = max(entry["qualityScore"] for entry in e.values())
    result = await sweet(gql, source_id, math.nextafter(best, 11))
    assert result["qualified"] is False
    assert result["model"] == EQUAL  # the best available: as good as the reference, cheaper
    assert "no model reaches quality" in result["reason"] and EQUAL in result["reason"]
    assert result["savingsVsReference"] is None


async def test_the_cost_limit_excludes_dearer_models_inclusively(scenario: Any) -> None:
    gql, source_id, _, e = scenario
    half_cpf = e[HALF]["costPerFragment"]
    at_limit = await sweet(gql, source_id, 0.0, budget=half_cpf)
    assert (at_limit["model"], at_limit["qualified"]) == (HALF, True)
    below = str(Decimal(half_cpf) - Decimal("0.00000001"))
    refused = await sweet(gql, source_id, 0.0, budget=below)
    assert refused["qualified"] is False
    assert "costs more than" in refused["reason"]
    assert Decimal(refused["budgetPerFragment"]) == Decimal(below)


async def test_bad_sweet_spot_arguments_are_errors_with_a_field(scenario: Any) -> None:
    gql, source_id, _, _ = scenario
    both = await gql(SWEET_SPOT, {"id": source_id, "type": "INTERVIEW"}, expect_errors=True)
    assert both["errors"][0]["extensions"]["field"] == "sourceId"
    high = await gql(SWEET_SPOT, {"id": source_id, "t": 10.5}, expect_errors=True)
    assert high["errors"][0]["extensions"]["field"] == "qualityThreshold"
    negative = await gql(SWEET_SPOT, {"id": source_id, "b": "-1"}, expect_errors=True)
    assert negative["errors"][0]["extensions"]["field"] == "budgetPerFragment"


async def test_the_report_and_source_fields_agree_with_the_comparison(scenario: Any) -> None:
    gql, source_id, _, e = scenario
    report = (await gql(REPORT, {"id": source_id}))["data"]["optimizationReport"]
    assert {x["model"] for x in report["comparison"]["entries"]} == set(MODELS)
    assert report["savings"]["originalModel"] == REFERENCE
    assert report["sweetSpot"]["model"] in report["recommendation"]
    fields = (await gql(SOURCE_FIELDS, {"id": source_id}))["data"]["source"]
    assert {x["model"]: x["qualityScore"] for x in fields["comparison"]["entries"]} == \
        {model: entry["qualityScore"] for model, entry in e.items()}
    assert fields["sweetSpot"] == {"model": HALF, "qualified": True}


async def test_savings_report_prints_the_original_table_from_measured_runs(
        scenario: Any) -> None:
    gql, _, _, _ = scenario
    # Given: an article measured by the same four models, next to the interview
    await measured_source(gql, "ART", "ARTICLE", sentences=36)
    # When
    report = (await gql(SAVINGS))["data"]["savingsReport"]
    print("\n" + report["table"])
    # Then: one row per source type, each the sweet spot of its type against the reference
    rows = {row["sourceType"]: row for row in report["rows"]}
    assert set(rows) == {"ARTICLE", "INTERVIEW"}
    for kind, row in rows.items():
        spot = (await gql(SWEET_SPOT, {"type": kind}))["data"]["sweetSpot"]
        assert row["originalModel"] == REFERENCE
        assert row["qualified"] == spot["qualified"]
        assert row["optimizedModel"] == (spot["model"] if spot["qualified"] else None)
        if row["qualified"]:
            assert Decimal(row["costSavingPct"]) > 0
            assert row["samples"] == 1
            assert row["interval"]["low"] <= row["interval"]["high"]
    lines = report["table"].splitlines()
    assert lines[0] == ("| Source Type | Original Model | Optimized Model | Quality Change "
                        "| Cost Saving | Samples | 90% Interval |")
    assert any(line.startswith(f"| Interview | {REFERENCE} |") for line in lines)
    assert any(line.startswith(f"| Article | {REFERENCE} |") for line in lines)
