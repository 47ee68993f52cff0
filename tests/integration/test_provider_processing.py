"""The extraction engine against the loopback fake provider: real HTTP through LiteLLM, the
in-process workers, real PostgreSQL. Cost is exact, quotes are grounded, reruns replace.

The helpers live in tests/support/processing.py, the `engine_gql` and `small_chunks` fixtures in
tests/integration/conftest.py; test_faults.py, test_budget.py and others share them.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from tests.support.fake_provider import FakeProvider, Scripted, inventing_responder
from tests.support.graphql import GraphQLClient
from tests.support.processing import (
    BUNDLED_MODEL,
    BUNDLED_PRICES,
    FAKE_MODEL,
    UPDATE_MODEL,
    budget,
    create_source,
    fragments_of,
    interview,
    pk,
    price_of_call,
    register_fake_model,
    rows,
    start_one_batch,
    wait_batch,
    with_usage,
)

# -- cost ------------------------------------------------------------------------------------------


async def _ledger_calls(runtime: Any, batch_id: str) -> list[Any]:
    return await rows(runtime, "SELECT status, actual_usd, reserved_usd, input_tokens,"
                               " output_tokens, outcome FROM budget_ledger WHERE batch_id = :b"
                               " ORDER BY id", b=pk(batch_id))


async def _run_and_check_cost(gql: GraphQLClient, runtime: Any, provider: FakeProvider,
                              tag: str, prices: tuple[Decimal, Decimal]) -> Decimal:
    # Given: a two-chunk source, a first answer that is a 429 asking to retry at once
    content = interview(tag, 24)
    source_id = await create_source(gql, tag, content)
    provider.set_default(with_usage(prompt_tokens=1234, completion_tokens=567))
    provider.script(BUNDLED_MODEL, Scripted(fault="429", retry_after="0"))
    # When
    batch_id = await start_one_batch(gql, source_id)
    state = await wait_batch(gql, batch_id)
    # Then: every call the provider received is one ledger row; the 429 costs nothing
    assert state["status"] == "COMPLETED", state
    run = state["runs"][0]
    assert run["chunkCount"] >= 2
    calls = await _ledger_calls(runtime, batch_id)
    received = provider.requests_for(BUNDLED_MODEL)
    assert len(calls) == len(received) == run["llmCalls"] == run["chunkCount"] + 1
    failed = [call for call in calls if call.status == "released"]
    assert len(failed) == 1 and failed[0].actual_usd == 0 and "429" in failed[0].outcome
    settled = [call for call in calls if call.status == "settled"]
    per_call = price_of_call(prices, 1234, 567)
    assert all(call.actual_usd == per_call for call in settled)
    # Then: run, batch and day add up to Σ price × usage, to the last decimal
    expected = per_call * len(settled)
    assert Decimal(run["costUsd"]) == expected
    assert Decimal(state["costUsd"]) == expected
    assert (run["inputTokens"], run["outputTokens"]) == (1234 * len(settled), 567 * len(settled))
    assert Decimal(state["reservedUsd"]) == 0
    return expected


async def test_cost_is_bundled_price_times_usage_including_the_rate_limited_retry(
        engine_gql: GraphQLClient, processing: Any, provider: FakeProvider,
        small_chunks: int) -> None:
    gql = engine_gql
    # Given: fake-mini priced from LiteLLM's bundled map of gpt-4o-mini
    model = await register_fake_model(gql, provider)
    assert (model["priceSource"], Decimal(model["inputCostPerMillion"]),
            Decimal(model["outputCostPerMillion"])) == ("litellm", *BUNDLED_PRICES)
    # When / Then
    spent = await _run_and_check_cost(gql, processing, provider, "COST_BUNDLED",
                                      BUNDLED_PRICES)
    day = await budget(gql)
    assert (Decimal(day["spentUsd"]), Decimal(day["reservedUsd"])) == (spent, 0)


async def test_catalog_price_override_is_what_the_run_costs(
        engine_gql: GraphQLClient, processing: Any, provider: FakeProvider,
        small_chunks: int) -> None:
    gql = engine_gql
    # Given: the operator overrides fake-mini's prices
    await register_fake_model(gql, provider)
    updated = (await gql(UPDATE_MODEL, {"input": {
        "name": FAKE_MODEL, "inputCostPerMillion": "2.5", "outputCostPerMillion": "10"}}))
    model = updated["data"]["updateModel"]["model"]
    assert model["priceSource"] == "override"
    # When / Then
    await _run_and_check_cost(gql, processing, provider, "COST_OVERRIDE",
                              (Decimal("2.5"), Decimal("10")))


# -- grounding -------------------------------------------------------------------------------------


async def test_invented_quotes_are_stored_ungrounded_and_real_ones_exact(
        engine_gql: GraphQLClient, provider: FakeProvider) -> None:
    gql = engine_gql
    # Given: a provider that adds a fragment whose quote is nowhere in the source
    await register_fake_model(gql, provider)
    invented = "I secretly bought a lighthouse in Norway with my savings."
    provider.set_default(inventing_responder(invented))
    content = interview("GROUNDING", 14)
    source_id = await create_source(gql, "GROUNDING", content)
    # When
    batch_id = await start_one_batch(gql, source_id)
    state = await wait_batch(gql, batch_id)
    # Then
    assert state["status"] == "COMPLETED", state
    fragments = await fragments_of(gql, batch_id)
    ungrounded = [f for f in fragments if f["grounding"] == "UNGROUNDED"]
    assert [f["quote"] for f in ungrounded] == [invented]
    assert ungrounded[0]["charStart"] is None and ungrounded[0]["charEnd"] is None
    exact = [f for f in fragments if f["grounding"] == "EXACT"]
    assert len(exact) == len(fragments) - 1 == 15
    for fragment in exact:
        assert content[fragment["charStart"]:fragment["charEnd"]] == fragment["quote"]
    run = state["runs"][0]
    assert (run["fragmentCount"], run["groundedFragmentCount"]) == (16, 15)


# -- idempotency -----------------------------------------------------------------------------------


async def _chunk_fragments(runtime: Any, run_id: int) -> list[Any]:
    return await rows(runtime, "SELECT chunk_index, ordinal, fragment_code, char_start"
                               " FROM fragments WHERE run_id = :r ORDER BY chunk_index, ordinal",
                      r=run_id)


async def test_saving_the_same_chunk_twice_replaces_its_fragments(
        engine_gql: GraphQLClient, processing: Any, provider: FakeProvider) -> None:
    from db.processing import ChunkUsage, ProcessingRepository
    from domain.chunking import Chunk
    from domain.extraction import prepare_fragments
    from domain.parsing import parse_answer
    from tests.support.fake_provider import answer_json, fragment_for, sentences_of

    gql = engine_gql
    # Given: a completed single-chunk run
    await register_fake_model(gql, provider)
    content = interview("TWICE", 10)
    source_id = await create_source(gql, "TWICE", content)
    batch_id = await start_one_batch(gql, source_id)
    state = await wait_batch(gql, batch_id)
    assert state["status"] == "COMPLETED", state
    run_id = pk(state["runs"][0]["id"])
    before = await _chunk_fragments(processing, run_id)
    # When: the same chunk's answer is saved twice more (a redelivered message)
    answer = parse_answer(answer_json([fragment_for(s, i)
                                       for i, s in enumerate(sentences_of(content))]))
    chunk = Chunk(0, 0, len(content), content)
    prepared = prepare_fragments(content, chunk, answer.fragments, language="en")
    for _ in range(2):
        async with processing.transaction() as session:
            repository = ProcessingRepository(session)
            ctx = await repository.run_context(run_id)
            assert ctx is not None
            await repository.save_chunk(ctx, chunk_index=0, char_start=0, char_end=len(content),
                                        fragments=prepared,
                                        usage=ChunkUsage(0, 0, Decimal(0), 0, 0))
    # Then: the chunk holds one copy of its fragments under fresh, unique codes
    after = await _chunk_fragments(processing, run_id)
    assert len(after) == len(before) == len(prepared)
    assert [(r.chunk_index, r.ordinal, r.char_start) for r in after] == [
        (r.chunk_index, r.ordinal, r.char_start) for r in before]
    codes = [r.fragment_code for r in after]
    assert len(set(codes)) == len(codes)
    assert not set(codes) & {r.fragment_code for r in before}
    chunks = await rows(processing, "SELECT count(*) AS n FROM run_chunks WHERE run_id = :r",
                        r=run_id)
    assert chunks[0].n == 1


async def test_rerunning_a_finished_run_replaces_fragments_instead_of_duplicating(
        engine_gql: GraphQLClient, processing: Any, provider: FakeProvider,
        small_chunks: int) -> None:
    gql = engine_gql
    # Given: a completed three-chunk run
    await register_fake_model(gql, provider)
    content = interview("RERUN", 36)
    source_id = await create_source(gql, "RERUN", content)
    batch_id = await start_one_batch(gql, source_id)
    first = await wait_batch(gql, batch_id)
    assert first["status"] == "COMPLETED", first
    run = first["runs"][0]
    run_id = pk(run["id"])
    assert run["chunkCount"] >= 3
    before = await _chunk_fragments(processing, run_id)
    # When: its chunks are forgotten and the run is delivered again (at-least-once delivery)
    async with processing.transaction() as session:
        await session.execute(sa.text("DELETE FROM run_chunks WHERE run_id = :r"), {"r": run_id})
        await session.execute(sa.text("UPDATE source_processing SET status = 'failed'"
                                      " WHERE id = :r"), {"r": run_id})
    retried = await gql("""mutation($id: ID!) { retryRun(input: {runId: $id}) { __typename } }""",
                        {"id": run["id"]})
    assert retried["data"]["retryRun"]["__typename"] == "RetryRunPayload", retried
    second = await wait_batch(gql, batch_id)
    # Then: every chunk ran again, and each (chunk, ordinal) is stored once
    assert second["status"] == "COMPLETED", second
    assert len(provider.requests_for(BUNDLED_MODEL)) == 2 * run["chunkCount"]
    after = await _chunk_fragments(processing, run_id)
    assert [(r.chunk_index, r.ordinal) for r in after] == [
        (r.chunk_index, r.ordinal) for r in before]
    assert second["runs"][0]["fragmentCount"] == len(after) == run["fragmentCount"]
    codes = [r.fragment_code for r in after]
    assert len(set(codes)) == len(codes)
    chunks = await rows(processing, "SELECT count(*) AS n FROM run_chunks WHERE run_id = :r",
                        r=run_id)
    assert chunks[0].n == run["chunkCount"]


# -- runs of one source ending together ------------------------------------------------------------


async def _queued_runs(runtime: Any, source_id: int, models: list[str]) -> list[int]:
    """One run per model on the source, created directly and kept away from the workers."""
    from db.processing import ProcessingRepository
    from db.tables import ModelRow, SourceRow

    async with runtime.transaction() as session:
        repository = ProcessingRepository(session)
        source = await session.get(SourceRow, source_id)
        run_ids = []
        for name in models:
            model = await session.get(ModelRow, name)
            created = await repository.create_batch(
                group_id="together", model=model, sources=[source], strategy=None, config={},
                budget_usd=None, max_attempts=1)
            run_ids += created.run_ids
        await session.execute(sa.text("UPDATE processing_queue SET status = 'done'"))
        await session.execute(sa.text("UPDATE source_processing SET status = 'processing'"))
    return run_ids


async def test_two_runs_of_a_source_ending_together_leave_it_processed(
        engine_gql: GraphQLClient, processing: Any, provider: FakeProvider) -> None:
    from db.processing import ProcessingRepository

    gql = engine_gql
    # Given: two models processing one source
    await register_fake_model(gql, provider)
    await register_fake_model(gql, provider, name="fake-mini-2")
    source_id = await create_source(gql, "TOGETHER", interview("TOGETHER", 6))
    first, second = await _queued_runs(processing, pk(source_id), [FAKE_MODEL, "fake-mini-2"])

    async def finish(session: Any, run_id: int) -> None:
        repository = ProcessingRepository(session)
        ctx = await repository.run_context(run_id)
        assert ctx is not None
        await repository.finish_run(ctx, "completed")

    # When: both runs end at the same time, the first one committing last
    async with processing.transaction() as session:
        await finish(session, first)

        async def other() -> None:
            async with processing.transaction() as other_session:
                await finish(other_session, second)

        ending = asyncio.create_task(other())
        await asyncio.sleep(0.3)
        # (the second ending waits for the first: it must not decide on a stale snapshot)
        assert not ending.done()
    await ending
    # Then
    status = (await gql("query($id: ID!) { source(id: $id) { status } }",
                        {"id": source_id}))["data"]["source"]["status"]
    assert status == "PROCESSED"
