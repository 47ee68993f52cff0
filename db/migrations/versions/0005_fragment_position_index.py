"""Index for the fragment listing's default order (POSITION)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Pages ordered by (coalesce(char_start, -1), id) read the index in order instead of
    # sorting every fragment for each page.
    op.create_index(
        "ix_fragments_position",
        "fragments",
        [sa.text("coalesce(char_start, -1)"), "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_fragments_position", table_name="fragments")
