"""BATCH mode end to end: runs submitted through the fake provider's OpenAI-style Files and
Batch API (LiteLLM's batch functions), polled, collected and priced at the batch price.

- Three sources in BATCH mode give exactly the fragments an interactive run gives, and cost
  exactly Σ usage × batch price.
- An expired batch with some results: only the missing chunks are submitted again, nothing is
  charged twice.
- A provider without a batch API is refused at once, naming the model.
- Cancelling a batch mid-flight releases what it had reserved.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from tests.support.fake_batches import BatchBehaviour
from tests.support.fake_provider import FakeProvider
from tests.support.graphql import GraphQLClient
from tests.support.processing import create_source, interview, pk, register_fake_model
from tests.support.waiting import wait_for

BATCH_MODEL = "fake-batched"
LIVE_MODEL = "fake-live"
PRICES = ("2", "6")  # per million tokens, interactive; batch is half (MMOS_BATCH_DISCOUNTS)
MILLION = Decimal(1_000_000)

START = """mutation($input: StartMultiModelProcessingInput!) {
  startMultiModelProcessing(input: $input) { __typename
    ... on StartMultiModelProcessingPayload { batches { id model mode } }
    ... on ValidationError { message fieldErrors { field message } } } }"""
RUN = """query($id: ID!) { batch(id: $id) { status mode costUsd runs { id status chunkCount
  chunksDone costUsd inputTokens outputTokens llmCalls
  providerBatches { provider providerBatchId status providerStatus chunks polls error } } } }"""
CANCEL = """mutation($id: ID!) { cancelBatch(input: {batchId: $id}) { __typename } }"""


@pytest.fixture
def fast_polls(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "batch_poll_seconds", 0.2)
    monkeypatch.setattr(settings, "chunk_max_tokens", 300)  # several chunks per source


async def models(gql: GraphQLClient, provider: FakeProvider) -> None:
    for name in (BATCH_MODEL, LIVE_MODEL):
        await register_fake_model(gql, provider, name=name, litellm_model=f"openai/{name}",
                                  prices=PRICES)


async def start(gql: GraphQLClient, source: str, model: str, mode: str) -> str:
    body = await gql(START, {"input": {"sourceId": source, "models": [model], "mode": mode}})
    payload = body["data"]["startMultiModelProcessing"]
    assert payload["__typename"] == "StartMultiModelProcessingPayload", payload
    [batch] = payload["batches"]
    assert batch["mode"] == mode
    return str(batch["id"])


async def finished(gql: GraphQLClient, batch_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        batch = (await gql(RUN, {"id": batch_id}))["data"]["batch"]
        return batch if batch["status"] in ("COMPLETED", "FAILED", "CANCELLED") else None

    return await wait_for(done, timeout=90, interval=0.2)


async def fragments(processing: Any, batch_id: str) -> list[tuple[Any, ...]]:
    async with processing.read() as session:
        rows = await session.execute(sa.text(
            "SELECT chunk_index, char_start, char_end, content, category, fragment_type,"
            " grounding FROM fragments WHERE batch_id = :b ORDER BY chunk_index, ordinal"),
            {"b": pk(batch_id)})
        return [tuple(r) for r in rows]


async def ledger(processing: Any, run_id: int) -> list[Any]:
    async with processing.read() as session:
        return list((await session.execute(sa.text(
            "SELECT call_kind, status, actual_usd, input_tokens, output_tokens FROM budget_ledger"
            " WHERE run_id = :r ORDER BY id"), {"r": run_id})).all())


def batch_cost(input_tokens: int, output_tokens: int) -> Decimal:
    return (input_tokens * Decimal(1) + output_tokens * Decimal(3)) / MILLION


async def test_a_batch_run_gives_the_interactive_fragments_at_the_batch_price(
        engine_gql: GraphQLClient, processing: Any, provider: FakeProvider,
        fast_polls: None) -> None:
    gql = engine_gql
    await models(gql, provider)
    sources = [await create_source(gql, f"B{i}", interview(f"B{i}", 30)) for i in range(3)]
    # When: the same three sources, in BATCH mode and interactively
    batched = [await start(gql, s, BATCH_MODEL, "BATCH") for s in sources]
    live = [await start(gql, s, LIVE_MODEL, "INTERACTIVE") for s in sources]
    for batch_id in [*batched, *live]:
        assert (await finished(gql, batch_id))["status"] == "COMPLETED"
    # Then: the same fragments, chunk for chunk
    for b, i in zip(batched, live, strict=True):
        assert await fragments(processing, b) == await fragments(processing, i)
        assert await fragments(processing, b)
    # Then: one provider batch per run, holding every chunk; no chat call for them
    submitted = provider.batches.created
    assert len(submitted) == 3
    for batch_id in batched:
        batch = (await gql(RUN, {"id": batch_id}))["data"]["batch"]
        [run] = batch["runs"]
        assert run["chunkCount"] > 1 and run["chunksDone"] == run["chunkCount"]
        [sent] = run["providerBatches"]
        assert (sent["status"], sent["providerStatus"]) == ("COLLECTED", "completed")
        assert sent["chunks"] == list(range(run["chunkCount"]))
        assert sent["error"] is None
        # Then: the cost is Σ usage × batch price, exactly, call by call and for the run
        rows = await ledger(processing, pk(run["id"]))
        assert [r.call_kind for r in rows] == ["batch"] * run["chunkCount"]
        assert all(r.status == "settled" for r in rows)
        for r in rows:
            assert r.actual_usd == batch_cost(r.input_tokens, r.output_tokens)
        assert Decimal(run["costUsd"]) == sum((r.actual_usd for r in rows), Decimal(0)) == \
            batch_cost(run["inputTokens"], run["outputTokens"])
        assert run["llmCalls"] == run["chunkCount"]
        # A progress event for each result that came back
        async with processing.read() as session:
            done = (await session.execute(sa.text(
                "SELECT count(*) FROM batch_events WHERE batch_id = :b AND kind = 'CHUNK_DONE'"),
                {"b": pk(batch_id)})).scalar_one()
        assert done == run["chunkCount"]
    # Every chunk was answered once, through the batches: no interactive call was made.
    chunk_counts = [(await gql(RUN, {"id": b}))["data"]["batch"]["runs"][0]["chunkCount"]
                    for b in batched]
    assert len([r for r in provider.requests if r.model == BATCH_MODEL]) == sum(chunk_counts)
    assert sum(len(b.custom_ids) for b in submitted) == sum(chunk_counts)
    # The interactive twin paid twice as much for the same usage.
    live_run = (await gql(RUN, {"id": live[0]}))["data"]["batch"]["runs"][0]
    batch_run = (await gql(RUN, {"id": batched[0]}))["data"]["batch"]["runs"][0]
    assert (live_run["inputTokens"], live_run["outputTokens"]) == \
        (batch_run["inputTokens"], batch_run["outputTokens"])
    assert Decimal(live_run["costUsd"]) == 2 * Decimal(batch_run["costUsd"])


async def test_an_expired_batch_resubmits_only_the_missing_chunks_and_charges_once(
        engine_gql: GraphQLClient, processing: Any, provider: FakeProvider,
        fast_polls: None) -> None:
    gql = engine_gql
    await models(gql, provider)
    source = await create_source(gql, "EXP", interview("EXP", 40))
    # Given: the first provider batch expires with two results; the next one completes
    provider.batches.queue(BatchBehaviour(expire_after=2), BatchBehaviour())
    batch_id = await start(gql, source, BATCH_MODEL, "BATCH")
    batch = await finished(gql, batch_id)
    [run] = batch["runs"]
    assert batch["status"] == "COMPLETED" and run["chunksDone"] == run["chunkCount"]
    first, second = run["providerBatches"]
    assert (first["providerStatus"], second["providerStatus"]) == ("expired", "completed")
    assert "batch_expired" in first["error"] or "could not be executed" in first["error"]
    # Then: the second submission holds exactly the chunks the first did not answer
    assert second["chunks"] == first["chunks"][2:]
    created = provider.batches.created
    assert [len(b.custom_ids) for b in created] == [run["chunkCount"], run["chunkCount"] - 2]
    assert set(created[0].custom_ids[:2]).isdisjoint(created[1].custom_ids)
    # Then: each chunk was charged once; the reservations of the missing ones were released
    rows = await ledger(processing, pk(run["id"]))
    settled = [r for r in rows if r.status == "settled"]
    assert len(settled) == run["chunkCount"]
    assert len([r for r in rows if r.status == "released"]) == run["chunkCount"] - 2
    assert Decimal(run["costUsd"]) == sum((r.actual_usd for r in settled), Decimal(0))
    assert run["llmCalls"] == run["chunkCount"]


async def test_a_chunk_failing_in_every_batch_fails_alone(
        engine_gql: GraphQLClient, processing: Any, provider: FakeProvider,
        fast_polls: None) -> None:
    gql = engine_gql
    await models(gql, provider)
    source = await create_source(gql, "FAIL", interview("FAIL", 40))
    provider.batches.behaviour = BatchBehaviour(fail={"chunk-1"})
    batch_id = await start(gql, source, BATCH_MODEL, "BATCH")
    batch = await finished(gql, batch_id)
    [run] = batch["runs"]
    assert run["status"] == "COMPLETED_WITH_ERRORS"
    assert len(run["providerBatches"]) == 3
    assert all(1 in b["chunks"] for b in run["providerBatches"])
    assert run["providerBatches"][1]["chunks"] == [1]
    rows = await ledger(processing, pk(run["id"]))
    assert len([r for r in rows if r.status == "settled"]) == run["chunkCount"] - 1
    assert len([r for r in rows if r.status == "released"]) == 3


async def test_a_model_without_a_batch_api_is_refused_at_once(
        engine_gql: GraphQLClient, processing: Any, provider: FakeProvider) -> None:
    gql = engine_gql
    await models(gql, provider)
    source = await create_source(gql, "NOB", interview("NOB", 10))
    body = await gql(START, {"input": {"sourceId": source, "models": [BATCH_MODEL, "rules-fast"],
                                       "mode": "BATCH"}})
    payload = body["data"]["startMultiModelProcessing"]
    assert payload["__typename"] == "ValidationError"
    [issue] = payload["fieldErrors"]
    assert issue["field"] == "input.models.1"
    assert "has no batch API" in issue["message"] and "INTERACTIVE" in issue["message"]
    async with processing.read() as session:
        assert (await session.execute(sa.text(
            "SELECT count(*) FROM processing_batches"))).scalar_one() == 0


async def test_cancelling_a_batch_in_flight_releases_its_reservations(
        engine_gql: GraphQLClient, processing: Any, provider: FakeProvider,
        fast_polls: None) -> None:
    gql = engine_gql
    await models(gql, provider)
    source = await create_source(gql, "CAN", interview("CAN", 30))
    provider.batches.behaviour = BatchBehaviour(delay_s=3600)  # never ends by itself
    batch_id = await start(gql, source, BATCH_MODEL, "BATCH")

    async def submitted() -> dict[str, Any] | None:
        runs = (await gql(RUN, {"id": batch_id}))["data"]["batch"]["runs"]
        sent = runs[0]["providerBatches"]
        return runs[0] if sent and sent[0]["status"] == "SUBMITTED" else None

    run = await wait_for(submitted, timeout=30)
    assert (await gql(CANCEL, {"id": batch_id}))["data"]["cancelBatch"]["__typename"] == \
        "CancelBatchPayload"
    rows = await ledger(processing, pk(run["id"]))
    assert rows and all(r.status == "released" for r in rows)
    async with processing.read() as session:
        reserved = (await session.execute(sa.text(
            "SELECT coalesce(sum(reserved_usd), 0) FROM budget_days"))).scalar_one()
        status = (await session.execute(sa.text(
            "SELECT status FROM provider_batches"))).scalar_one()
    assert reserved == 0
    assert status == "abandoned"

    # Then: a worker asks the provider to stop the batch
    async def stopped() -> bool:
        return provider.batches.created[0].status == "cancelled"

    await wait_for(stopped, timeout=30)


async def test_a_submission_the_provider_already_has_is_adopted_not_sent_again(
        engine_gql: GraphQLClient, processing: Any, provider: FakeProvider,
        fast_polls: None) -> None:
    gql = engine_gql
    await models(gql, provider)
    source = await create_source(gql, "ADOPT", interview("ADOPT", 30))
    # Given: the batch service is down: the submission is written (with its reservations),
    # but the worker cannot reach the provider
    provider.batches.unavailable = True
    batch_id = await start(gql, source, BATCH_MODEL, "BATCH")

    async def written() -> Any:
        async with processing.read() as session:
            return (await session.execute(sa.text(
                "SELECT id, idempotency_key, chunks FROM provider_batches"))).first()

    row = await wait_for(written, timeout=30)
    # Given: an earlier attempt had in fact reached the provider (its answer was lost)
    async with processing.read() as session:
        content = (await session.execute(sa.text("SELECT content FROM sources"))).scalar_one()
    lines = [{"custom_id": f"chunk-{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": BATCH_MODEL, "messages": [
                  {"role": "user", "content": content[:50]}], "max_tokens": 10}}
             for i in row.chunks]
    held = provider.batches.create(lines, {"mmos_submission": row.idempotency_key})
    # When: the service is back
    provider.batches.unavailable = False
    batch = await finished(gql, batch_id)
    # Then: the provider's batch was adopted, and nothing was sent twice
    assert len(provider.batches.created) == 1
    [run] = batch["runs"]
    [sent] = run["providerBatches"]
    assert sent["providerBatchId"] == held and sent["status"] == "COLLECTED"
    assert run["status"] == "COMPLETED"


async def test_the_worst_case_is_reserved_at_submission_or_the_run_waits_for_budget(
        engine_gql: GraphQLClient, processing: Any, provider: FakeProvider,
        fast_polls: None) -> None:
    from tests.integration.test_budget import set_daily_budget

    gql = engine_gql
    await models(gql, provider)
    source = await create_source(gql, "BUD", interview("BUD", 30))
    # Given: a daily budget below the batch's worst case
    await set_daily_budget(gql, "0.0001")
    batch_id = await start(gql, source, BATCH_MODEL, "BATCH")

    async def waiting() -> dict[str, Any] | None:
        run = (await gql(RUN, {"id": batch_id}))["data"]["batch"]["runs"][0]
        return run if run["status"] == "WAITING_BUDGET" else None

    run = await wait_for(waiting, timeout=30)
    # Then: nothing was submitted and nothing stays reserved
    assert provider.batches.created == [] and run["providerBatches"] == []
    assert await ledger(processing, pk(run["id"])) == []
    # When: the budget covers the worst case (at the batch price), the run goes on
    await set_daily_budget(gql, "5")
    batch = await finished(gql, batch_id)
    [run] = batch["runs"]
    assert run["status"] == "COMPLETED"
    async with processing.read() as session:
        rows = (await session.execute(sa.text(
            "SELECT reserved_usd, actual_usd FROM budget_ledger WHERE run_id = :r"),
            {"r": pk(run["id"])})).all()
    assert len(rows) == run["chunkCount"]
    # Each chunk's worst case (its prompt and every output token, at the batch price) held
    # until its result was settled for less.
    assert all(r.reserved_usd >= r.actual_usd > 0 for r in rows)


async def test_a_provider_that_cannot_list_its_batches_is_still_submitted_to(
        engine_gql: GraphQLClient, processing: Any, provider: FakeProvider,
        fast_polls: None) -> None:
    gql = engine_gql
    await models(gql, provider)
    source = await create_source(gql, "NOLIST", interview("NOLIST", 20))
    provider.batches.no_listing = True
    batch = await finished(gql, await start(gql, source, BATCH_MODEL, "BATCH"))
    [run] = batch["runs"]
    assert run["status"] == "COMPLETED" and len(provider.batches.created) == 1


async def test_a_delayed_wake_up_that_never_claimed_its_job_is_sent_again_by_the_sweeper(
        engine_gql: GraphQLClient, processing: Any) -> None:
    from db.jobs import JobQueue

    async with processing.transaction() as session:
        queue = JobQueue(session)
        lost = await queue.enqueue(kind="extract_run", priority=10)
        on_time = await queue.enqueue(kind="extract_run", priority=10)
        later = await queue.enqueue(kind="extract_run", priority=10)
        # Given: each was woken for a later time; `lost`'s time passed 5 s ago with no claim,
        # `on_time`'s just passed (its wake-up may still be on its way), `later`'s is to come
        await session.execute(sa.text(
            "UPDATE processing_queue SET message_sent_at = now() - interval '10 seconds',"
            " available_at = now() - CASE id WHEN :lost THEN interval '5 seconds'"
            " WHEN :on_time THEN interval '0.5 seconds' ELSE interval '-30 seconds' END"),
            {"lost": lost, "on_time": on_time})
    async with processing.read() as session:
        found = await JobQueue(session).unsent(older_than_seconds=60)
    assert lost in found and on_time not in found and later not in found
