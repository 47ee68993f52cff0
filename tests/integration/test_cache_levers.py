"""Cached-token usage through the pipeline: each call's ledger row and the run carry the cache
tokens and the lever split, exact to 8 decimals; the catalog shows the effective prices."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

from tests.support.fake_provider import FakeProvider, RecordedRequest, Scripted, echo_responder
from tests.support.graphql import GraphQLClient
from tests.support.processing import (
    create_source,
    interview,
    pk,
    register_fake_model,
    rows,
    start_one_batch,
    wait_batch,
)

D = Decimal
RUN = """query($id: ID!) { batch(id: $id) { runs { costUsd inputTokens cachedInputTokens
  cacheWriteTokens listCostUsd cacheSavedUsd batchSavedUsd llmCalls } } }"""
MODELS = """{ models { name inputCostPerMillion cacheReadCostPerMillion cacheWriteCostPerMillion
  batchInputCostPerMillion batchOutputCostPerMillion batchDiscount } }"""
UPDATE = """mutation($input: UpdateModelInput!) { updateModel(input: $input) {
  __typename ... on ValidationError { message fieldErrors { path message } } } }"""


def _cached(request: RecordedRequest) -> Scripted:
    return dataclasses.replace(echo_responder(request), prompt_tokens=2000,
                               completion_tokens=300, cached_tokens=1792)


async def test_cached_usage_is_in_the_ledger_and_the_run_to_the_last_decimal(
        engine_gql: GraphQLClient, processing: Any, provider: FakeProvider,
        small_chunks: int) -> None:
    gql = engine_gql
    await register_fake_model(gql, provider)  # gpt-4o-mini's bundled prices, cache read 0.075
    source_id = await create_source(gql, "CACHE_LEVERS", interview("CACHE_LEVERS", 24))
    provider.set_default(_cached)
    provider.script("gpt-4o-mini", Scripted(fault="429", retry_after="0"))

    batch_id = await start_one_batch(gql, source_id)
    await wait_batch(gql, batch_id)

    calls = await rows(processing, "SELECT status, actual_usd, input_tokens, cached_input_tokens,"
                       " cache_write_tokens, list_cost_usd, cache_saved_usd, batch_saved_usd"
                       " FROM budget_ledger WHERE batch_id = :b ORDER BY id", b=pk(batch_id))
    settled = [c for c in calls if c.status == "settled"]
    assert settled and len(calls) == len(settled) + 1  # the 429 was released, free
    for call in settled:
        # 208 × 0.15 + 1792 × 0.075 + 300 × 0.60 per million; list 2000 × 0.15 + 180
        assert (call.actual_usd, call.list_cost_usd, call.cache_saved_usd,
                call.batch_saved_usd) == (D("0.00034560"), D("0.00048000"), D("0.00013440"), 0)
        assert (call.input_tokens, call.cached_input_tokens, call.cache_write_tokens) == (
            2000, 1792, 0)
    run = (await gql(RUN, {"id": batch_id}))["data"]["batch"]["runs"][0]
    n = len(settled)
    assert D(run["costUsd"]) == D("0.0003456") * n
    assert D(run["listCostUsd"]) == D("0.00048") * n
    assert D(run["cacheSavedUsd"]) == D("0.0001344") * n
    assert D(run["batchSavedUsd"]) == 0
    assert (run["inputTokens"], run["cachedInputTokens"], run["cacheWriteTokens"]) == (
        2000 * n, 1792 * n, 0)
    assert D(run["costUsd"]) == (D(run["listCostUsd"]) - D(run["cacheSavedUsd"])
                                 - D(run["batchSavedUsd"]))


async def test_models_show_effective_cache_and_batch_prices_and_validate_overrides(
        engine_gql: GraphQLClient, provider: FakeProvider) -> None:
    gql = engine_gql
    await register_fake_model(gql, provider)
    models = {m["name"]: m for m in (await gql(MODELS))["data"]["models"]}
    mini = models["fake-mini"] if "fake-mini" in models else next(
        m for name, m in models.items() if name.startswith("fake"))
    assert (D(mini["cacheReadCostPerMillion"]), D(mini["cacheWriteCostPerMillion"]),
            D(mini["batchInputCostPerMillion"]), D(mini["batchOutputCostPerMillion"]),
            D(mini["batchDiscount"])) == (D("0.075"), D("0.15"), D("0.075"), D("0.3"),
                                          D("0.5"))
    haiku = models["claude-haiku-4-5"]
    assert (D(haiku["cacheReadCostPerMillion"]), D(haiku["cacheWriteCostPerMillion"]),
            D(haiku["batchInputCostPerMillion"])) == (D("0.1"), D("1.25"), D("0.5"))

    name = mini["name"]
    bad = (await gql(UPDATE, {"input": {"name": name, "batchDiscount": "1",
                                        "cacheReadCostPerMillion": "-1"}}))["data"]
    assert bad["updateModel"]["__typename"] == "ValidationError"
    paths = {tuple(f["path"]) for f in bad["updateModel"]["fieldErrors"]}
    assert paths == {("input", "batchDiscount"), ("input", "cacheReadCostPerMillion")}
    ok = (await gql(UPDATE, {"input": {"name": name, "batchDiscount": "0.25",
                                       "cacheReadCostPerMillion": "0.05"}}))["data"]
    assert ok["updateModel"]["__typename"] == "UpdateModelPayload"
    models = {m["name"]: m for m in (await gql(MODELS))["data"]["models"]}
    assert (D(models[name]["cacheReadCostPerMillion"]), D(models[name]["batchDiscount"]),
            D(models[name]["batchInputCostPerMillion"])) == (D("0.05"), D("0.25"),
                                                              D("0.1125"))
