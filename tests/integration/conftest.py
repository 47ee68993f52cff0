"""Integration fixtures: chunk sizes, strategy samples, a throwaway database. The processing
runtime, the fake provider and `engine_gql` are in tests/conftest.py (tests/security uses them
too)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url


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


@pytest.fixture
def throwaway_url(database_url: str) -> Iterator[str]:
    """A new empty database on the session's server, dropped afterwards."""
    name = f"mmos_throwaway_{uuid.uuid4().hex[:10]}"
    session = make_url(database_url)
    admin = session.set(database="postgres")
    asyncio.run(_admin(admin, f"CREATE DATABASE {name}"))
    try:
        yield session.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


async def _admin(url: sa.URL, statement: str) -> None:
    import asyncpg

    # asyncpg speaks libpq URLs: same server (TCP or unix socket), no SQLAlchemy driver tag.
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A Redis database of this module alone (flushed by the tests that need it clean)."""
    from tests.support.workers import DEFAULT_TEST_REDIS, claimed_redis_database, redis_reachable

    if not redis_reachable(os.environ.get("MMOS_TEST_REDIS_URL", DEFAULT_TEST_REDIS)):
        pytest.skip("no Redis answers for these tests")
    with claimed_redis_database() as url:
        yield url


@pytest.fixture
async def quiet_in_process_worker(runtime: Any, database_url: str) -> AsyncIterator[None]:
    """No in-process worker while the test runs, restored after: its sweeper shares this
    database (it would re-queue and wake jobs through the stub broker, so a job could run in
    this process instead of a worker process under test), and its heartbeat (this process's
    environment) would count among the workers a start checks."""
    worker, runtime.worker = runtime.worker, None
    if worker is None:
        yield
        return
    await worker.aclose()
    try:
        yield
    finally:
        from api.container import attach_processing

        await attach_processing(runtime, database_url, in_process_worker=True)
