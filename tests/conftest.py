"""Shared fixtures: a real PostgreSQL database per test session, cleaned between tests."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlparse

import hypothesis  # noqa: F401  (imported early: a late import can crash CPython 3.11's AST at exit)
import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("MMOS_ENV", "test")

ADMIN_DSN = os.environ.get("MMOS_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")

# Tables emptied between tests; the catalog and counters are reset to their migrated state.
KEEP_TABLES = {"alembic_version"}


def _reachable(dsn: str) -> bool:
    parsed = urlparse(dsn)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 5432), 1):
            return True
    except OSError:
        return False


async def _admin(dsn: str, *statements: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, migrated database on the machine's PostgreSQL (pgserver when none answers)."""
    from db.migrate import upgrade_sync

    name = f"mmos_test_{uuid.uuid4().hex[:10]}"
    if _reachable(ADMIN_DSN):
        admin = ADMIN_DSN
        base = admin.rsplit("/", 1)[0]
        url = f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)
    else:
        from db.embedded import start_embedded

        embedded = start_embedded(tmp_path_factory.mktemp("pg"))
        admin = embedded.replace("postgresql+asyncpg://", "postgresql://").replace(
            "/mmos?", "/postgres?")
        url = embedded.replace("/mmos?", f"/{name}?")
    asyncio.run(_admin(admin, f"CREATE DATABASE {name}"))
    upgrade_sync(url)
    os.environ["MMOS_TEST_DATABASE_URL"] = url
    yield url
    asyncio.run(_admin(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(scope="session")
def settings(database_url: str) -> Any:
    from api.settings import Settings

    return Settings(env="test", database_url=database_url, _env_file=None)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
async def runtime(settings: Any, database_url: str) -> AsyncIterator[Any]:
    """The application runtime on the test session's event loop."""
    from api.bootstrap import start_runtime

    rt = await start_runtime(settings, database_url=database_url, migrate=False)
    yield rt
    await rt.close()


async def reset_database(runtime: Any) -> None:
    """Empty every data table and re-seed what migrations and startup seed."""
    import sqlalchemy as sa
    from sqlmodel import SQLModel

    tables = [t.name for t in SQLModel.metadata.sorted_tables if t.name not in KEEP_TABLES]
    async with runtime.engine.begin() as connection:
        await connection.execute(sa.text(
            "TRUNCATE " + ", ".join(tables) + " RESTART IDENTITY CASCADE"))
        await connection.execute(sa.text(
            "INSERT INTO fragment_code_counters (category_code, last_value) "
            "SELECT unnest(ARRAY['BIO','COG','COM','BEH','VAL','SOC','EMO','META','GEN']), 0"))
    from api.bootstrap import _STARTUP_HOOKS

    for hook in _STARTUP_HOOKS:
        await hook(runtime)


@pytest.fixture
async def db(runtime: Any) -> AsyncIterator[Any]:
    """A clean database for one test (yields the runtime)."""
    await reset_database(runtime)
    yield runtime


@pytest.fixture
async def client(db: Any, settings: Any) -> AsyncIterator[Any]:
    """An HTTP client speaking to the ASGI app in process."""
    import httpx

    from api.app import create_app

    app = create_app(settings, runtime=db)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


class GraphQLClient:
    """Posts GraphQL operations and returns the decoded body."""

    def __init__(self, http: Any) -> None:
        self.http = http

    async def __call__(self, query: str, variables: dict[str, Any] | None = None,
                       *, expect_errors: bool = False, headers: dict[str, str] | None = None
                       ) -> dict[str, Any]:
        response = await self.http.post("/graphql", json={"query": query,
                                                          "variables": variables or {}},
                                        headers=headers or {})
        assert response.status_code < 500, response.text
        body: dict[str, Any] = response.json()
        if not expect_errors:
            assert "errors" not in body, body["errors"]
        return body


@pytest.fixture
async def gql(client: Any) -> GraphQLClient:
    return GraphQLClient(client)
