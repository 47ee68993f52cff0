"""Driving the extraction engine through GraphQL: sources, catalog models, batches, fragments,
the budget, and reads of what the workers wrote. Shared by the integration tests that process
sources on the in-process workers against the fake provider.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from strawberry import relay

from domain.grounding import normalise_text
from tests.support.fake_provider import (
    FakeProvider,
    RecordedRequest,
    Responder,
    Scripted,
    echo_responder,
)
from tests.support.graphql import GraphQLClient
from tests.support.waiting import wait_for

FAKE_MODEL = "fake-mini"
BUNDLED_MODEL = "openai/gpt-4o-mini"
BUNDLED_PRICES = (Decimal("0.15"), Decimal("0.60"))  # USD per million tokens, LiteLLM's map
MILLION = Decimal(1_000_000)
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")

# -- GraphQL operations ----------------------------------------------------------------------------

REGISTER = """mutation($input: RegisterModelInput!) { registerModel(input: $input) { __typename
  ... on RegisterModelPayload { model { name inputCostPerMillion outputCostPerMillion
                                        priceSource } }
  ... on ValidationError { message fieldErrors { field message } }
  ... on Conflict { message } } }"""

UPDATE_MODEL = """mutation($input: UpdateModelInput!) { updateModel(input: $input) { __typename
  ... on UpdateModelPayload { model { name inputCostPerMillion outputCostPerMillion priceSource } }
  ... on ValidationError { message fieldErrors { field message } } } }"""

CREATE_SOURCE = """mutation($input: CreateSourceInput!) { createSource(input: $input) {
  __typename ... on CreateSourcePayload { source { id } }
  ... on ValidationError { message fieldErrors { field message } } } }"""

# One batch per model, no strategy: processBatch would plan samples and further steps.
START = """mutation($input: StartMultiModelProcessingInput!) {
  startMultiModelProcessing(input: $input) { __typename
    ... on StartMultiModelProcessingPayload { batches { id model status } }
    ... on ValidationError { message fieldErrors { field message } }
    ... on NotFound { message } ... on Conflict { message } } }"""

BATCH = """query($id: ID!) { batch(id: $id) { id status costUsd reservedUsd errorMessage progress
  runs { id status errorMessage costUsd inputTokens outputTokens llmCalls attempts chunkCount
         chunksDone fragmentCount groundedFragmentCount } } }"""

FRAGMENTS = """query($after: String, $batch: ID!) {
  fragments(first: 100, after: $after, filter: {batchId: $batch}) {
    pageInfo { hasNextPage endCursor }
    edges { node { fragmentCode content quote charStart charEnd grounding groundingScore
                   chunkIndex run { id } } } } }"""

BUDGET = """{ budget { limitUsd spentUsd reservedUsd remainingUsd fragmentCostLimitUsd } }"""


async def wait_until_idle(runtime: Any, timeout_s: float = 60.0) -> None:
    """Wait until every wake-up message sent so far has been fully processed."""
    from workers.broker import QUEUE

    worker = runtime.worker.worker

    def join() -> None:
        worker.broker.join(QUEUE, timeout=int(timeout_s * 1000), fail_fast=False)
        worker.join()

    await asyncio.wait_for(asyncio.to_thread(join), timeout_s + 5)


# -- sources ---------------------------------------------------------------------------------------

_OPENINGS = (
    "I started painting when I was {n} years old",
    "My grandmother taught me to bake bread on Sundays in year {n}",
    "I moved to Lisbon for the first time at {n}",
    "I always plan my week on Sunday evenings, a habit I kept for {n} years",
    "When my team missed the deadline in project {n}, I stayed late to fix it myself",
    "I feel calm when I walk by the river in the morning, even after {n} busy days",
    "I lost my first job at {n} and it taught me to save money",
    "I read every contract twice, line {n} included, before I sign anything",
    "My father fixed boats for {n} years and I watched him for hours",
    "I believe that honesty matters more than comfort, as I said in talk {n}",
    "I get anxious before big presentations, so I rehearse them {n} times",
    "I write in my journal every night, and entry {n} was about my brother",
)
_REASONS = (
    "because it helped me think clearly.",
    "since nobody else in the family wanted to do it.",
    "and I still remember how quiet the house was.",
    "which made me trust my own judgment more.",
    "although I was scared of failing in public.",
    "so that my children would see what steady work looks like.",
    "and that choice shaped how I treat my colleagues.",
)


def interview(tag: str, sentences: int, *, per_paragraph: int = 6,
              extra: str | None = None) -> str:
    """An interview of unique first-person sentences (about 100 characters each)."""
    lines = [f"This is interview {tag}, recorded at home."]
    for i in range(sentences):
        opening = _OPENINGS[i % len(_OPENINGS)].format(n=i + 3)
        lines.append(f"{opening} {_REASONS[(i * 5 + len(tag)) % len(_REASONS)]}")
    if extra:
        lines.insert(len(lines) // 2, extra)
    paragraphs = [" ".join(lines[i:i + per_paragraph]) for i in range(0, len(lines), per_paragraph)]
    return "\n\n".join(paragraphs)


async def create_source(gql: GraphQLClient, tag: str, content: str) -> str:
    """Store a source; returns its global ID."""
    body = await gql(CREATE_SOURCE, {"input": {
        "sourceCode": f"INT_{tag}", "title": f"Interview {tag}", "sourceType": "INTERVIEW",
        "content": content, "language": "en", "author": "Ana Souza"}})
    payload = body["data"]["createSource"]
    assert payload["__typename"] == "CreateSourcePayload", payload
    return str(payload["source"]["id"])


# -- models, batches, fragments --------------------------------------------------------------------


async def register_fake_model(gql: GraphQLClient, provider: FakeProvider, *,
                              name: str = FAKE_MODEL, litellm_model: str = BUNDLED_MODEL,
                              prices: tuple[str, str] | None = None) -> dict[str, Any]:
    """Register a catalog model served by the fake provider."""
    model: dict[str, Any] = {"name": name, "litellmModel": litellm_model,
                             "apiBase": provider.url}
    if prices is not None:
        model["inputCostPerMillion"], model["outputCostPerMillion"] = prices
    payload = (await gql(REGISTER, {"input": model}))["data"]["registerModel"]
    assert payload["__typename"] == "RegisterModelPayload", payload
    return dict(payload["model"])


async def start(gql: GraphQLClient, source_id: str, models: list[str] | None = None,
                budget_usd: str | None = None) -> dict[str, Any]:
    """startMultiModelProcessing of one source; returns the raw payload."""
    body = await gql(START, {"input": {"sourceId": source_id,
                                       "models": models or [FAKE_MODEL],
                                       "budgetUsd": budget_usd}})
    return dict(body["data"]["startMultiModelProcessing"])


async def start_one_batch(gql: GraphQLClient, source_id: str, model: str = FAKE_MODEL) -> str:
    """Start one batch of `model` over the source; returns the batch ID."""
    payload = await start(gql, source_id, [model])
    assert payload["__typename"] == "StartMultiModelProcessingPayload", payload
    return str(payload["batches"][0]["id"])


async def batch_state(gql: GraphQLClient, batch_id: str) -> dict[str, Any]:
    return dict((await gql(BATCH, {"id": batch_id}))["data"]["batch"])


async def wait_batch(gql: GraphQLClient, batch_id: str, within: float = 30.0,
                     statuses: tuple[str, ...] = TERMINAL) -> dict[str, Any]:
    """Poll the batch until its status is one of `statuses`."""

    async def reached() -> dict[str, Any] | None:
        state = await batch_state(gql, batch_id)
        return state if state["status"] in statuses else None

    result: dict[str, Any] = await wait_for(reached, timeout=within, interval=0.1)
    return result


async def fragments_of(gql: GraphQLClient, batch_id: str) -> list[dict[str, Any]]:
    """Every fragment of a batch, all pages."""
    nodes: list[dict[str, Any]] = []
    after = None
    while True:
        page = (await gql(FRAGMENTS, {"after": after, "batch": batch_id}))["data"]["fragments"]
        nodes += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]


async def budget(gql: GraphQLClient) -> dict[str, Any]:
    return dict((await gql(BUDGET))["data"]["budget"])


# -- database reads and provider scripting ---------------------------------------------------------


def pk(global_id: str) -> int:
    """The numeric key inside a global ID."""
    return int(relay.GlobalID.from_id(global_id).node_id)


async def rows(runtime: Any, query: str, **params: Any) -> list[Any]:
    """Run a read-only SQL query on the runtime's database."""
    async with runtime.read() as session:
        return list((await session.execute(sa.text(query), params)).all())


async def event_kinds(runtime: Any, batch_id: str) -> list[str]:
    found = await rows(runtime, "SELECT kind FROM batch_events WHERE batch_id = :b ORDER BY seq",
                       b=pk(batch_id))
    return [row.kind for row in found]


def with_usage(responder: Responder = echo_responder, *, prompt_tokens: int = 1234,
               completion_tokens: int = 567, latency: float = 0.0) -> Responder:
    """`responder` reporting a fixed token usage (and an optional latency) on every answer."""

    def respond(request: RecordedRequest) -> Scripted:
        return replace(responder(request), prompt_tokens=prompt_tokens,
                       completion_tokens=completion_tokens, latency=latency)

    return respond


def price_of_call(prices: tuple[Decimal, Decimal], input_tokens: int,
                  output_tokens: int) -> Decimal:
    return (prices[0] * input_tokens + prices[1] * output_tokens) / MILLION


def assert_exact_spans(content: str, fragments: list[dict[str, Any]]) -> None:
    """Every EXACT fragment's span in the source is its quote."""
    for fragment in fragments:
        if fragment["grounding"] != "EXACT":
            continue
        span = content[fragment["charStart"]:fragment["charEnd"]]
        assert normalise_text(span) == normalise_text(fragment["quote"]), fragment
