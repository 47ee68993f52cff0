"""provider limits: per-model rate limits, what each worker can call, forecasts

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 02:10:00.000000

- `models.rpm`, `models.tpm` (input plus output tokens per minute) and
  `models.max_concurrency`: one limit per model, shared by every worker process.
- `workers.providers`: the LiteLLM providers a worker process holds keys for (reported in its
  heartbeat), so the API refuses at start what no worker can call.
- `processing_batches.forecast`: what `estimateProcessing` forecast for the batch when it
  started, compared with the actual cost and time once its runs complete.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for column in ("rpm", "tpm", "max_concurrency"):
        op.add_column("models", sa.Column(column, sa.Integer(), nullable=True))
    op.create_check_constraint(
        "ck_models_limits", "models",
        "(rpm IS NULL OR rpm > 0) AND (tpm IS NULL OR tpm > 0)"
        " AND (max_concurrency IS NULL OR max_concurrency > 0)")
    op.add_column("workers", sa.Column("providers", postgresql.JSONB(), nullable=False,
                                       server_default=sa.text("'[]'::jsonb")))
    op.add_column("processing_batches", sa.Column("forecast", postgresql.JSONB(),
                                                  nullable=True))


def downgrade() -> None:
    op.drop_column("processing_batches", "forecast")
    op.drop_column("workers", "providers")
    op.drop_constraint("ck_models_limits", "models")
    for column in ("max_concurrency", "tpm", "rpm"):
        op.drop_column("models", column)
