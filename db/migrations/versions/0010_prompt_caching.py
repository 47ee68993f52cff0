"""prompt caching: cached-token usage priced at its own rates, and each cost lever on its own

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 02:00:00.000000

- Each call (`budget_ledger`) and each run (`source_processing`) records its cached input
  tokens (read from a provider's prompt cache) and cache-write tokens (written to it), and
  what the same usage would have cost interactive and uncached (`list_cost_usd`), with what
  caching and batch mode saved against it (`cache_saved_usd`, `batch_saved_usd`):
  cost_usd = list_cost_usd - cache_saved_usd - batch_saved_usd, exactly.
- `models` may override the cache prices and the batch discount.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MONEY = sa.Numeric(18, 8)


def _counters(table: str) -> None:
    op.add_column(table, sa.Column("cached_input_tokens", sa.BigInteger(), nullable=False,
                                   server_default="0"))
    op.add_column(table, sa.Column("cache_write_tokens", sa.BigInteger(), nullable=False,
                                   server_default="0"))
    for column in ("list_cost_usd", "cache_saved_usd", "batch_saved_usd"):
        op.add_column(table, sa.Column(column, _MONEY, nullable=False, server_default="0"))


def upgrade() -> None:
    _counters("budget_ledger")
    _counters("source_processing")
    # Every call made before had no cache and no batch price: its list price is its cost.
    op.execute("UPDATE budget_ledger SET list_cost_usd = actual_usd")
    op.execute("UPDATE source_processing SET list_cost_usd = cost_usd")
    op.add_column("models", sa.Column("cache_read_cost_per_million", _MONEY, nullable=True))
    op.add_column("models", sa.Column("cache_write_cost_per_million", _MONEY, nullable=True))
    op.add_column("models", sa.Column("batch_discount", sa.Numeric(5, 4), nullable=True))
    op.create_check_constraint(
        "ck_models_batch_discount", "models",
        "batch_discount IS NULL OR (batch_discount >= 0 AND batch_discount < 1)")
    op.create_check_constraint(
        "ck_models_cache_prices", "models",
        "(cache_read_cost_per_million IS NULL OR cache_read_cost_per_million >= 0) AND "
        "(cache_write_cost_per_million IS NULL OR cache_write_cost_per_million >= 0)")


def downgrade() -> None:
    op.drop_constraint("ck_models_cache_prices", "models")
    op.drop_constraint("ck_models_batch_discount", "models")
    for column in ("batch_discount", "cache_write_cost_per_million",
                   "cache_read_cost_per_million"):
        op.drop_column("models", column)
    for table in ("source_processing", "budget_ledger"):
        for column in ("batch_saved_usd", "cache_saved_usd", "list_cost_usd",
                       "cache_write_tokens", "cached_input_tokens"):
            op.drop_column(table, column)
