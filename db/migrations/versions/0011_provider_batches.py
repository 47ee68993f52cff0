"""provider batches: runs submitted through a provider's batch API, durable and resumable

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 02:05:00.000000

- `processing_batches.mode`: 'interactive' (a call per chunk) or 'batch' (the provider's batch
  API at its batch price).
- `provider_batches`: one submission of some of a run's chunks. It is written, with the
  reservations of its worst case, before anything is sent (status 'submitting', with the
  idempotency key the provider batch carries in its metadata), so a worker that dies at any
  point resumes it: adopting a batch the provider already has, polling one in flight, or
  collecting its results; chunks stored once are never submitted again.
- Job kind `cancel_provider_batch`: cancelling a BATCH-mode batch releases its reservations at
  once and has a worker ask the provider to stop the batch in flight.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("processing_batches", sa.Column(
        "mode", sa.String(length=16), nullable=False, server_default="interactive"))
    op.create_check_constraint("ck_batches_mode", "processing_batches",
                               "mode IN ('interactive', 'batch')")
    op.create_table(
        "provider_batches",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("run_id", sa.BigInteger(),
                  sa.ForeignKey("source_processing.id", ondelete="CASCADE"), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False, unique=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("provider_batch_id", sa.String(length=200), nullable=True),
        sa.Column("provider_status", sa.String(length=32), nullable=True),
        sa.Column("input_file_id", sa.String(length=200), nullable=True),
        sa.Column("output_file_id", sa.String(length=200), nullable=True),
        sa.Column("error_file_id", sa.String(length=200), nullable=True),
        sa.Column("chunks", postgresql.JSONB(), nullable=False,
                  server_default=sa.text("'[]'::jsonb")),
        sa.Column("reservations", postgresql.JSONB(), nullable=False,
                  server_default=sa.text("'{}'::jsonb")),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("polls", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.CheckConstraint(
            "status IN ('submitting', 'submitted', 'collected', 'abandoned')",
            name="ck_provider_batches_status"),
    )
    op.create_index("ix_provider_batches_run", "provider_batches", ["run_id", "status"])
    # A cancelled BATCH-mode batch asks the provider to stop its batch (a job of its own: the
    # API process never talks to providers).
    op.drop_constraint("ck_jobs_kind", "processing_queue")
    op.create_check_constraint(
        "ck_jobs_kind", "processing_queue",
        "kind IN ('extract_run', 'suggest_relationships', 'cancel_provider_batch')")


def downgrade() -> None:
    op.execute("DELETE FROM processing_queue WHERE kind = 'cancel_provider_batch'")
    op.drop_constraint("ck_jobs_kind", "processing_queue")
    op.create_check_constraint("ck_jobs_kind", "processing_queue",
                               "kind IN ('extract_run', 'suggest_relationships')")
    op.drop_index("ix_provider_batches_run", table_name="provider_batches")
    op.drop_table("provider_batches")
    op.drop_constraint("ck_batches_mode", "processing_batches")
    op.drop_column("processing_batches", "mode")
