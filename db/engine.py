"""Async engine and session factory on asyncpg."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

Session = AsyncSession
"""The session type the read and write paths are given (for annotations outside db/)."""

# A pooled connection idle longer than this is pinged before it is handed out. SQLAlchemy's
# own pre-ping costs three round trips (BEGIN, ping, ROLLBACK) on *every* checkout, which on
# the pipeline's hot path (several checkouts per chunk) doubled the statements sent; a
# connection that was working a moment ago needs no proof that the server is still there.
PING_AFTER_IDLE_SECONDS = 5.0


def make_engine(url: str, *, pool_size: int = 10, null_pool: bool = False,
                ping_after_idle_s: float = PING_AFTER_IDLE_SECONDS) -> AsyncEngine:
    """An engine bound to the running event loop (create one per loop)."""
    connect_args = {"server_settings": {"application_name": "mmos", "timezone": "UTC"}}
    if null_pool:
        return create_async_engine(url, poolclass=NullPool, connect_args=connect_args)
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        connect_args=connect_args,
    )
    _ping_idle_connections(engine, ping_after_idle_s)
    return engine


def _ping_idle_connections(engine: AsyncEngine, idle_s: float) -> None:
    """Ping a connection on checkout when it sat idle in the pool; a dead one (server
    restarted, backend terminated) is replaced by a fresh connection before anyone uses it."""

    @sa.event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["mmos_idle_since"] = time.monotonic()

    @sa.event.listens_for(engine.sync_engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.pop("mmos_idle_since", None)
        if since is None or time.monotonic() - since < idle_s:
            return  # just connected, or in use a moment ago
        try:
            dbapi_connection.ping()
        except Exception as exc:
            # The pool discards this connection and checks out (or opens) another one.
            raise sa.exc.DisconnectionError(f"idle connection is gone: {exc}") from exc


def sqlstate_of(exc: BaseException) -> str | None:
    """The SQLSTATE behind a SQLAlchemy error raised by asyncpg, if any."""
    original = getattr(exc, "orig", None)
    return getattr(original, "sqlstate", None) or getattr(
        getattr(original, "__cause__", None), "sqlstate", None)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded values after commit (results outlive the transaction)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def one_statement_sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions on `engine` in autocommit (build once per engine): each statement is its own
    transaction, with no BEGIN and ROLLBACK around it. For reads of one statement, which see
    one snapshot either way. The pooled connections are left as they were."""
    return async_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"),
                              expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    """One round trip to the database (`SELECT 1` on a connection of the pool); raises when
    the database cannot be reached."""
    async with engine.connect() as connection:
        await connection.execute(sa.text("SELECT 1"))


async def database_now(session: Any) -> datetime:
    """The database's `now()`: the start of the session's current transaction."""
    return (await session.execute(sa.text("SELECT now()"))).scalar_one()
