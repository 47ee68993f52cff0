"""Integration fixtures: chunk sizes, strategy samples, a throwaway database. The processing
runtime, the fake provider and `engine_gql` are in tests/conftest.py (tests/security uses them
too)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
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
