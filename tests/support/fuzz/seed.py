"""A small real dataset for the fuzzer to aim at: sources processed by the offline models,
tags, relationships and a verification, plus the pools of IDs and names that reach them.

Processing requests made while fuzzing are held (`HeldJobs`): they create rows but never run,
so no model is ever called for fuzzed input. The seed's own jobs run inline with a client that
refuses anything but the built-in offline models.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import httpx
import sqlalchemy as sa

from api.demo_data import load_samples
from domain.llm import DeterministicModelError, ModelRequest, ModelResponse, ModelSpec
from tests.support.fuzz.scalars import Pools

LOCAL_MODELS = ("rules-fast", "rules-thorough")
SEED_OWNER = "fuzz-seed"

# Node type name → the table holding its rows.
NODE_TABLES = {"Source": "sources", "Batch": "processing_batches", "Run": "source_processing",
               "Fragment": "fragments", "Tag": "tags", "Relationship": "fragment_relationships"}

CREATE = """mutation($input: CreateSourceInput!) { createSource(input: $input) {
  __typename ... on CreateSourcePayload { source { id } } } }"""
START = """mutation($input: StartMultiModelProcessingInput!) {
  startMultiModelProcessing(input: $input) { __typename } }"""
SHORT_POST = ("I never plan my week. Because surprises keep me curious, I leave Fridays empty. "
              "But when a deadline comes, I work through the night and I enjoy it.")


class HeldJobs:
    """A dispatcher that marks jobs as sent and keeps them: they never reach a worker."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    async def send(self, job_ids: Sequence[int], actor: str = "process_job",
                   delay_ms: int = 0) -> None:
        from db.jobs import JobQueue

        if job_ids:
            async with self.runtime.transaction() as session:
                await JobQueue(session).mark_sent(list(job_ids))

    async def cancel_all(self) -> None:
        """Cancel every job still waiting, so no worker of this process ever picks one up."""
        async with self.runtime.transaction() as session:
            await session.execute(sa.text(
                "UPDATE processing_queue SET status = 'cancelled', updated_at = now()"
                " WHERE status IN ('waiting', 'waiting_budget')"))


class OfflineOnly:
    """The production gateway, restricted to the free built-in extractors (`mmos/…`)."""

    def __init__(self) -> None:
        from workers.gateway import LiteLLMClient

        self.inner = LiteLLMClient()

    def _check(self, model: ModelSpec) -> None:
        if not model.litellm_model.startswith("mmos/"):
            raise DeterministicModelError(f"the fuzz seed only runs offline models, not {model}")

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self._check(request.model)
        return await self.inner.complete(request)

    def worst_case_cost(self, request: ModelRequest, prompt_tokens: int, *,
                        batch: bool = False) -> Decimal | None:
        return self.inner.worst_case_cost(request, prompt_tokens, batch=batch)

    def count_tokens(self, model: ModelSpec, text: str) -> int:
        return self.inner.count_tokens(model, text)


async def _gql(http: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = await http.post("/graphql", json={"query": query, "variables": variables})
    body: dict[str, Any] = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    return body["data"]


async def _create_sources(http: httpx.AsyncClient) -> list[str]:
    inputs: list[dict[str, Any]] = [{**sample, "sourceType": sample["sourceType"].upper()}
                                    for sample in load_samples()]
    inputs.append({"sourceCode": "FUZZ_SOCIAL_001", "title": "A short post",
                   "sourceType": "SOCIAL_MEDIA", "content": SHORT_POST, "language": "en"})
    ids = []
    for source in inputs:
        data = await _gql(http, CREATE, {"input": source})
        assert data["createSource"]["__typename"] == "CreateSourcePayload", data
        ids.append(data["createSource"]["source"]["id"])
    return ids


async def _run_jobs_inline(runtime: Any) -> None:
    from db.jobs import JobQueue
    from workers.pipeline import Pipeline

    pipeline = Pipeline(runtime, OfflineOnly(), SEED_OWNER)
    while True:
        async with runtime.transaction() as session:
            job = await JobQueue(session).claim(SEED_OWNER, 120)
        if job is None:
            return
        await pipeline.run_job(job)


async def _link_fragments(runtime: Any) -> None:
    """Tags, relationships and one verification on the first fragments, written directly."""
    statements = [
        "INSERT INTO tags (name, category) VALUES ('curiosity', 'trait'), ('work', NULL),"
        " ('família', 'theme') ON CONFLICT (name) DO NOTHING",
        "INSERT INTO fragment_tags (fragment_id, tag_id) SELECT f.id, t.id FROM"
        " (SELECT id FROM fragments ORDER BY id LIMIT 6) f CROSS JOIN tags t"
        " WHERE t.name IN ('curiosity', 'work', 'família') ON CONFLICT DO NOTHING",
        "INSERT INTO fragment_relationships (fragment_id, related_fragment_id, relationship_type,"
        " confidence, notes, created_by) SELECT a.id, a.id + 1, kind, 0.7, 'seed', 'fuzz'"
        " FROM (SELECT id FROM fragments ORDER BY id LIMIT 4) a,"
        " unnest(ARRAY['supports', 'contradicts']) kind"
        " WHERE EXISTS (SELECT 1 FROM fragments b WHERE b.id = a.id + 1) ON CONFLICT DO NOTHING",
        "INSERT INTO verification_events (fragment_id, decision, previous_status, reviewer)"
        " SELECT id, 'verified', 'unverified', 'fuzz' FROM fragments ORDER BY id LIMIT 2",
        "UPDATE fragments SET verification_status = 'verified', verified_by = 'fuzz',"
        " verified_at = now() WHERE id IN (SELECT fragment_id FROM verification_events)",
    ]
    async with runtime.transaction() as session:
        for statement in statements:
            await session.execute(sa.text(statement))


def _global(type_name: str, pk: int) -> str:
    return base64.b64encode(f"{type_name}:{pk}".encode()).decode()


async def pools_of(runtime: Any, node_types: Sequence[str]) -> Pools:
    """Global and numeric IDs of (a few) rows of every node type, and names that exist."""
    ids: list[str] = []
    names: list[str] = list(LOCAL_MODELS)
    async with runtime.read() as session:
        for type_name in node_types:
            table = NODE_TABLES.get(type_name)
            if table is None:
                continue
            rows = (await session.execute(sa.text(
                f"SELECT id FROM {table} ORDER BY id LIMIT 5"))).scalars().all()
            ids += [_global(type_name, pk) for pk in rows] + [str(pk) for pk in rows[:2]]
        for query in ("SELECT source_code FROM sources", "SELECT name FROM tags",
                      "SELECT fragment_code FROM fragments ORDER BY id LIMIT 3",
                      "SELECT group_id::text FROM processing_batches LIMIT 1"):
            names += [str(value) for value in (await session.execute(sa.text(query))).scalars()]
    return Pools(node_types=tuple(node_types), ids=tuple(ids), names=tuple(names))


async def seed(http: httpx.AsyncClient, runtime: Any, node_types: Sequence[str]) -> Pools:
    """Create and process the sample sources, link some fragments, and pool their IDs."""
    source_ids = await _create_sources(http)
    for source_id, models in zip(source_ids, (LOCAL_MODELS, LOCAL_MODELS[:1]), strict=False):
        data = await _gql(http, START, {"input": {"sourceId": source_id,
                                                  "models": list(models)}})
        assert data["startMultiModelProcessing"]["__typename"].endswith("Payload"), data
    await _run_jobs_inline(runtime)
    await _link_fragments(runtime)
    return await pools_of(runtime, node_types)
