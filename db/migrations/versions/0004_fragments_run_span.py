"""fragments: index runs by span start

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 07:40:00.000000

The run-id index becomes (run_id, char_start): it still serves every lookup by run, and it
lets the end-of-run overlap deduplication probe each fragment's few neighbours by span
instead of pairing every fragment of the run with every other (quadratic in the run size).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_fragments_run_span", "fragments", ["run_id", "char_start"])
    op.drop_index("ix_fragments_run_id", table_name="fragments")


def downgrade() -> None:
    op.create_index("ix_fragments_run_id", "fragments", ["run_id"])
    op.drop_index("ix_fragments_run_span", table_name="fragments")
