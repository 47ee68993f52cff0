"""Pooled connections: one whose server side died while it sat idle is replaced unnoticed."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection

from db.engine import make_engine


async def _backend_pid(engine: Any) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one())


async def test_an_idle_connection_killed_on_the_server_is_replaced_on_checkout(
        database_url: str, monkeypatch: Any) -> None:
    # Given: a pool holding one connection whose backend is then terminated
    engine = make_engine(database_url, pool_size=1, ping_after_idle_s=0.05)
    pinged: list[int] = []
    original = AsyncAdapt_asyncpg_connection.ping
    monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "ping",
                        lambda self: pinged.append(1) or original(self))
    admin = make_engine(database_url, null_pool=True)
    try:
        first = await _backend_pid(engine)
        async with admin.connect() as connection:
            assert (await connection.execute(sa.text("SELECT pg_terminate_backend(:p)"),
                                             {"p": first})).scalar_one()
        await asyncio.sleep(0.2)
        # When: the next checkout comes after the idle threshold
        second = await _backend_pid(engine)
        # Then: it got a live connection, not the dead one
        assert second != first
        assert pinged == [1]
    finally:
        await engine.dispose()
        await admin.dispose()


async def test_a_connection_in_recent_use_is_handed_out_without_a_ping(
        database_url: str, monkeypatch: Any) -> None:
    # Given: statements counted on the driver level
    engine = make_engine(database_url, pool_size=1, ping_after_idle_s=60)
    sent: list[str] = []
    sa.event.listen(engine.sync_engine, "before_cursor_execute",
                    lambda conn, cursor, statement, *rest: sent.append(statement))
    try:
        await _backend_pid(engine)
        pinged: list[int] = []
        original = AsyncAdapt_asyncpg_connection.ping
        monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "ping",
                            lambda self: pinged.append(1) or original(self))
        # When: the connection is checked out again right away
        await _backend_pid(engine)
        # Then: one statement each time and no ping in between
        assert sent == ["SELECT pg_backend_pid()"] * 2
        assert pinged == []
    finally:
        await engine.dispose()
