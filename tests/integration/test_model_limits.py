"""Per-model limits across workers: two limiter instances on one real Redis (two worker
processes) share one bucket, a 429 of the fake provider slows both, a reservation is corrected
to the actual usage; the catalog fields and their errors over GraphQL; queueStatus shows the
rates; a run of a limited model on a limited fake provider sees no 429."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from domain.llm import ModelRequest, ModelSpec, TransientModelError
from tests.support.fake_provider import FakeProvider, Scripted
from tests.support.graphql import GraphQLClient
from tests.support.processing import (
    create_source,
    interview,
    register_fake_model,
    start_one_batch,
    wait_batch,
)
from workers.limits import Limits, ModelLimiter, RedisLimits

MODEL_FIELDS = "name rpm tpm maxConcurrency"
REGISTER = f"""mutation($input: RegisterModelInput!) {{ registerModel(input: $input) {{
  __typename ... on RegisterModelPayload {{ model {{ {MODEL_FIELDS} }} }}
  ... on ValidationError {{ message fieldErrors {{ path message }} }} }} }}"""
UPDATE = f"""mutation($input: UpdateModelInput!) {{ updateModel(input: $input) {{
  __typename ... on UpdateModelPayload {{ model {{ {MODEL_FIELDS} }} }}
  ... on ValidationError {{ message fieldErrors {{ path message }} }} }} }}"""
QUEUE = """{ queueStatus { modelRates { model rpm tpm maxConcurrency requestsLastMinute
  tokensLastMinute tokensAvailable inFlight slowedUntil } } }"""


@pytest.fixture
async def two_workers(redis_url: str) -> Any:
    """Two limiters on one Redis, as two worker processes have; a model name of the test's."""
    a, b = RedisLimits(redis_url), RedisLimits(redis_url)
    yield ModelLimiter(a), ModelLimiter(b), f"limits-{uuid.uuid4().hex[:8]}"
    await a.aclose()
    await b.aclose()


def _spec(name: str, api_base: str = "http://127.0.0.1:9/v1", **limits: int) -> ModelSpec:
    return ModelSpec(name=name, litellm_model="openai/fake-model", api_base=api_base,
                     **limits)  # type: ignore[arg-type]


async def test_two_workers_share_one_token_bucket_and_corrections(two_workers: Any) -> None:
    one, two, name = two_workers
    spec = _spec(name, tpm=60_000)  # a bucket of 10,000 tokens, 1,000 a second
    limits = Limits.of(spec)
    first = await one.acquire(spec, 6_000, lease_s=10)
    assert first is not None and first.reserved == 6_000
    # The other worker sees the same bucket: 6,000 more do not fit now.
    refused = await two.backend.try_admit(name, limits, 6_000, 10)
    assert not refused.admitted and refused.wait_s > 1.0
    # The first call used 1,500: 4,500 come back, for every worker.
    await one.settle(first, 1_500)
    admitted = await two.backend.try_admit(name, limits, 6_000, 10)
    assert admitted.admitted
    status = await one.status(name, limits)
    assert status.requests_last_minute == 2
    assert status.tokens_last_minute == 1_500 + 6_000
    assert status.tokens_available is not None and status.tokens_available < 3_000


async def test_requests_and_concurrency_are_shared_and_leases_expire(two_workers: Any) -> None:
    one, two, name = two_workers
    limits = Limits(rpm=6, max_concurrency=1)  # a burst of 1 request
    assert (await one.backend.try_admit(name, limits, 0, 0.2, "lease-a")).admitted
    blocked = await two.backend.try_admit(name, limits, 0, 0.2, "lease-b")
    assert not blocked.admitted
    assert (await two.status(name, limits)).in_flight == 1
    # Worker one dies holding its lease: it expires (0.2 s) without anyone returning it, but
    # the GCRA still says 10 s per request.
    import asyncio

    await asyncio.sleep(0.3)
    assert (await two.status(name, limits)).in_flight == 0
    assert not (await two.backend.try_admit(name, limits, 0, 0.2, "lease-b")).admitted


async def test_a_429_of_the_provider_slows_the_model_for_every_worker(
        two_workers: Any, provider: FakeProvider) -> None:
    from workers.gateway import LiteLLMClient
    from workers.pipeline import Pipeline

    one, two, name = two_workers
    spec = _spec(name, api_base=provider.url, tpm=1_000_000)
    provider.limit("fake-model", rpm=1, burst_seconds=60)
    client = LiteLLMClient()
    pipeline = Pipeline(runtime=None, client=client, owner="test", limiter=one)
    request = ModelRequest(model=spec, messages=[{"role": "user", "content": "hello"}],
                           max_tokens=50)
    try:
        # Someone else on the same key (not through this limiter) used the minute's request.
        await client.complete(request)
        permit = await one.acquire(spec, 100, lease_s=10)
        with pytest.raises(TransientModelError) as refused:
            await pipeline._complete_limited(spec, request, permit)
    finally:
        await client.aclose()
    assert refused.value.status == 429 and refused.value.retry_after_s
    assert refused.value.rate_limit is not None
    assert refused.value.rate_limit.remaining_requests == 0
    # The other worker, which never called, is held back too.
    status = await two.status(name, Limits.of(spec))
    assert status.slowed_for_s > 30
    assert not (await two.backend.try_admit(name, Limits.of(spec), 10, 10)).admitted
    # The refused call's reservation (100 tokens) came back.
    assert (status.requests_last_minute, status.tokens_last_minute) == (1, 0)
    assert provider.limits.stats["fake-model"].refused == 1


