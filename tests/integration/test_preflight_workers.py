"""Pre-flight refusals against real `mmos worker` processes (domain/preflight.py): a model
whose key the workers lack is refused at once with nothing queued; after the key is set and
the workers restart, the same call is accepted.

The test process plays the API (GraphQL over the session's runtime, wake-ups through a
private Redis broker); the workers report what they can call in their heartbeats, which the
start reads from PostgreSQL. The model without an apiBase (`openai/gpt-4o-mini`) would call
OpenAI itself: its accepted batch is cancelled before any message wakes a worker. The model
with a custom apiBase and its own key variable runs to the end against the fake provider.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.support.database import reset_database
from tests.support.fake_provider import FakeProvider, Scripted, answer_json, grounded_fragments
from tests.support.graphql import GraphQLClient
from tests.support.waiting import wait_for
from tests.support.workers import (
    NoWakeups,
    RedisWakeups,
    WorkerFleet,
    WorkerProcess,
    flush_redis,
    worker_env,
)

pytestmark = pytest.mark.slow

OPENAI_MODEL = "pf-openai-mini"
OWN_KEY_MODEL = "pf-own-llama"
OWN_KEY_ENV = "PREFLIGHT_LLAMA_API_KEY"
OWN_KEY = "sk-own-llama-123"

REGISTER = """mutation($input: RegisterModelInput!) { registerModel(input: $input) {
  __typename ... on RegisterModelPayload { model { name } } } }"""
CREATE = """mutation($input: CreateSourceInput!) { createSource(input: $input) {
  __typename ... on CreateSourcePayload { source { id } } } }"""
START = """mutation($input: StartMultiModelProcessingInput!) {
  startMultiModelProcessing(input: $input) { __typename
    ... on StartMultiModelProcessingPayload { batches { id model } }
    ... on ValidationError { message fieldErrors { field message } } } }"""
PROCESS_BATCH = """mutation($input: ProcessBatchInput!) { processBatch(input: $input) {
  __typename ... on ProcessBatchPayload { batches { id model } }
  ... on ValidationError { message fieldErrors { field message } } } }"""
CANCEL = """mutation($id: ID!) { cancelBatch(input: {batchId: $id}) { __typename } }"""
BATCH = """query($id: ID!) { batch(id: $id) { status } }"""
QUEUE = """{ queueStatus { workers { workerId pid alive providers keyEnvs } } }"""


# -- fixtures -------------------------------------------------------------------------------------


@dataclass
class Api:
    runtime: Any
    gql: GraphQLClient
    wakeups: RedisWakeups

    async def value(self, sql: str) -> Any:
        async with self.runtime.read() as session:
            return (await session.execute(sa.text(sql))).scalar_one()


@pytest.fixture
async def api(runtime: Any, settings: Any, redis_url: str,
              quiet_in_process_worker: None) -> AsyncIterator[Api]:
    from api.app import create_app

    await reset_database(runtime)
    async with runtime.uow() as uow:  # heartbeats of workers earlier tests left behind
        await uow.session.execute(sa.text("DELETE FROM workers"))
    flush_redis(redis_url)
    wakeups = RedisWakeups(runtime, redis_url)
    view = runtime.with_dispatcher(wakeups)
    transport = httpx.ASGITransport(app=create_app(settings, runtime=view))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield Api(view, GraphQLClient(http), wakeups)
    wakeups.close()


@pytest.fixture
def fleet(database_url: str, redis_url: str, tmp_path: Any) -> Iterator[WorkerFleet]:
    env = worker_env(database_url, redis_url)
    for name in ("OPENAI_API_KEY", OWN_KEY_ENV):  # whatever this machine has: not here
        env.pop(name, None)
    workers = WorkerFleet(env, tmp_path)
    yield workers
    workers.close()


# -- helpers --------------------------------------------------------------------------------------


async def reported(api: Api, worker: WorkerProcess) -> dict[str, Any]:
    """The worker's entry in queueStatus once its first heartbeat (with its report) landed."""

    async def seen() -> dict[str, Any] | None:
        body = await api.gql(QUEUE)
        found = [w for w in body["data"]["queueStatus"]["workers"]
                 if w["pid"] == worker.pid and w["alive"]]
        return found[0] if found else None

    return await wait_for(seen, timeout=60, interval=0.2)


async def nothing_queued(api: Api) -> None:
    for table in ("processing_batches", "source_processing", "processing_queue"):
        assert await api.value(f"SELECT count(*) FROM {table}") == 0, table


def field_errors(payload: dict[str, Any]) -> dict[str, str]:
    assert payload["__typename"] == "ValidationError", payload
    return {error["field"]: error["message"] for error in payload["fieldErrors"]}


# -- the test -------------------------------------------------------------------------------------


