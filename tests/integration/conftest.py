"""Integration fixtures: in-process workers on the stub broker, the fake provider, GraphQL over
the processing runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.support.database import reset_database
from tests.support.fake_provider import FakeProvider
from tests.support.graphql import GraphQLClient
from tests.support.processing import wait_until_idle


@pytest.fixture(scope="session")
async def processing(runtime: Any, database_url: str) -> AsyncIterator[Any]:
    """The runtime with a dispatcher and Dramatiq worker threads in this process."""
    from api.container import attach_processing

    await attach_processing(runtime, database_url, in_process_worker=True)
    yield runtime
    worker, runtime.worker = runtime.worker, None
    if worker is not None:
        await worker.aclose()


@pytest.fixture(scope="session")
def fake_provider() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


@pytest.fixture
def provider(fake_provider: FakeProvider) -> FakeProvider:
    fake_provider.reset()
    return fake_provider


@pytest.fixture
async def engine_gql(processing: Any, settings: Any,
                     provider: FakeProvider) -> AsyncIterator[GraphQLClient]:
    """GraphQL over the ASGI app bound to the processing runtime; the workers idle at the end."""
    from api.app import create_app

    await reset_database(processing)
    app = create_app(settings, runtime=processing)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield GraphQLClient(http)
    # A job still running would write into the next test's freshly emptied tables.
    await wait_until_idle(processing)


@pytest.fixture
def small_chunks(settings: Any, monkeypatch: pytest.MonkeyPatch) -> int:
    """Chunks of about 300 tokens (the workers share the session settings): short sources
    then span several chunks."""
    monkeypatch.setattr(settings, "chunk_max_tokens", 300)
    return 300


@pytest.fixture
def one_source_sample(settings: Any, monkeypatch: pytest.MonkeyPatch) -> int:
    """processBatch strategies sample a single source before deciding."""
    monkeypatch.setattr(settings, "strategy_sample_sources", 1)
    return 1
