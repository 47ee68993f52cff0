"""The quality service: rows written when runs end, re-measured when the reference moves, and
nothing lost when a process dies between a run's end and its measurement."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from domain.services import quality
from tests.support.fake_provider import FakeProvider
from tests.support.graphql import GraphQLClient
from tests.support.processing import interview, register_fake_model, rows
from tests.support.scenarios import (
    CREATE_SOURCE,
    EQUAL,
    HALF,
    PRICES,
    REFERENCE,
    START,
    behaviour,
)
from tests.support.strategies import plan_batches, prepare, process, sources, steps
from tests.support.waiting import wait_for

COMPARISON = """query($id: ID!) { comparison(sourceId: $id) { pendingRuns reference { kind model }
  entries { model qualityScore provisional precision f1 reference { kind model } } } }"""


async def setup(gql: GraphQLClient, provider: FakeProvider, models: list[str]) -> str:
    provider.set_default(behaviour)
    for name in models:
        await register_fake_model(gql, provider, name=name, litellm_model=f"openai/{name}",
                                  prices=PRICES[name])
    created = await gql(CREATE_SOURCE, {"input": {
        "sourceCode": "QS_1", "title": "Quality", "sourceType": "INTERVIEW",
        "content": interview("QS", 30), "language": "en"}})
    return str(created["data"]["createSource"]["source"]["id"])


async def run_models(gql: GraphQLClient, source_id: str, models: list[str],
                     measured: int) -> dict[str, dict[str, Any]]:
    await gql(START, {"input": {"sourceId": source_id, "models": models}})

    async def done() -> dict[str, Any] | None:
        found = (await gql(COMPARISON, {"id": source_id}))["data"]["comparison"]
        ready = found["pendingRuns"] == 0 and len(found["entries"]) == measured
        return found if ready else None

    comparison = await wait_for(done, timeout=60, interval=0.2)
    return {e["model"]: e for e in comparison["entries"]}


async def test_a_lone_run_is_provisional_until_a_dearer_model_becomes_its_reference(
        engine_gql: GraphQLClient, provider: FakeProvider, small_chunks: int) -> None:
    gql = engine_gql
    source_id = await setup(gql, provider, [HALF, REFERENCE])
    alone = await run_models(gql, source_id, [HALF], measured=1)
    assert alone[HALF]["provisional"] is True
    assert alone[HALF]["reference"] == {"kind": "NONE", "model": None}
    # When: the dearer model runs on the same source
    both = await run_models(gql, source_id, [REFERENCE], measured=2)
    # Then: the cheap run was measured again, now against it
    assert both[HALF]["reference"] == {"kind": "REFERENCE_MODEL", "model": REFERENCE}
    assert both[HALF]["provisional"] is False
    assert both[HALF]["precision"] == 1.0 and both[HALF]["f1"] < 0.8
    assert both[HALF]["qualityScore"] != alone[HALF]["qualityScore"]


async def test_verified_fragments_become_the_reference_once_there_are_enough(
        engine_gql: GraphQLClient, processing: Any, provider: FakeProvider,
        small_chunks: int) -> None:
    gql = engine_gql
    source_id = await setup(gql, provider, [HALF, EQUAL])
    await run_models(gql, source_id, [HALF, EQUAL], measured=2)
    # Given: a reviewer verifies what the half model found and rejects one fragment that only
    # the other model found
    async with processing.transaction() as session:
        await session.execute(sa.text(
            "UPDATE fragments SET verification_status = 'verified' WHERE model_name = :m"
            " AND grounding <> 'ungrounded'"), {"m": HALF})
        await session.execute(sa.text(
            "UPDATE fragments SET verification_status = 'rejected' WHERE id = (SELECT min(f.id)"
            " FROM fragments f WHERE f.model_name = :m AND NOT EXISTS (SELECT 1 FROM fragments"
            " h WHERE h.model_name = :h AND h.char_start = f.char_start))"),
            {"m": EQUAL, "h": HALF})
    # When: the verification feature tells the quality service
    measured = await quality.recompute_source(processing.ports,
        int((await rows(processing, "SELECT id FROM sources"))[0].id))
    # Then
    assert measured == 2
    found = {e["model"]: e for e in (await gql(COMPARISON, {"id": source_id}))["data"][
        "comparison"]["entries"]}
    assert {e["reference"]["kind"] for e in found.values()} == {"VERIFIED"}
    assert found[HALF]["precision"] == 1.0 and found[HALF]["f1"] == 1.0
    assert found[EQUAL]["precision"] < 1.0  # its unverified finds and the rejected one


async def test_a_run_that_ended_unmeasured_is_measured_on_the_next_start(
        engine_gql: GraphQLClient, processing: Any, provider: FakeProvider,
        small_chunks: int) -> None:
    gql = engine_gql
    source_id = await setup(gql, provider, [HALF, EQUAL])
    await run_models(gql, source_id, [HALF, EQUAL], measured=2)
    async with processing.transaction() as session:
        await session.execute(sa.text("DELETE FROM model_performance"))
    # When: a runtime starts (its startup hook catches up)
    await quality.catch_up(processing.ports)
    # Then
    assert len(await rows(processing, "SELECT run_id FROM model_performance")) == 2


async def test_a_plan_step_left_pending_by_a_crash_is_taken_on_the_next_start(
        engine_gql: GraphQLClient, processing: Any, provider: FakeProvider,
        small_chunks: int, one_source_sample: int) -> None:
    gql = engine_gql
    await prepare(gql, provider, relevance=0.0, threshold=("INTERVIEW", 9.0))
    ids = await sources(gql, "INTERVIEW", ["K1", "K2"])
    # The worker's quality service is gone, as if its process died right after each run ended.
    run_finished = quality.run_finished

    async def nothing(*_: Any) -> None:
        return None

    quality.run_finished = nothing  # type: ignore[assignment]
    try:
        opened = await process(gql, ids, "PROGRESSIVE")
        group = opened[0]["groupId"]

        async def step_ended() -> bool:
            found = await rows(processing, "SELECT status FROM processing_batches"
                                           " WHERE group_id = :g", g=group)
            return all(b.status == "completed" for b in found)

        await wait_for(step_ended, timeout=60)
        # Nothing measured, nothing decided: the worker died before it could.
        assert await rows(processing, "SELECT 1 FROM model_performance") == []
    finally:
        quality.run_finished = run_finished  # type: ignore[assignment]
    # When: the next start catches up
    await quality.catch_up(processing.ports)
    # Then: the plan went on from where it stopped, through to its final step
    batches = await plan_batches(processing, group)
    assert steps(batches) == [(0, HALF, 1), (1, EQUAL, 1), (2, EQUAL, 1)]
