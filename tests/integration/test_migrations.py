"""Migrations build exactly the schema the models declare, with its views, and can be undone."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import db.tables  # noqa: F401  (registers every table on SQLModel.metadata)
from db.engine import make_engine
from db.migrate import alembic_config

VIEWS = {"v_source_processing_summary", "v_model_comparison", "v_fragment_coverage"}
# Server defaults are compared too: a default that exists only in the model (or only in the
# database) would make ORM inserts and raw SQL inserts disagree.
COMPARE_OPTIONS = {"compare_type": True, "compare_server_default": True}


def schema_differences(connection: Connection, metadata: sa.MetaData) -> list[Any]:
    """Alembic's autogenerate diff between `metadata` and the connected database."""
    context = MigrationContext.configure(connection, opts=COMPARE_OPTIONS)
    return list(compare_metadata(context, metadata))


def public_objects(connection: Connection) -> dict[str, set[str]]:
    """Tables, views and enum types in the public schema."""
    def names(sql: str) -> set[str]:
        return set(connection.execute(sa.text(sql)).scalars())

    return {
        "tables": names("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"),
        "views": names("SELECT viewname FROM pg_views WHERE schemaname = 'public'"),
        "enums": names("SELECT t.typname FROM pg_type t JOIN pg_namespace n "
                       "ON n.oid = t.typnamespace WHERE n.nspname = 'public' AND t.typtype = 'e'"),
    }


async def run_on(url: str, check: Any) -> Any:
    """Run a sync `check(connection)` on a fresh connection to `url`."""
    engine = make_engine(url, null_pool=True)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(check)
    finally:
        await engine.dispose()


def head_revision(url: str) -> str:
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def test_migrated_schema_matches_the_models(database_url: str) -> None:
    differences = await run_on(database_url, lambda c: schema_differences(c, SQLModel.metadata))
    assert differences == [], (
        "migrations and db/tables.py disagree; add a migration (alembic revision "
        f"--autogenerate) or fix the model: {differences}")


async def test_schema_comparison_notices_a_column_the_migrations_lack(database_url: str) -> None:
    # Given: the models plus one column no migration created
    metadata = sa.MetaData()
    for table in SQLModel.metadata.sorted_tables:
        table.to_metadata(metadata)
    metadata.tables["sources"].append_column(sa.Column("nickname", sa.String(40)))
    # When
    differences = await run_on(database_url, lambda c: schema_differences(c, metadata))
    # Then
    assert [(d[0], d[2], d[3].name) for d in differences] == [
        ("add_column", "sources", "nickname")]


async def test_migrations_create_the_reporting_views_and_they_query(database_url: str) -> None:
    def check(connection: Connection) -> set[str]:
        for view in sorted(VIEWS):
            connection.execute(sa.text(f"SELECT * FROM {view} LIMIT 0"))
        return public_objects(connection)["views"]

    assert await run_on(database_url, check) >= VIEWS


def test_downgrade_to_base_and_upgrade_to_head_round_trips(throwaway_url: str) -> None:
    config = alembic_config(throwaway_url)
    head = head_revision(throwaway_url)
    # Given
    command.upgrade(config, "head")
    # When
    command.downgrade(config, "base")
    emptied = asyncio.run(run_on(throwaway_url, public_objects))
    base = asyncio.run(run_on(throwaway_url, current_revision))
    command.upgrade(config, "head")
    # Then: downgrade removed everything but Alembic's bookkeeping ...
    assert emptied == {"tables": {"alembic_version"}, "views": set(), "enums": set()}
    assert base is None
    # ... and upgrading again rebuilds the same schema
    assert asyncio.run(run_on(throwaway_url, current_revision)) == head
    assert asyncio.run(run_on(throwaway_url,
                              lambda c: schema_differences(c, SQLModel.metadata))) == []
    assert asyncio.run(run_on(throwaway_url, public_objects))["views"] >= VIEWS
    counters = asyncio.run(run_on(throwaway_url, lambda c: c.execute(
        sa.text("SELECT count(*) FROM fragment_code_counters")).scalar_one()))
    assert counters == 9
