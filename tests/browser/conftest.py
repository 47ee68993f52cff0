"""Fixtures of the review page tests: the live server, Chromium, a source both models ran."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.browser import LiveServer, chromium_or_skip, live_server
from tests.support.graphql import GraphQLClient
from tests.support.processing import create_source, interview, start, wait_batch
from tests.support.waiting import wait_for

OFFLINE_MODELS = ["rules-fast", "rules-thorough"]
COMPARISON = """query($id: ID!) { comparison(sourceId: $id) { pendingRuns
  entries { model runId qualityScore costPerFragment } } }"""


@pytest.fixture(scope="session")
def chromium_path() -> str:
    return chromium_or_skip()


@pytest.fixture
async def browser(chromium_path: str) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium_path,
                                                    args=["--no-sandbox"])
        yield launched
        await launched.close()


@pytest.fixture
async def server(engine_gql: GraphQLClient, processing: Any,
                 settings: Any) -> AsyncIterator[LiveServer]:
    """The app over real HTTP, on the processing runtime (a clean database)."""
    from api.app import create_app

    async with live_server(create_app(settings, runtime=processing)) as running:
        yield running


@pytest.fixture
async def page(browser: Any, server: LiveServer) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = await context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    await context.close()
    assert not errors, errors  # no script error, whatever the test did


@pytest.fixture
async def processed_source(engine_gql: GraphQLClient) -> dict[str, Any]:
    """A source both offline models processed, measured: its id and comparison."""
    source_id = await create_source(engine_gql, "REVIEW", interview("REVIEW", 40))
    payload = await start(engine_gql, source_id, OFFLINE_MODELS)
    assert payload["__typename"] == "StartMultiModelProcessingPayload", payload
    for batch in payload["batches"]:
        await wait_batch(engine_gql, batch["id"])

    async def measured() -> dict[str, Any] | None:
        body = await engine_gql(COMPARISON, {"id": source_id})
        comparison = body["data"]["comparison"]
        done = len(comparison["entries"]) == 2 and comparison["pendingRuns"] == 0
        return comparison if done else None

    comparison = await wait_for(measured, timeout=30)
    return {"id": source_id, "comparison": comparison}
