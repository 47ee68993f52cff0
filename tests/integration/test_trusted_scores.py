"""Trust in the scores, end to end through LiteLLM, the fake provider and the workers: four models
on one long interview (an expensive reference, a cheap twin returning exactly its fragments, one
that finds half, one that invents a quote for every real one).

- The twin's score and interval equal the reference's exactly; only the reference is marked.
- Paired differences against the reference: the twin's interval contains 0 and is not
  significant; half's is significant over 20 or more chunks.
- After the team's own reference fragments are imported, the order is
  reference = twin > half > inventor.
- Re-running a model outside the reference moves no other run's score.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.fake_provider import (
    FakeProvider,
    RecordedRequest,
    Scripted,
    answer_json,
    echo_responder,
    fragment_for,
    grounded_fragments,
    half_responder,
    sentences_of,
)
from tests.support.graphql import GraphQLClient
from tests.support.processing import interview, register_fake_model
from tests.support.scenarios import CREATE_SOURCE, EQUAL, HALF, INVENTOR, PRICES, REFERENCE
from tests.support.waiting import wait_for

TWIN = EQUAL
MODELS = [REFERENCE, TWIN, HALF, INVENTOR]

START = """mutation($input: StartMultiModelProcessingInput!) {
  startMultiModelProcessing(input: $input) { __typename
    ... on StartMultiModelProcessingPayload { batches { id model } }
    ... on ValidationError { message } ... on Conflict { message } } }"""
COMPARISON = """query($id: ID!) { comparison(sourceId: $id) {
  pendingRuns reference { kind model runId }
  entries { model runId qualityScore qualityLow qualityHigh provisional isReference f1
            spanMetrics { wordPrecision wordRecall wordF1 predictedWords referenceWords
                          overlapWords spanMatch { iou tp fp fn precision recall f1 } }
            reference { kind model runId }
            vsReference { referenceModel referenceRunId referenceQuality qualityDelta low high
                          qualityDeltaPct lowPct highPct significant verdict margin chunks
                          sources chunksNeeded summary } } } }"""
IMPORT = """mutation($input: ImportReferenceFragmentsInput!) {
  importReferenceFragments(input: $input) { __typename
    ... on ImportReferenceFragmentsPayload { created groundedCount ungroundedCount }
    ... on ValidationError { fieldErrors { field message } } } }"""
REPORT = """query($id: ID!) { optimizationReport(sourceId: $id) { recommendation
  sweetSpot { model qualified reason candidates { model vsReference { verdict chunks } } }
  savings { originalModel optimizedModel qualityChangePct qualityChange
            vsReference { qualityDeltaPct lowPct highPct significant } } } }"""
CALIBRATION = """{ qualityCalibration(sourceType: INTERVIEW) { n sources meanAbsoluteError
  meanError spearman summary byKind { kind n } } }"""
SWEET = """query($id: ID!, $t: Float) { sweetSpot(sourceId: $id, qualityThreshold: $t) {
  model qualified reason } }"""


def behaviour(request: RecordedRequest) -> Scripted:
    """Reference and twin send the same fragments; half every other; the inventor one quote
    of its own for every real one."""
    if request.model == HALF:
        return half_responder(request)
    if request.model == INVENTOR:
        real = grounded_fragments(request)
        invented = [fragment_for(f"I once sailed to island {i} {q['quote'][:12]!r} on a kite.", i)
                    for i, q in enumerate(real)]
        return Scripted(content=answer_json([x for pair in zip(real, invented, strict=True)
                                             for x in pair]))
    return echo_responder(request)


async def _comparison(gql: GraphQLClient, source_id: str, *, kind: str | None = None,
                      runs: int = len(MODELS)) -> dict[str, Any]:
    async def measured() -> dict[str, Any] | None:
        found = (await gql(COMPARISON, {"id": source_id}))["data"]["comparison"]
        done = found["pendingRuns"] == 0 and len(found["entries"]) >= runs
        if kind is not None and found["reference"]["kind"] != kind:
            return None
        return found if done else None

    return await wait_for(measured, timeout=180, interval=0.3)


def _latest(comparison: dict[str, Any]) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for entry in sorted(comparison["entries"], key=lambda e: e["runId"]):
        latest[entry["model"]] = entry
    return latest


@pytest.fixture
async def scenario(engine_gql: GraphQLClient, provider: FakeProvider) -> Any:
    gql = engine_gql
    provider.set_default(behaviour)
    for name in MODELS:
        await register_fake_model(gql, provider, name=name, litellm_model=f"openai/{name}",
                                  prices=PRICES[name])
    content = interview("TRUST", 240)
    created = (await gql(CREATE_SOURCE, {"input": {
        "sourceCode": "TRUST_1", "title": "A long interview", "sourceType": "INTERVIEW",
        "content": content, "language": "en"}}))["data"]["createSource"]
    source_id = created["source"]["id"]
    started = await gql(START, {"input": {"sourceId": source_id, "models": MODELS}})
    assert started["data"]["startMultiModelProcessing"]["__typename"] == \
        "StartMultiModelProcessingPayload", started
    comparison = await _comparison(gql, source_id)
    return gql, source_id, content, comparison


async def test_the_twin_scores_exactly_as_the_reference_and_differences_are_paired(
        scenario: Any) -> None:
    _, _, _, comparison = scenario
    e = _latest(comparison)
    header = comparison["reference"]
    assert (header["kind"], header["model"]) == ("REFERENCE_MODEL", REFERENCE)
    assert header["runId"] == e[REFERENCE]["runId"]
    # One reference, named once, for every entry; only the reference run is marked.
    assert all(entry["reference"] == header for entry in e.values())
    assert [m for m, entry in e.items() if entry["isReference"]] == [REFERENCE]
    # The twin: same score, same interval, to the last digit.
    twin, ref = e[TWIN], e[REFERENCE]
    assert (twin["qualityScore"], twin["qualityLow"], twin["qualityHigh"]) == \
        (ref["qualityScore"], ref["qualityLow"], ref["qualityHigh"])
    # Paired against the reference run: the twin's difference is nil and not significant.
    versus = twin["vsReference"]
    assert versus["referenceRunId"] == ref["runId"]
    assert versus["low"] <= 0 <= versus["high"]
    assert (versus["significant"], versus["verdict"]) == (False, "NOT_WORSE")
    assert versus["chunks"] >= 20
    # Half is significantly worse, over 20 or more chunks; so is the inventor.
    half = e[HALF]["vsReference"]
    assert half["chunks"] >= 20
    assert half["significant"] is True and half["high"] < 0 and half["verdict"] == "WORSE"
    assert half["qualityDelta"] == pytest.approx(
        e[HALF]["qualityScore"] - ref["qualityScore"], abs=1e-9)
    assert half["qualityDeltaPct"] == round(half["qualityDelta"] / ref["qualityScore"] * 100, 1)
    assert half["summary"].startswith(f"worse than {REFERENCE}: \u2212")
    assert "(90% CI \u2212" in half["summary"]
    assert e[INVENTOR]["vsReference"]["verdict"] == "WORSE"
    # The paired interval is narrower than the two runs' own intervals side by side.
    assert half["high"] - half["low"] < (e[HALF]["qualityHigh"] - e[HALF]["qualityLow"]) + \
        (ref["qualityHigh"] - ref["qualityLow"])


async def test_with_imported_reference_fragments_the_order_is_reference_twin_half_inventor(
        scenario: Any) -> None:
    gql, source_id, content, _ = scenario
    before = {m: x["qualityScore"] for m, x in _latest(scenario[3]).items()}
    # Given: the team's hand-made reference, one fragment per sentence of the interview, in
    # MMOS v5 YAML (straight quotes, as such files have them)
    documents = []
    for i, sentence in enumerate(sentences_of(content)):
        quoted = sentence.replace("\\", "\\\\").replace('"', '\\"')
        documents.append(f'id: "FRAG_TRUST_{i:03d}"\ncategory: "Cognitive"\n'
                         f'type: "direct_quote"\nrelevance: 7\ncontent: "{quoted}"\n')
    imported = (await gql(IMPORT, {"input": {
        "sourceId": source_id, "format": "MMOS_YAML", "data": "---\n".join(documents),
        "reviewer": "ana", "fileName": "trust.yaml"}}))["data"]["importReferenceFragments"]
    assert imported["__typename"] == "ImportReferenceFragmentsPayload", imported
    assert imported["groundedCount"] == len(documents)
    # When: the source is measured again against it
    comparison = await _comparison(gql, source_id, kind="VERIFIED")
    e = _latest(comparison)
    score = {m: entry["qualityScore"] for m, entry in e.items()}
    # Then
    assert score[REFERENCE] == score[TWIN] > score[HALF] > score[INVENTOR], score
    assert not any(entry["isReference"] for entry in e.values())  # people are the reference
    assert not e[TWIN]["provisional"] and not e[REFERENCE]["provisional"]
    assert e[TWIN]["f1"] == 1.0
    # The paired differences still compare with the reference model's run.
    assert e[HALF]["vsReference"]["referenceModel"] == REFERENCE
    assert e[HALF]["vsReference"]["verdict"] == "WORSE"
    # Calibration: how far the scores measured before the human reference were from after.
    calibration = (await gql(CALIBRATION))["data"]["qualityCalibration"]
    errors = [before[m] - score[m] for m in MODELS]
    assert (calibration["n"], calibration["sources"]) == (4, 1)
    assert calibration["meanAbsoluteError"] == pytest.approx(
        sum(abs(x) for x in errors) / 4, abs=1e-9)
    assert calibration["meanError"] == pytest.approx(sum(errors) / 4, abs=1e-9)
    assert calibration["byKind"] == [{"kind": "reference_model", "n": 4}]
    assert "4 runs" in calibration["summary"]


async def test_span_metrics_users_recognise_sit_beside_the_score(scenario: Any) -> None:
    _, _, _, comparison = scenario
    e = _latest(comparison)
    twin, half, inventor = (e[m]["spanMetrics"] for m in (TWIN, HALF, INVENTOR))
    assert (twin["wordPrecision"], twin["wordRecall"], twin["wordF1"]) == (1.0, 1.0, 1.0)
    assert [r["iou"] for r in twin["spanMatch"]] == [0.3, 0.5, 0.7]
    assert all(r["f1"] == 1.0 for r in twin["spanMatch"])
    # Half finds every other sentence: word precision 1, recall about a half.
    assert half["wordPrecision"] == 1.0
    assert 0.4 < half["wordRecall"] < 0.6
    assert half["overlapWords"] == half["predictedWords"]
    assert all(r["precision"] == 1.0 and r["fn"] > 0 for r in half["spanMatch"])
    # The inventor's invented quotes have no words in the source but are false positives.
    assert inventor["wordPrecision"] == 1.0
    assert all(r["fp"] >= r["tp"] for r in inventor["spanMatch"])
    assert e[HALF]["f1"] == next(r["f1"] for r in half["spanMatch"] if r["iou"] == 0.5)


async def test_reports_state_the_quality_loss_with_its_interval(scenario: Any) -> None:
    gql, source_id, _, comparison = scenario
    e = _latest(comparison)
    threshold = e[HALF]["qualityScore"]
    spot = (await gql(SWEET, {"id": source_id, "t": threshold}))["data"]["sweetSpot"]
    assert (spot["model"], spot["qualified"]) == (HALF, True)
    half = e[HALF]["vsReference"]
    assert f"; worse than {REFERENCE}: \u2212{abs(half['qualityDeltaPct']):.1f}% (90% CI " \
        in spot["reason"]
    # At the reference's own bar the twin qualifies, and the claim is "not worse".
    spot = (await gql(SWEET, {"id": source_id, "t": e[REFERENCE]["qualityScore"]}))[
        "data"]["sweetSpot"]
    assert spot["model"] == TWIN
    assert f"not worse than {REFERENCE} by more than 0.2 points" in spot["reason"]
    report = (await gql(REPORT, {"id": source_id}))["data"]["optimizationReport"]
    savings = report["savings"]
    assert (savings["originalModel"], savings["optimizedModel"]) == (REFERENCE, TWIN)
    assert savings["qualityChangePct"] == 0.0
    assert savings["qualityChange"] == "+0.0% (90% CI +0.0%..+0.0%)"
    assert savings["vsReference"]["significant"] is False
    assert "(90% CI" in report["recommendation"]


async def test_rerunning_a_model_outside_the_reference_moves_no_other_score(
        scenario: Any) -> None:
    gql, source_id, _, comparison = scenario
    before = {m: (x["qualityScore"], x["qualityLow"], x["qualityHigh"])
              for m, x in _latest(comparison).items()}
    # When: the inventor, outside the reference, runs again
    started = await gql(START, {"input": {"sourceId": source_id, "models": [INVENTOR]}})
    assert started["data"]["startMultiModelProcessing"]["__typename"] == \
        "StartMultiModelProcessingPayload", started
    after = _latest(await _comparison(gql, source_id, runs=len(MODELS) + 1))
    # Then
    for model in (REFERENCE, TWIN, HALF):
        assert (after[model]["qualityScore"], after[model]["qualityLow"],
                after[model]["qualityHigh"]) == before[model]
