"""Shared fixtures: a real PostgreSQL database per test session, cleaned between tests."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import hypothesis  # noqa: F401  (imported early: a late import can crash CPython 3.11's AST at exit)
import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("MMOS_ENV", "test")

# The helpers in tests/support assert like test code: rewrite them before anything imports them.
pytest.register_assert_rewrite("tests.support")

from tests.support.database import ADMIN_DSN, reachable, reset_database, run_admin  # noqa: E402
from tests.support.fake_provider import FakeProvider  # noqa: E402
from tests.support.graphql import GraphQLClient  # noqa: E402
from tests.support.processing import wait_until_idle  # noqa: E402


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, migrated database on the machine's PostgreSQL (pgserver when none answers)."""
    from db.migrate import upgrade_sync

    name = f"mmos_test_{uuid.uuid4().hex[:10]}"
    if reachable(ADMIN_DSN):
        admin = ADMIN_DSN
        base = admin.rsplit("/", 1)[0]
        url = f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)
    else:
        from db.embedded import start_embedded

        embedded = start_embedded(tmp_path_factory.mktemp("pg"))
        admin = embedded.replace("postgresql+asyncpg://", "postgresql://").replace(
            "/mmos?", "/postgres?")
        url = embedded.replace("/mmos?", f"/{name}?")
    asyncio.run(run_admin(admin, f"CREATE DATABASE {name}"))
    upgrade_sync(url)
    os.environ["MMOS_TEST_DATABASE_URL"] = url
    yield url
    asyncio.run(run_admin(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(scope="session")
def settings(database_url: str) -> Any:
    from api.settings import Settings

    return Settings(env="test", database_url=database_url, _env_file=None)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
async def runtime(settings: Any, database_url: str) -> AsyncIterator[Any]:
    """The application runtime on the test session's event loop."""
    from api.container import build_container

    rt = await build_container(settings, database_url=database_url, migrate=False)
    yield rt
    await rt.close()


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


@pytest.fixture
async def gql(client: Any) -> GraphQLClient:
    return GraphQLClient(client)


# -- processing: in-process workers on the stub broker, the fake provider, GraphQL over them --


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
