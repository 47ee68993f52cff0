"""A worker host warns when it starts if the live workers and the API may open more
PostgreSQL connections than the server allows (the test server's max_connections)."""

from __future__ import annotations

import logging
from typing import Any

import pytest


async def _host(settings: Any, database_url: str) -> Any:
    from api.container import build_container, model_client, worker_pool_size
    from workers.host import WorkerHost

    async def container() -> Any:
        return await build_container(settings, database_url=database_url, migrate=False,
                                     pool_size=worker_pool_size(settings), catch_up=False)

    host = WorkerHost(container, model_client, sweep=False)
    await host.start()
    return host


async def test_a_crowded_fleet_is_warned_about_and_a_small_one_is_not(
        db: Any, settings: Any, database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    from db.workers import beat

    host = await _host(settings, database_url)
    try:
        alone = await host.check_connections()
        # Given: nine more workers alive on the same server
        async with db.uow() as uow:
            for number in range(9):
                await beat(uow.session, f"other-{number}", "elsewhere", 1000 + number)
        with caplog.at_level(logging.WARNING, logger="mmos.worker"):
            crowded = await host.check_connections()
    finally:
        await host.close()
    pool = 2 * settings.llm_concurrency + 4
    assert (alone.worker_pool, alone.api_pool) == (pool, 10)
    # Alone (or with the session's in-process worker) the pools fit the test server.
    assert alone.steady == alone.workers * pool + 10 <= alone.available
    assert alone.warning() is None
    assert crowded.workers >= 10
    assert crowded.steady == crowded.workers * pool + 10 > crowded.max_connections
    assert any("PostgreSQL allows" in record.getMessage() for record in caplog.records)
