"""The forecast against the fake provider (issue 13's acceptance): over a mixed corpus, the
forecast cost is within ±10% of the actual cost, and the worst case is never below it;
`comparison` shows the forecast each batch kept against the run's actual cost and time;
estimateProcessing's refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.support.fake_provider import FakeProvider
from tests.support.graphql import GraphQLClient
from tests.support.processing import (
    CREATE_SOURCE,
    START,
    interview,
    register_fake_model,
    wait_batch,
)
from tests.support.serve import INHERITED_SETTINGS
from tests.support.waiting import wait_for

D = Decimal
ROOT = Path(__file__).resolve().parents[2]
MODELS = ("fc-mini", "fc-large")

ESTIMATE = """query($input: EstimateProcessingInput!) { estimateProcessing(input: $input) {
  __typename
  ... on ProcessingEstimate { mode strategy strategyRule expectedCostUsd worstCostUsd
    expectedSeconds workers workersAssumed budgetRemainingUsd budgetCoversWorstCase
    models { model sources sampleSources chunks inputTokens expectedOutputTokens
      worstOutputTokens outputRatio outputRatioBasis expectedCostUsd worstCostUsd
      expectedSeconds boundBy latencyMsPerCall latencyBasis parallelCalls
      budgetCoversWorstCase } }
  ... on ValidationError { message fieldErrors { path message } }
  ... on NotFound { message } } }"""

COMPARISON = """query($id: ID!) { comparison(sourceId: $id) { entries { model runId costUsd
  forecast { expectedCostUsd worstCostUsd actualCostUsd costError expectedSeconds
             actualSeconds } } } }"""


async def _source(gql: GraphQLClient, code: str, source_type: str, content: str) -> str:
    body = await gql(CREATE_SOURCE, {"input": {
        "sourceCode": code, "title": code, "sourceType": source_type, "content": content,
        "language": "en"}})
    payload = body["data"]["createSource"]
    assert payload["__typename"] == "CreateSourcePayload", payload
    return str(payload["source"]["id"])


async def _process(gql: GraphQLClient, source_ids: list[str]) -> dict[str, Decimal]:
    """Each source through both models; what each model's batches cost in all."""
    batches = []
    for source_id in source_ids:
        payload = (await gql(START, {"input": {"sourceId": source_id,
                                               "models": list(MODELS)}}))["data"][
            "startMultiModelProcessing"]
        assert payload["__typename"] == "StartMultiModelProcessingPayload", payload
        batches += [(b["id"], b["model"]) for b in payload["batches"]]
    spent = {model: D(0) for model in MODELS}
    for batch_id, model in batches:
        state = await wait_batch(gql, batch_id, within=120)
        assert state["status"] == "COMPLETED", state
        spent[model] += D(state["costUsd"])
    return spent


async def _register(gql: GraphQLClient, provider: FakeProvider) -> None:
    await register_fake_model(gql, provider, name="fc-mini", litellm_model="openai/gpt-4o-mini",
                              prices=("0.15", "0.60"))
    await register_fake_model(gql, provider, name="fc-large", litellm_model="openai/gpt-4o",
                              prices=("2.50", "10.00"))


# A mixed corpus: types and lengths differ (the `small_chunks` fixture makes chunks of about
# 300 tokens, so the long sources span many chunks).
HISTORY = [("FH_INT", "INTERVIEW", 30), ("FH_ART", "ARTICLE", 12), ("FH_POD", "PODCAST", 45)]
CORPUS = [("FC_INT_LONG", "INTERVIEW", 80), ("FC_INT_SHORT", "INTERVIEW", 6),
          ("FC_ART", "ARTICLE", 35), ("FC_POD", "PODCAST", 18),
          ("FC_DOC", "DOCUMENT", 25)]  # a type with no history: the model's own ratio