async def test_the_fake_provider_enforces_rpm_and_tpm_with_headers(
        provider: FakeProvider) -> None:
    import httpx

    provider.limit("limited-model", rpm=100, tpm=600, burst_seconds=60)
    body = {"model": "limited-model", "messages": [{"role": "user", "content": "x" * 800}]}
    async with httpx.AsyncClient() as http:
        ok = await http.post(f"{provider.url}/chat/completions", json=body)
        assert ok.status_code == 200
        assert ok.headers["x-ratelimit-limit-tokens"] == "600"
        assert int(ok.headers["x-ratelimit-remaining-tokens"]) < 600
        assert ok.headers["x-ratelimit-remaining-requests"] == "99"
        assert ok.headers["x-ratelimit-reset-tokens"].endswith("s")
        refused = (await http.post(f"{provider.url}/chat/completions", json=body))
        for _ in range(3):
            if refused.status_code == 429:
                break
            refused = await http.post(f"{provider.url}/chat/completions", json=body)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert "x-ratelimit-reset-requests" in refused.headers
        free = await http.post(f"{provider.url}/chat/completions",
                               json={**body, "model": "other-model"})
        assert free.status_code == 200 and "x-ratelimit-limit-tokens" not in free.headers


async def test_model_limits_over_graphql_with_clear_errors(engine_gql: GraphQLClient,
                                                           provider: FakeProvider) -> None:
    gql = engine_gql
    model = {"name": "limited-mini", "litellmModel": "openai/gpt-4o-mini",
             "apiBase": provider.url}
    bad = (await gql(REGISTER, {"input": {**model, "rpm": 0, "tpm": -3,
                                          "maxConcurrency": 10_001}}))["data"]["registerModel"]
    assert bad["__typename"] == "ValidationError"
    errors = {tuple(e["path"]): e["message"] for e in bad["fieldErrors"]}
    assert set(errors) == {("input", "rpm"), ("input", "tpm"), ("input", "maxConcurrency")}
    assert "between 1 and 10,000" in errors[("input", "maxConcurrency")]
    absurd = (await gql(REGISTER, {"input": {**model, "tpm": 1_500_000_000}}))
    payload = absurd["data"]["registerModel"]
    assert payload["__typename"] == "ValidationError"
    assert payload["fieldErrors"] == [{"path": ["input", "tpm"], "message":
                                       "must be between 1 and 1,000,000,000 (null for no limit)"}]
    beyond = await gql(REGISTER, {"input": {**model, "rpm": 5_000_000_000}}, expect_errors=True)
    assert "rpm" in beyond["errors"][0]["message"]  # beyond GraphQL's Int: refused at parse
    fraction = await gql(REGISTER, {"input": {**model, "rpm": 1.5}}, expect_errors=True)
    assert "Int" in fraction["errors"][0]["message"]
    ok = (await gql(REGISTER, {"input": {**model, "rpm": 500, "tpm": 200_000,
                                         "maxConcurrency": 4}}))["data"]["registerModel"]
    assert ok["model"] == {"name": "limited-mini", "rpm": 500, "tpm": 200_000,
                           "maxConcurrency": 4}
    cleared = (await gql(UPDATE, {"input": {"name": "limited-mini", "rpm": None,
                                            "tpm": 90_000}}))["data"]["updateModel"]
    assert cleared["model"] == {"name": "limited-mini", "rpm": None, "tpm": 90_000,
                                "maxConcurrency": 4}
    huge = (await gql(UPDATE, {"input": {"name": "limited-mini", "rpm": 2_000_000}}))
    payload = huge["data"]["updateModel"]
    assert payload["__typename"] == "ValidationError"
    assert payload["fieldErrors"][0]["path"] == ["input", "rpm"]


async def test_a_limited_model_runs_without_429s_and_queue_status_shows_its_rate(
        engine_gql: GraphQLClient, provider: FakeProvider, small_chunks: int) -> None:
    gql = engine_gql
    await register_fake_model(gql, provider, name="rated-mini")
    # The provider allows 3,000 tokens a minute; so does the model's limit (a bucket of 500).
    provider.limit("gpt-4o-mini", tpm=3_000, burst_seconds=10)
    updated = await gql(UPDATE, {"input": {"name": "rated-mini", "tpm": 3_000,
                                           "maxConcurrency": 2}})
    assert updated["data"]["updateModel"]["__typename"] == "UpdateModelPayload"
    provider.set_default(lambda request: Scripted(content='{"fragments": []}',
                                                  prompt_tokens=60, completion_tokens=20))
    source_id = await create_source(gql, "RATED", interview("RATED", 40))
    batch_id = await start_one_batch(gql, source_id, model="rated-mini")
    await wait_batch(gql, batch_id, within=60)
    stats = provider.limits.stats["gpt-4o-mini"]
    assert stats.admitted >= 2 and stats.refused == 0
    [rate] = (await gql(QUEUE))["data"]["queueStatus"]["modelRates"]
    assert (rate["model"], rate["tpm"], rate["maxConcurrency"]) == ("rated-mini", 3_000, 2)
    assert rate["requestsLastMinute"] == stats.admitted
    assert rate["tokensLastMinute"] == stats.admitted * 80  # corrected to the actual usage
    assert rate["inFlight"] == 0 and rate["slowedUntil"] is None
