"""Reporting views and fragment code counters

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CATEGORY_CODES = ("BIO", "COG", "COM", "BEH", "VAL", "SOC", "EMO", "META", "GEN")

V_SOURCE_PROCESSING_SUMMARY = """
CREATE VIEW v_source_processing_summary AS
SELECT s.id AS source_id,
       s.source_code,
       s.source_type,
       count(r.id) AS run_count,
       count(r.id) FILTER (WHERE r.status = 'completed') AS completed_runs,
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

V_MODEL_COMPARISON = """
CREATE VIEW v_model_comparison AS
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
WHERE r.status = 'completed'
"""

V_FRAGMENT_COVERAGE = """
CREATE VIEW v_fragment_coverage AS
SELECT f.source_id,
       f.category,
       count(*) AS fragment_count,
       count(*) FILTER (WHERE f.grounding <> 'ungrounded') AS grounded_count,
       count(*) FILTER (WHERE f.verification_status = 'verified') AS verified_count,
       count(*) FILTER (WHERE f.verification_status = 'rejected') AS rejected_count,
       count(*) FILTER (WHERE f.is_complete AND f.has_clean_boundaries) AS miu_count,
       count(DISTINCT f.model_name) AS model_count,
       avg(f.relevance)::float AS mean_relevance,
       avg(f.confidence)::float AS mean_confidence
FROM fragments f
GROUP BY f.source_id, f.category
"""


def upgrade() -> None:
    op.execute(V_SOURCE_PROCESSING_SUMMARY)
    op.execute(V_MODEL_COMPARISON)
    op.execute(V_FRAGMENT_COVERAGE)
    values = ", ".join(f"('{code}', 0)" for code in CATEGORY_CODES)
    op.execute(f"INSERT INTO fragment_code_counters (category_code, last_value) VALUES {values}")


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS v_fragment_coverage")
    op.execute("DROP VIEW IF EXISTS v_model_comparison")
    op.execute("DROP VIEW IF EXISTS v_source_processing_summary")
    op.execute("DELETE FROM fragment_code_counters")
