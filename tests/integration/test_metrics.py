"""/metrics moves as a batch runs: runs, fragments, cost, queue depth."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.support.fake_provider import FakeProvider
from tests.support.graphql import GraphQLClient
from tests.support.processing import (
    FAKE_MODEL,
    create_source,
    interview,
    register_fake_model,
    start_one_batch,
    wait_batch,
)
from tests.support.waiting import wait_for

SET_DAILY = """mutation($amount: Decimal) { setDailyBudget(input: {amountUsd: $amount}) {
  __typename } }"""


async def scrape(gql: GraphQLClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics keyed by (name, sorted labels)."""
    response = await gql.http.get("/metrics")
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items()
               if n == name and all(dict(ls).get(k) == w for k, w in labels.items()))


async def test_metrics_follow_a_batch_from_queue_to_cost(engine_gql: GraphQLClient,
                                                         provider: FakeProvider,
                                                         processing: Any) -> None:
    gql = engine_gql
    # Given: a priced model and a budget too small for its first call
    await register_fake_model(gql, provider)
    await gql(SET_DAILY, {"amount": "0.0000001"})
    source_id = await create_source(gql, "METRICS", interview("METRICS", 8))
    before = await scrape(gql)
    # When: the run waits for money
    batch_id = await start_one_batch(gql, source_id)

    async def waiting() -> dict[Any, float] | None:
        samples = await scrape(gql)
        return samples if value(samples, "mmos_queue_depth", status="waiting_budget") else None

    paused = await wait_for(waiting, timeout=30)
    # Then: the queue shows it
    assert value(paused, "mmos_queue_depth", status="waiting_budget") == 1
    # When: the budget is raised and the batch completes
    await gql(SET_DAILY, {"amount": "5"})
    state = await wait_batch(gql, batch_id)
    assert state["status"] == "COMPLETED", state

    async def settled() -> dict[Any, float] | None:
        samples = await scrape(gql)
        return samples if value(samples, "mmos_runs_total", status="completed",
                                model=FAKE_MODEL) else None

    after = await wait_for(settled, timeout=30)
    # Then: runs, fragments, cost and LLM calls moved; the queue is empty again
    assert value(after, "mmos_runs_total", status="completed", model=FAKE_MODEL) == 1
    assert value(after, "mmos_fragments_extracted_total", model=FAKE_MODEL) > \
        value(before, "mmos_fragments_extracted_total", model=FAKE_MODEL)
    assert value(after, "mmos_cost_usd_total", model=FAKE_MODEL) > 0
    assert value(after, "mmos_budget_spent_usd") > 0
    assert value(after, "mmos_llm_calls_total", model=FAKE_MODEL, outcome="ok") >= 1
    assert value(after, "mmos_queue_depth", status="waiting_budget") == 0
    assert value(after, "mmos_http_requests_total", path="/graphql") > 0
