"""One-statement reads run in autocommit without changing the pooled connections."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa

from api.loaders import one_statement_read

# now() is the start of the transaction: inside one, it is older than the statement.
IN_TRANSACTION = sa.text("SELECT statement_timestamp() - now() > interval '25 milliseconds'")


async def _transactional(runtime: Any) -> bool:
    async with runtime.read() as session:
        await session.execute(sa.text("SELECT 1"))
        await asyncio.sleep(0.05)
        return bool((await session.execute(IN_TRANSACTION)).scalar_one())


async def test_one_statement_reads_skip_the_transaction(db: Any) -> None:
    # When
    async with one_statement_read(db) as session:
        await session.execute(sa.text("SELECT 1"))
        await asyncio.sleep(0.05)
        inside = (await session.execute(IN_TRANSACTION)).scalar_one()
    # Then: each statement is a transaction of its own
    assert inside is False


async def test_sessions_after_one_statement_reads_are_transactions_again(db: Any) -> None:
    # Given: every pooled connection served a one-statement read
    for _ in range(12):
        async with one_statement_read(db) as session:
            await session.execute(sa.text("SELECT 1"))
    # When
    seen = [await _transactional(db) for _ in range(12)]
    # Then
    assert all(seen)