async def test_a_missing_key_is_refused_at_once_and_accepted_after_the_workers_restart(
        api: Api, fleet: WorkerFleet, provider: FakeProvider) -> None:
    gql = api.gql
    # Given: a model calling OpenAI directly, one on a custom base with its own key variable
    for model in ({"name": OPENAI_MODEL, "litellmModel": "openai/gpt-4o-mini"},
                  {"name": OWN_KEY_MODEL, "litellmModel": "openai/llama-3",
                   "apiBase": provider.url, "apiKeyEnv": OWN_KEY_ENV,
                   "inputCostPerMillion": "0.1", "outputCostPerMillion": "0.2"}):
        body = await gql(REGISTER, {"input": model})
        assert body["data"]["registerModel"]["__typename"] == "RegisterModelPayload", body
    body = await gql(CREATE, {"input": {
        "sourceCode": "PF_001", "title": "preflight", "sourceType": "INTERVIEW",
        "content": "I moved to Lisbon in 1990 because I wanted a quieter life. When I feel "
                   "pressure, I write lists to calm down."}})
    source = body["data"]["createSource"]["source"]["id"]

    # and a worker started with neither key (but another variable of the same shape)
    keyless = fleet.spawn("keyless", UNRELATED_SERVICE_TOKEN="t")
    keyless.wait_ready()
    seen = await reported(api, keyless)
    assert "openai" not in seen["providers"] and seen["keyEnvs"] == []

    # When: both models are started, one source through several models or many sources
    models = [OPENAI_MODEL, OWN_KEY_MODEL]
    started = (await gql(START, {"input": {"sourceId": source, "models": models}})
               )["data"]["startMultiModelProcessing"]
    planned = (await gql(PROCESS_BATCH, {"input": {
        "sourceIds": [source], "models": models, "strategy": "PROGRESSIVE"}}))
    # Then: refused at once, naming each model at its index, and nothing queued
    for payload in (started, planned["data"]["processBatch"]):
        errors = field_errors(payload)
        assert set(errors) == {"input.models.0", "input.models.1"}, errors
        assert OPENAI_MODEL in errors["input.models.0"]
        assert "OPENAI_API_KEY" in errors["input.models.0"]
        assert f"-{keyless.pid}-" in errors["input.models.0"]  # the worker, by its id
        assert OWN_KEY_MODEL in errors["input.models.1"]
        assert OWN_KEY_ENV in errors["input.models.1"]
    await nothing_queued(api)

    # When: the keys are set and the workers restart
    assert keyless.stop() == 0
    keyed = fleet.spawn("keyed", OPENAI_API_KEY="sk-fake", **{OWN_KEY_ENV: OWN_KEY},
                        UNRELATED_SERVICE_TOKEN="t")
    keyed.wait_ready()
    seen = await reported(api, keyed)
    # Then: queueStatus shows what it can call (of its key variables, only a model's)
    assert "openai" in seen["providers"]
    assert seen["keyEnvs"] == [OWN_KEY_ENV]
    assert [w["pid"] for w in (await gql(QUEUE))["data"]["queueStatus"]["workers"]] \
        == [keyed.pid]  # the keyless one said goodbye

    # and the same call is accepted; the OpenAI batch is cancelled before a worker hears of it
    api.runtime.dispatcher = NoWakeups()
    payload = (await gql(START, {"input": {"sourceId": source, "models": models}})
               )["data"]["startMultiModelProcessing"]
    assert payload["__typename"] == "StartMultiModelProcessingPayload", payload
    assert [b["model"] for b in payload["batches"]] == models
    for batch in payload["batches"]:
        body = await gql(CANCEL, {"id": batch["id"]})
        assert body["data"]["cancelBatch"]["__typename"] == "CancelBatchPayload", body

    # and the model with its own key runs to the end on the worker, with that key
    api.runtime.dispatcher = api.wakeups
    provider.set_default(lambda request: Scripted(
        content=answer_json(grounded_fragments(request))))
    payload = (await gql(START, {"input": {"sourceId": source, "models": [OWN_KEY_MODEL]}})
               )["data"]["startMultiModelProcessing"]
    assert payload["__typename"] == "StartMultiModelProcessingPayload", payload
    [batch] = payload["batches"]

    async def finished() -> str | None:
        status = (await gql(BATCH, {"id": batch["id"]}))["data"]["batch"]["status"]
        return status if status in ("COMPLETED", "FAILED", "CANCELLED") else None

    assert await wait_for(finished, timeout=60, interval=0.2) == "COMPLETED", fleet.logs()
    sent = provider.requests_for("llama-3")
    assert sent and all(r.headers.get("authorization") == f"Bearer {OWN_KEY}" for r in sent)
    assert provider.requests_for("gpt-4o-mini") == []


# -- embedded mode: the workers are this process ----------------------------------------------

NEVER_SET_ENV = "PREFLIGHT_NEVER_SET_API_KEY"


async def test_without_redis_the_check_is_this_process_s_own_environment(
        engine_gql: GraphQLClient, provider: FakeProvider) -> None:
    # Given: the in-process worker threads of this process (no REDIS_URL), reporting in
    # their heartbeat what this process's environment can call
    gql = engine_gql
    assert NEVER_SET_ENV not in os.environ

    async def own_worker() -> dict[str, Any] | None:
        workers = (await gql(QUEUE))["data"]["queueStatus"]["workers"]
        found = [w for w in workers if w["pid"] == os.getpid() and w["alive"]]
        return found[0] if found else None

    seen = await wait_for(own_worker, timeout=60, interval=0.2)
    assert ("openai" in seen["providers"]) == bool(os.environ.get("OPENAI_API_KEY", "").strip())
    body = await gql(REGISTER, {"input": {
        "name": "pf-embedded", "litellmModel": "openai/llama-3", "apiBase": provider.url,
        "apiKeyEnv": NEVER_SET_ENV, "inputCostPerMillion": "0", "outputCostPerMillion": "0"}})
    assert body["data"]["registerModel"]["__typename"] == "RegisterModelPayload", body
    body = await gql(CREATE, {"input": {"sourceCode": "PF_EMB", "title": "embedded",
                                        "sourceType": "INTERVIEW", "content": "I write lists."}})
    source = body["data"]["createSource"]["source"]["id"]
    # When
    payload = (await gql(START, {"input": {"sourceId": source, "models": ["rules-fast",
                                                                           "pf-embedded"]}})
               )["data"]["startMultiModelProcessing"]
    # Then: refused, naming this process's worker
    errors = field_errors(payload)
    assert set(errors) == {"input.models.1"}, errors
    assert NEVER_SET_ENV in errors["input.models.1"]
    assert f"-{os.getpid()}-" in errors["input.models.1"]
