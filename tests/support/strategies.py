"""Driving processBatch strategies: the candidate models and their prices, quality settings and
thresholds, sources, and reading back a plan's batches once it has settled. Scores are easy to
predict with these weights; see tests/integration/test_strategies_processing.py."""

from __future__ import annotations

from typing import Any

from tests.support.fake_provider import FakeProvider
from tests.support.graphql import GraphQLClient
from tests.support.processing import interview, register_fake_model, rows
from tests.support.scenarios import HALF, REFERENCE, behaviour
from tests.support.waiting import wait_for

GOOD = "good-small"
INVENTOR = "inventor"
# Cheapest first: half < good < inventor < reference.
PRICES = {HALF: ("0.2", "0.6"), GOOD: ("0.4", "1.2"), INVENTOR: ("0.6", "1.8"),
          REFERENCE: ("10", "30")}
CANDIDATES = [REFERENCE, INVENTOR, GOOD, HALF]  # request order is not cost order

CREATE = """mutation($input: CreateSourceInput!) { createSource(input: $input) {
  ... on CreateSourcePayload { source { id } } } }"""
PROCESS = """mutation($input: ProcessBatchInput!) { processBatch(input: $input) { __typename
  ... on ProcessBatchPayload { batches { id groupId model strategy decisions } }
  ... on ValidationError { message fieldErrors { field message } }
  ... on Conflict { message } } }"""
THRESHOLDS = """mutation($input: [QualityThresholdInput!]!) { setQualityThresholds(input: $input) {
  __typename ... on SetQualityThresholdsPayload { thresholds { sourceType threshold isDefault } }
  ... on ValidationError { fieldErrors { field message } } } }"""
SETTINGS = """mutation($input: SetQualitySettingsInput!) { setQualitySettings(input: $input) {
  __typename ... on SetQualitySettingsPayload { settings { weights { f1 relevance } } }
  ... on ValidationError { fieldErrors { field message } } } }"""


async def prepare(gql: GraphQLClient, provider: FakeProvider, *, relevance: float,
                  threshold: tuple[str, float]) -> None:
    provider.set_default(behaviour)
    for name, prices in PRICES.items():
        await register_fake_model(gql, provider, name=name, litellm_model=f"openai/{name}",
                                  prices=prices)
    weights = {"f1": 1.0, "grounded": 1.0, "miu": 0.0, "coverage": 1.0, "relevance": relevance}
    result = (await gql(SETTINGS, {"input": {"weights": weights}}))["data"]
    assert result["setQualitySettings"]["__typename"] == "SetQualitySettingsPayload", result
    kind, value = threshold
    set_bar = await gql(THRESHOLDS, {"input": [{"sourceType": kind, "threshold": value}]})
    assert set_bar["data"]["setQualityThresholds"]["__typename"] == \
        "SetQualityThresholdsPayload", set_bar


async def sources(gql: GraphQLClient, kind: str, tags: list[str]) -> list[str]:
    ids = []
    for tag in tags:
        body = await gql(CREATE, {"input": {
            "sourceCode": f"STR_{tag}", "title": tag, "sourceType": kind,
            "content": interview(tag, 30), "language": "en"}})
        ids.append(body["data"]["createSource"]["source"]["id"])
    return ids


async def process(gql: GraphQLClient, source_ids: list[str], strategy: str) -> list[Any]:
    body = await gql(PROCESS, {"input": {"sourceIds": source_ids, "models": CANDIDATES,
                                         "strategy": strategy}})
    payload = body["data"]["processBatch"]
    assert payload["__typename"] == "ProcessBatchPayload", payload
    return list(payload["batches"])


async def plan_batches(runtime: Any, group_id: str) -> list[Any]:
    """The group's batches once its plan has taken its final step and everything ended."""

    async def settled() -> list[Any] | None:
        found = await rows(runtime, "SELECT id, model_name, status, config, decisions, forecast"
                                    " FROM processing_batches WHERE group_id = :g ORDER BY id",
                           g=group_id)
        ended = all(b.status in ("completed", "failed", "cancelled") for b in found)
        final = any(b.config.get("final") for b in found) or any(
            d.get("final") for b in found for d in b.decisions if d["kind"] == "decided")
        return found if ended and final else None

    result: list[Any] = await wait_for(settled, timeout=120, interval=0.25)
    return result


def steps(batches: list[Any]) -> list[tuple[int, str, int]]:
    """(step, model, number of sources) of every batch, in creation order."""
    return [(b.config["step"], b.model_name, len(b.decisions[0]["sourceIds"])) for b in batches]
