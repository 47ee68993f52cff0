"""model api key env: a model with a custom apiBase names its own key variable

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 11:00:00.000000

`models.api_key_env` names the environment variable (on the workers) that holds the model's
own key. A model with a custom apiBase is sent that key or none, never a provider's default.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("models", sa.Column("api_key_env", sa.String(length=100), nullable=True))


def downgrade() -> None:
    op.drop_column("models", "api_key_env")
