"""Budgets in process: the daily budget pauses and resumes runs, unpriced models are refused,
the per-fragment cost guard stops a run. Real HTTP to the fake provider through LiteLLM."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.support.fake_provider import FakeProvider
from tests.support.graphql import GraphQLClient
from tests.support.processing import (
    BUNDLED_MODEL,
    BUNDLED_PRICES,
    FAKE_MODEL,
    batch_state,
    budget,
    create_source,
    event_kinds,
    fragments_of,
    interview,
    pk,
    price_of_call,
    register_fake_model,
    rows,
    start,
    start_one_batch,
    wait_batch,
    with_usage,
)
from tests.support.waiting import wait_for

SET_DAILY = """mutation($amount: Decimal) { setDailyBudget(input: {amountUsd: $amount}) {
  __typename ... on SetBudgetPayload { resumedRuns
    budget { limitUsd spentUsd reservedUsd remainingUsd } } } }"""
SET_FRAGMENT_LIMIT = """mutation($amount: Decimal) {
  setFragmentCostLimit(input: {amountUsd: $amount}) { __typename
    ... on SetBudgetPayload { budget { fragmentCostLimitUsd } } } }"""

# Covers a handful of the ~$0.0005 calls, never all of them: the worst case of the next call
# (~$0.0026: its prompt plus 4096 output tokens) must fit before each call.
PARTIAL_BUDGET = Decimal("0.006")
SETTLED_STATES = {"WAITING_BUDGET", "COMPLETED"}


async def set_daily_budget(gql: GraphQLClient, amount: str | None) -> dict[str, Any]:
    payload = (await gql(SET_DAILY, {"amount": amount}))["data"]["setDailyBudget"]
    assert payload["__typename"] == "SetBudgetPayload", payload
    return dict(payload)


async def wait_for_budget_pause(gql: GraphQLClient, runtime: Any,
                                batch_ids: list[str]) -> list[dict[str, Any]]:
    """Wait until every run completed or waits for money that is not there.

    The sweeper resumes a paused run whose next call fits again; it is run here directly
    instead of waiting for its interval.
    """
    from workers.host import sweep_once

    last: list[str] = []

    async def quiet() -> list[dict[str, Any]] | None:
        runs = [run for batch_id in batch_ids
                for run in (await batch_state(gql, batch_id))["runs"]]
        last[:] = [f"{run['status']}: {run['errorMessage']}" for run in runs]
        return runs if {run["status"] for run in runs} <= SETTLED_STATES else None

    while True:
        try:
            runs: list[dict[str, Any]] = await wait_for(quiet, timeout=30, interval=0.1)
        except AssertionError:
            raise AssertionError(f"runs never settled: {last}") from None
        swept = await sweep_once(runtime)
        if not swept["resumed"]:
            return runs


async def test_a_partial_daily_budget_pauses_runs_and_raising_it_completes_them_once(
        engine_gql: GraphQLClient, processing: Any, provider: FakeProvider,
        small_chunks: int) -> None:
    gql = engine_gql
    # Given: three sources of several chunks, a daily budget that covers only part of them
    await register_fake_model(gql, provider)
    provider.set_default(with_usage(prompt_tokens=1234, completion_tokens=567, latency=0.2))
    await set_daily_budget(gql, str(PARTIAL_BUDGET))
    sources = [await create_source(gql, f"BUDGET_{i}", interview(f"BUDGET_{i}", 24))
               for i in range(3)]
    per_call = price_of_call(BUNDLED_PRICES, 1234, 567)
    # When
    batch_ids = [await start_one_batch(gql, source_id) for source_id in sources]
    paused = await wait_for_budget_pause(gql, processing, batch_ids)
    # Then: some runs wait (they do not fail) for a call the rest of the budget cannot cover
    waiting = [run for run in paused if run["status"] == "WAITING_BUDGET"]
    assert waiting and all("budget" in run["errorMessage"] for run in waiting)
    kinds = [await event_kinds(processing, batch_id) for batch_id in batch_ids]
    assert sum(batch.count("BUDGET_PAUSED") > 0 for batch in kinds) >= len(waiting)
    day = await budget(gql)
    spent, remaining = Decimal(day["spentUsd"]), Decimal(day["remainingUsd"])
    assert Decimal(day["limitUsd"]) == PARTIAL_BUDGET
    assert Decimal(day["reservedUsd"]) == 0 and remaining == PARTIAL_BUDGET - spent
    needed = await rows(processing, "SELECT (payload->>'needed_usd')::numeric AS usd"
                                    " FROM processing_queue WHERE status = 'waiting_budget'")
    assert len(needed) == len(waiting) and all(row.usd > remaining for row in needed)
    # Then: settled spend stayed within the limit, and every call made so far is paid
    assert 0 < spent <= PARTIAL_BUDGET
    assert spent == per_call * len(provider.requests_for(BUNDLED_MODEL))
    # When: the budget is raised
    raised = await set_daily_budget(gql, "1")
    assert raised["resumedRuns"] == len(waiting)
    states = [await wait_batch(gql, batch_id) for batch_id in batch_ids]
    # Then: every run completes, each chunk stored once, every call settled once
    assert all(state["status"] == "COMPLETED" for state in states), states
    runs = [run for state in states for run in state["runs"]]
    assert all(run["status"] == "COMPLETED" and run["chunksDone"] == run["chunkCount"] >= 2
               for run in runs), runs
    fragments = [f for batch_id in batch_ids for f in await fragments_of(gql, batch_id)]
    codes = [f["fragmentCode"] for f in fragments]
    assert len(codes) == len(set(codes)) == sum(run["fragmentCount"] for run in runs)
    spans = [(f["run"]["id"], f["charStart"], f["charEnd"]) for f in fragments]
    assert len(spans) == len(set(spans))
    for run in runs:
        chunks = await rows(processing, "SELECT count(*) AS n FROM run_chunks WHERE run_id = :r",
                            r=pk(run["id"]))
        assert chunks[0].n == run["chunkCount"]
    requests = len(provider.requests_for(BUNDLED_MODEL))
    ledger = await rows(processing, "SELECT status FROM budget_ledger")
    assert len(ledger) == requests == sum(run["llmCalls"] for run in runs)
    assert {row.status for row in ledger} == {"settled"}
    day = await budget(gql)
    total = sum((Decimal(state["costUsd"]) for state in states), Decimal(0))
    assert Decimal(day["spentUsd"]) == per_call * requests == total
    assert Decimal(day["reservedUsd"]) == 0


async def test_an_unpriced_model_is_refused_while_a_budget_is_in_force(
        engine_gql: GraphQLClient, provider: FakeProvider) -> None:
    gql = engine_gql
    # Given: a model LiteLLM has no price for, and a daily budget
    await register_fake_model(gql, provider)
    house = await register_fake_model(gql, provider, name="house-model",
                                      litellm_model="openai/house-model-7b")
    assert house["priceSource"] == "none" and house["inputCostPerMillion"] is None
    await set_daily_budget(gql, "5")
    source_id = await create_source(gql, "UNPRICED", interview("UNPRICED", 6))
    # When
    payload = await start(gql, source_id, [FAKE_MODEL, "house-model"])
    # Then: refused as data on the unpriced model's position, nothing queued or called
    assert payload["__typename"] == "ValidationError", payload
    (error,) = payload["fieldErrors"]
    assert error["field"] == "input.models.1"
    assert "house-model" in error["message"] and "no known price" in error["message"]
    assert provider.requests == []
    batches = (await gql("{ batches(first: 10) { totalCount } }"))["data"]["batches"]
    assert batches["totalCount"] == 0


async def test_a_batch_budget_alone_also_refuses_an_unpriced_model(
        engine_gql: GraphQLClient, provider: FakeProvider) -> None:
    gql = engine_gql
    # Given: no daily budget, an unpriced model
    await register_fake_model(gql, provider, name="house-model",
                              litellm_model="openai/house-model-7b")
    source_id = await create_source(gql, "UNPRICED_BATCH", interview("UNPRICED_BATCH", 6))
    # When: the batch carries its own budget
    payload = await start(gql, source_id, ["house-model"], budget_usd="1")
    # Then
    assert payload["__typename"] == "ValidationError", payload
    assert [e["field"] for e in payload["fieldErrors"]] == ["input.models.0"]


async def test_the_fragment_cost_guard_stops_an_expensive_run_with_a_clear_message(
        engine_gql: GraphQLClient, processing: Any, provider: FakeProvider, settings: Any,
        monkeypatch: pytest.MonkeyPatch, small_chunks: int) -> None:
    gql = engine_gql
    # Given: a limit of $0.00001 per grounded fragment, chunks one at a time, calls costing
    # about $0.0005 for a dozen fragments
    monkeypatch.setattr(settings, "llm_concurrency", 1)
    await register_fake_model(gql, provider)
    provider.set_default(with_usage(prompt_tokens=1234, completion_tokens=567))
    limit = (await gql(SET_FRAGMENT_LIMIT, {"amount": "0.00001"}))["data"]
    assert Decimal(limit["setFragmentCostLimit"]["budget"]["fragmentCostLimitUsd"]) == Decimal(
        "0.00001")
    source_id = await create_source(gql, "GUARDED", interview("GUARDED", 30))
    # When
    state = await wait_batch(gql, await start_one_batch(gql, source_id))
    # Then: the run stopped as soon as the minimum sample was in, with the reason; its
    # fragments stay
    run = state["runs"][0]
    assert run["status"] == "STOPPED_COST_LIMIT", run
    assert 1 <= run["chunksDone"] < run["chunkCount"]
    message = run["errorMessage"]
    assert "cost per grounded fragment" in message and "exceeds the limit of $0.00001" in message
    assert len(provider.requests_for(BUNDLED_MODEL)) == run["chunksDone"]
    assert run["fragmentCount"] >= 10 and len(await fragments_of(gql, state["id"])) == run[
        "fragmentCount"]
    assert await event_kinds(processing, state["id"]) == [
        "QUEUED", "STARTED", *["CHUNK_DONE"] * run["chunksDone"], "RUN_DONE", "BATCH_DONE"]
