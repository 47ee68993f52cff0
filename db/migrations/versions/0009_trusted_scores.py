"""trusted scores: one reference per source, paired differences, imported reference fragments

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 01:10:00.000000

- `reference_fragments`: fragments a team made by hand or in a chat with a model, imported
  (MMOS v5 YAML or JSONL), grounded with the product's grounder and kept with their provenance.
  Grounded ones are VERIFIED and join the source's human reference; ungrounded ones are kept
  as NEEDS_REVIEW with their closest span and never count.
- `model_performance` keeps, per run, what a paired comparison needs: the per-chunk tallies
  against the source's one reference (`chunk_tallies`), whether the run is that reference
  (`is_reference`, `reference_run_id`), the paired difference against the reference model's
  run (`vs_reference`), the span metrics (`span_metrics`), and the last score measured before
  a human reference existed (`unverified_score`, for calibration).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CATEGORIES = ("'biographical', 'cognitive', 'communicative', 'behavioral', 'values_beliefs', "
               "'social', 'emotional', 'meta_cognitive', 'general'")


def upgrade() -> None:
    op.create_table(
        "reference_fragments",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("source_id", sa.BigInteger(),
                  sa.ForeignKey("sources.id", ondelete="CASCADE"), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("char_start", sa.Integer(), nullable=True),
        sa.Column("char_end", sa.Integer(), nullable=True),
        sa.Column("grounding", sa.String(length=16), nullable=False),
        sa.Column("grounding_score", sa.Float(), nullable=False, server_default="0"),
        sa.Column("closest_start", sa.Integer(), nullable=True),
        sa.Column("closest_end", sa.Integer(), nullable=True),
        sa.Column("category", sa.String(length=24), nullable=False),
        sa.Column("fragment_type", sa.String(length=24), nullable=False),
        sa.Column("relevance", sa.SmallInteger(), nullable=True),
        sa.Column("context", sa.Text(), nullable=True),
        sa.Column("insight", sa.Text(), nullable=True),
        sa.Column("tags", postgresql.JSONB(), nullable=False,
                  server_default=sa.text("'[]'::jsonb")),
        sa.Column("location", sa.Text(), nullable=True),
        sa.Column("source_label", sa.Text(), nullable=True),
        sa.Column("metadata", postgresql.JSONB(), nullable=False,
                  server_default=sa.text("'{}'::jsonb")),
        sa.Column("raw_record", postgresql.JSONB(), nullable=False,
                  server_default=sa.text("'{}'::jsonb")),
        sa.Column("verification_status", sa.String(length=16), nullable=False),
        sa.Column("reviewer", sa.String(length=200), nullable=False),
        sa.Column("provenance_file", sa.String(length=500), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.UniqueConstraint("source_id", "external_id", name="uq_reference_fragments_id"),
        sa.CheckConstraint("grounding IN ('exact', 'fuzzy', 'ungrounded')",
                           name="ck_reference_fragments_grounding"),
        sa.CheckConstraint("verification_status IN ('verified', 'needs_review')",
                           name="ck_reference_fragments_verification"),
        sa.CheckConstraint(f"category IN ({_CATEGORIES})",
                           name="ck_reference_fragments_category"),
        sa.CheckConstraint(
            "char_start IS NULL OR (char_start >= 0 AND char_end >= char_start)",
            name="ck_reference_fragments_span"),
        sa.CheckConstraint("relevance IS NULL OR relevance BETWEEN 1 AND 10",
                           name="ck_reference_fragments_relevance"),
    )
    op.create_index("ix_reference_fragments_span", "reference_fragments",
                    ["source_id", "char_start"])
    op.add_column("model_performance", sa.Column(
        "is_reference", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("model_performance", sa.Column("reference_run_id", sa.BigInteger(),
                                                 nullable=True))
    op.add_column("model_performance", sa.Column(
        "chunk_tallies", postgresql.JSONB(), nullable=False,
        server_default=sa.text("'[]'::jsonb")))
    op.add_column("model_performance", sa.Column("vs_reference", postgresql.JSONB(),
                                                 nullable=True))
    op.add_column("model_performance", sa.Column("span_metrics", postgresql.JSONB(),
                                                 nullable=True))
    op.add_column("model_performance", sa.Column("unverified_score", sa.Float(),
                                                 nullable=True))
    op.add_column("model_performance", sa.Column("unverified_kind", sa.String(length=24),
                                                 nullable=True))


def downgrade() -> None:
    for column in ("unverified_kind", "unverified_score", "span_metrics", "vs_reference",
                   "chunk_tallies", "reference_run_id", "is_reference"):
        op.drop_column("model_performance", column)
    op.drop_index("ix_reference_fragments_span", table_name="reference_fragments")
    op.drop_table("reference_fragments")
