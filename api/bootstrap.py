"""Composition root: builds the engine, migrations, job dispatch and event bus from settings."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.settings import Settings
from db.engine import make_engine, make_sessionmaker

log = logging.getLogger("mmos.bootstrap")


def resolve_database_url(settings: Settings) -> str:
    """DATABASE_URL when set, else the embedded PostgreSQL in MMOS_DATA_DIR (started here)."""
    if settings.database_url:
        return settings.database_url
    from db.embedded import start_embedded

    url = start_embedded(settings.data_dir)
    log.info("embedded PostgreSQL ready in %s", settings.data_dir.resolve())
    return url


@dataclass
class Runtime:
    """Everything a request or job needs, built once per process (per event loop)."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    services: dict[str, Any] = field(default_factory=dict)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction, committed on success, rolled back on error."""
        async with self.sessions.begin() as session:
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A short-lived session for reads."""
        async with self.sessions() as session:
            yield session

    async def close(self) -> None:
        for service in reversed(list(self.services.values())):
            closer = getattr(service, "aclose", None)
            if closer is not None:
                await closer()
        await self.engine.dispose()


async def start_runtime(settings: Settings, *, database_url: str | None = None,
                        migrate: bool = True, pool_size: int = 10) -> Runtime:
    """Connect, migrate, seed, and wire the processing services."""
    url = database_url or resolve_database_url(settings)
    engine = make_engine(url, pool_size=pool_size)
    if migrate:
        from db.migrate import upgrade

        await upgrade(engine)
    runtime = Runtime(settings=settings, engine=engine, sessions=make_sessionmaker(engine))
    for hook in _STARTUP_HOOKS:
        await hook(runtime)
    return runtime


_STARTUP_HOOKS: list[Any] = []


def on_startup(hook: Any) -> Any:
    """Register a coroutine run with each new Runtime (seeding, processing wiring)."""
    _STARTUP_HOOKS.append(hook)
    return hook


@on_startup
async def seed_catalog(runtime: Runtime) -> None:
    """Insert the seed models that are missing (operator changes are kept)."""
    from db.catalog import ModelRepository

    async with runtime.transaction() as session:
        await ModelRepository(session).seed()


import api.quality  # noqa: E402  (registers its startup hook)
import api.wiring  # noqa: E402,F401  (registers its startup hook)