async def test_forecast_cost_is_within_ten_percent_and_the_worst_case_holds(
        engine_gql: GraphQLClient, processing: Any, provider: FakeProvider,
        small_chunks: int) -> None:
    gql = engine_gql
    await _register(gql, provider)
    # Given: history from a first corpus, so the expected output is learned
    await _process(gql, [await _source(gql, code, kind, interview(code, n))
                         for code, kind, n in HISTORY])
    corpus = [await _source(gql, code, kind, interview(code, n)) for code, kind, n in CORPUS]

    # When: the corpus is forecast, then processed
    body = await gql(ESTIMATE, {"input": {"sourceIds": corpus, "models": list(MODELS)}})
    estimate = body["data"]["estimateProcessing"]
    assert estimate["__typename"] == "ProcessingEstimate", estimate
    actual = await _process(gql, corpus)

    # Then: per model and overall, expected within ±10% of actual, worst ≥ actual
    checks = []
    for source_id in corpus:
        async def measured(source_id: str = source_id) -> list[dict[str, Any]] | None:
            entries = (await gql(COMPARISON, {"id": source_id}))["data"]["comparison"][
                "entries"]
            return entries if len(entries) == len(MODELS) else None

        checks += [entry["forecast"] for entry in await wait_for(measured, timeout=60,
                                                                  interval=0.1)]
    figures = []
    for item in estimate["models"]:
        expected, worst, spent = (D(item["expectedCostUsd"]), D(item["worstCostUsd"]),
                                  actual[item["model"]])
        error = (expected - spent) / spent
        figures.append(f"{item['model']}: expected {expected} worst {worst} actual {spent} "
                       f"error {error:+.2%} ratio {item['outputRatio']:.3f} "
                       f"({item['outputRatioBasis']}) chunks {item['chunks']}")
        assert abs(error) <= D("0.10"), figures
        assert worst >= spent, figures
        assert item["latencyBasis"] == "history" and item["sources"] == len(CORPUS)
    total = sum(actual.values(), D(0))
    assert abs(D(estimate["expectedCostUsd"]) - total) / total <= D("0.10")
    assert D(estimate["worstCostUsd"]) >= total
    print("\n" + "\n".join(figures))
    print("per-run cost errors:", sorted(c["costError"] for c in checks if c))
    # comparison: each run's forecast from its batch against its actual cost and time
    assert len(checks) == len(corpus) * len(MODELS)
    for check in checks:
        assert check is not None
        assert D(check["actualCostUsd"]) <= D(check["worstCostUsd"])
        assert check["costError"] is not None and abs(check["costError"]) <= 0.25
        assert check["expectedSeconds"] is not None and check["actualSeconds"] is not None


async def test_estimate_refuses_bad_requests_with_field_paths(
        engine_gql: GraphQLClient, provider: FakeProvider) -> None:
    gql = engine_gql
    await _register(gql, provider)
    source = await _source(gql, "FC_ONE", "INTERVIEW", interview("FC_ONE", 5))

    async def refused(**values: Any) -> dict[str, Any]:
        body = await gql(ESTIMATE, {"input": {"sourceIds": [source], "models": ["fc-mini"],
                                              **values}})
        return dict(body["data"]["estimateProcessing"])

    unknown = await refused(models=["fc-mini", "nope"])
    assert unknown["__typename"] == "ValidationError"
    assert [e["path"] for e in unknown["fieldErrors"]] == [["input", "models", "1"]]
    empty = await refused(sourceIds=[], models=[])
    assert sorted(e["path"][-1] for e in empty["fieldErrors"]) == ["models", "sourceIds"]
    bad_id = await refused(sourceIds=["not-an-id"])
    assert bad_id["fieldErrors"][0]["path"] == ["input", "sourceIds", "0"]
    missing = await refused(sourceIds=[source, "99999"])
    assert missing["__typename"] == "NotFound"
    # Batch mode prices at the batch rates (gpt-4o-mini: half price)
    interactive = await refused()
    batch = await refused(mode="BATCH", strategy="CONSERVATIVE")
    assert batch["mode"] == "BATCH" and batch["strategy"] == "CONSERVATIVE"
    assert batch["strategyRule"]
    # (each rounded to 8 decimals)
    assert abs(D(batch["worstCostUsd"]) * 2 - D(interactive["worstCostUsd"])) <= D("2e-8")
    assert interactive["budgetCoversWorstCase"] is None and interactive["workers"] >= 1


def _mmos_estimate(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in INHERITED_SETTINGS}
    env.update(DATABASE_URL=database_url, MMOS_ENV="test", LITELLM_LOCAL_MODEL_COST_MAP="True")
    return subprocess.run([sys.executable, "-m", "api.cli", "estimate", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


async def test_mmos_estimate_prints_the_forecast_table(
        engine_gql: GraphQLClient, provider: FakeProvider, database_url: str) -> None:
    gql = engine_gql
    await _register(gql, provider)
    await _source(gql, "FC_CLI_A", "INTERVIEW", interview("FC_CLI_A", 20))
    await _source(gql, "FC_CLI_B", "ARTICLE", interview("FC_CLI_B", 8))

    shown = _mmos_estimate(database_url, "FC_CLI_A", "FC_CLI_B", "--models",
                           "fc-mini,fc-large", "--mode", "batch", "--strategy", "progressive")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split()[:3] == ["model", "chunks", "input"]
    assert [line.split()[0] for line in lines[1:4]] == ["fc-mini", "fc-large", "total"]
    assert "mode batch" in shown.stdout and "strategy progressive" in shown.stdout
    assert "$" in lines[1]

    refused = _mmos_estimate(database_url, "FC_NOPE", "--models", "fc-mini")
    assert refused.returncode == 2 and "FC_NOPE" in refused.stderr
    unknown = _mmos_estimate(database_url, "FC_CLI_A", "--models", "nope")
    assert unknown.returncode == 2 and "models.0" in unknown.stderr
