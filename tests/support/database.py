"""The test database: where the admin connection points, and how a test gets a clean one."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

ADMIN_DSN = os.environ.get("MMOS_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")

# Tables emptied between tests; the catalog and counters are reset to their migrated state.
KEEP_TABLES = {"alembic_version"}


def reachable(dsn: str) -> bool:
    """Whether something accepts TCP connections at the DSN's host and port."""
    parsed = urlparse(dsn)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 5432), 1):
            return True
    except OSError:
        return False


async def run_admin(dsn: str, *statements: str) -> None:
    """Execute statements (CREATE/DROP DATABASE ...) on an admin connection, one by one."""
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


async def reset_database(runtime: Any) -> None:
    """Empty every data table and re-seed what migrations and startup seed."""
    import sqlalchemy as sa
    from sqlmodel import SQLModel

    from db.engine import sqlstate_of

    tables = [t.name for t in SQLModel.metadata.sorted_tables if t.name not in KEEP_TABLES]
    for attempt in range(5):
        try:
            async with runtime.engine.begin() as connection:
                await connection.execute(sa.text(
                    "TRUNCATE " + ", ".join(tables) + " RESTART IDENTITY CASCADE"))
                await connection.execute(sa.text(
                    "INSERT INTO fragment_code_counters (category_code, last_value) "
                    "SELECT unnest(ARRAY['BIO','COG','COM','BEH','VAL','SOC','EMO','META',"
                    "'GEN']), 0"))
            break
        except sa.exc.DBAPIError as exc:
            # The in-process workers' sweeper may hold a table the TRUNCATE needs next while
            # waiting for one it holds: PostgreSQL breaks the tie; take the locks again.
            if sqlstate_of(exc) != "40P01" or attempt == 4:
                raise
    from api.container import start_up

    await start_up(runtime)


@contextlib.contextmanager
def counted_statements(runtime: Any) -> Iterator[list[str]]:
    """Every SQL statement sent through the runtime's engine while the block runs."""
    from sqlalchemy import event

    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(runtime.engine.sync_engine, "before_cursor_execute", record)
