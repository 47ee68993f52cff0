"""Async engine and session factory on asyncpg."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

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
