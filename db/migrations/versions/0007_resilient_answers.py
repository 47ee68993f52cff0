"""resilient answers: chunk failures, raw answers, parse notes, repairs, run versions

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 10:00:00.000000

- A run can finish as `completed_with_errors`: some chunks failed (`run_chunks.status`
  'failed' with its `error`), counted in `source_processing.chunks_failed`.
- Every model answer is kept compressed in `run_answers`, so a run can be read again
  (`reprocessRun`) into a new run version (`version`, `reprocessed_from_id`).
- Each fragment keeps what the parser coerced (`parse_notes`) and the record as the model sent
  it (`raw_record`); each run counts its repair calls and cost and how many answers were read
  strictly (`formatAdherence`).
- The reporting views count `completed_with_errors` runs as finished with results.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RUN_STATUSES = ("'pending', 'processing', 'completed', 'failed', 'skipped', 'waiting_budget', "
                 "'stopped_cost_limit'")

_SUMMARY = """
CREATE OR REPLACE VIEW v_source_processing_summary AS
SELECT s.id AS source_id,
       s.source_code,
       s.source_type,
       count(r.id) AS run_count,
       count(r.id) FILTER (WHERE r.status IN ({finished})) AS completed_runs,
       count(r.id) FILTER (WHERE r.status = 'failed') AS failed_runs,
       count(r.id) FILTER (WHERE r.status IN ('pending', 'processing', 'waiting_budget')) AS active_runs,
       count(DISTINCT r.model_name) AS model_count,
       coalesce(sum(r.fragment_count), 0)::bigint AS fragment_count,
       coalesce(sum(r.grounded_count), 0)::bigint AS grounded_fragment_count,
       coalesce(sum(r.cost_usd), 0)::numeric(18, 8) AS total_cost_usd,
       coalesce(sum(r.input_tokens), 0)::bigint AS input_tokens,
       coalesce(sum(r.output_tokens), 0)::bigint AS output_tokens,
       max(r.completed_at) AS last_processed_at
FROM sources s
LEFT JOIN source_processing r ON r.source_id = s.id
GROUP BY s.id
"""

_COMPARISON = """
CREATE OR REPLACE VIEW v_model_comparison AS
SELECT mp.source_id,
       s.source_type,
       mp.model_name,
       mp.run_id,
       mp.batch_id,
       mp.reference_kind,
       mp.reference_model,
       mp.quality_score,
       mp.quality_low,
       mp.quality_high,
       mp.provisional,
       mp.grounded_rate,
       mp.miu_rate,
       mp.precision,
       mp.recall,
       mp.f1,
       mp.coverage,
       mp.mean_relevance,
       mp.fragment_count,
       mp.grounded_fragment_count,
       mp.cost_usd,
       mp.cost_per_fragment,
       mp.cost_per_1k_chars,
       mp.latency_ms,
       mp.computed_at,
       rank() OVER (PARTITION BY mp.source_id ORDER BY mp.quality_score DESC) AS quality_rank,
       rank() OVER (PARTITION BY mp.source_id ORDER BY mp.cost_per_fragment ASC NULLS LAST) AS cost_rank
FROM model_performance mp
JOIN sources s ON s.id = mp.source_id
JOIN source_processing r ON r.id = mp.run_id
WHERE r.status IN ({finished})
"""

_WITH_ERRORS = "'completed', 'completed_with_errors'"


def upgrade() -> None:
    op.drop_constraint("ck_runs_status", "source_processing", type_="check")
    op.create_check_constraint(
        "ck_runs_status", "source_processing",
        "status IN ('pending', 'processing', 'completed', 'completed_with_errors', 'failed', "
        "'skipped', 'waiting_budget', 'stopped_cost_limit')")
    zero = {"nullable": False, "server_default": "0"}
    op.add_column("source_processing", sa.Column("chunks_failed", sa.Integer(), **zero))
    op.add_column("source_processing", sa.Column("repair_calls", sa.Integer(), **zero))
    op.add_column("source_processing",
                  sa.Column("repair_cost_usd", sa.Numeric(precision=18, scale=8), **zero))
    op.add_column("source_processing", sa.Column("answers_read", sa.Integer(), **zero))
    op.add_column("source_processing", sa.Column("answers_strict", sa.Integer(), **zero))
    op.add_column("source_processing", sa.Column("version", sa.Integer(), nullable=False,
                                                 server_default="1"))
    op.add_column("source_processing", sa.Column("reprocessed_from_id", sa.BigInteger(),
                                                 nullable=True))
    op.create_foreign_key("source_processing_reprocessed_from_id_fkey", "source_processing",
                          "source_processing", ["reprocessed_from_id"], ["id"],
                          ondelete="SET NULL")
    op.create_index("ix_source_processing_reprocessed_from_id", "source_processing",
                    ["reprocessed_from_id"])
    op.add_column("run_chunks", sa.Column("error", sa.Text(), nullable=True))
    op.add_column("fragments", sa.Column("parse_notes", postgresql.JSONB(), nullable=False,
                                         server_default=sa.text("'[]'::jsonb")))
    op.add_column("fragments", sa.Column("raw_record", postgresql.JSONB(), nullable=True))
    op.create_table(
        "run_answers",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("chunk_index", sa.Integer(), nullable=False),
        sa.Column("part", sa.Integer(), server_default="0", nullable=False),
        sa.Column("call_kind", sa.String(length=16), nullable=False),
        sa.Column("char_start", sa.Integer(), nullable=False),
        sa.Column("char_end", sa.Integer(), nullable=False),
        sa.Column("finish_reason", sa.String(length=32), nullable=True),
        sa.Column("readable", sa.Boolean(), nullable=False),
        sa.Column("strict", sa.Boolean(), nullable=False),
        sa.Column("problem", sa.Text(), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("body_chars", sa.Integer(), nullable=False),
        sa.Column("superseded", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.CheckConstraint("call_kind IN ('extract', 'repair')", name="ck_run_answers_kind"),
        sa.ForeignKeyConstraint(["run_id"], ["source_processing.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_run_answers_run_chunk", "run_answers",
                    ["run_id", "chunk_index", "part", "id"])
    op.create_index("ix_run_answers_created", "run_answers", ["created_at"])
    op.execute(_SUMMARY.format(finished=_WITH_ERRORS))
    op.execute(_COMPARISON.format(finished=_WITH_ERRORS))


def downgrade() -> None:
    op.execute(_SUMMARY.format(finished="'completed'"))
    op.execute(_COMPARISON.format(finished="'completed'"))
    op.drop_index("ix_run_answers_created", table_name="run_answers")
    op.drop_index("ix_run_answers_run_chunk", table_name="run_answers")
    op.drop_table("run_answers")
    op.drop_column("fragments", "raw_record")
    op.drop_column("fragments", "parse_notes")
    op.drop_column("run_chunks", "error")
    op.drop_index("ix_source_processing_reprocessed_from_id", table_name="source_processing")
    op.drop_constraint("source_processing_reprocessed_from_id_fkey", "source_processing",
                       type_="foreignkey")
    for column in ("reprocessed_from_id", "version", "answers_strict", "answers_read",
                   "repair_cost_usd", "repair_calls", "chunks_failed"):
        op.drop_column("source_processing", column)
    op.execute("UPDATE source_processing SET status = 'completed'"
               " WHERE status = 'completed_with_errors'")
    op.drop_constraint("ck_runs_status", "source_processing", type_="check")
    op.create_check_constraint("ck_runs_status", "source_processing",
                               f"status IN ({_RUN_STATUSES})")
