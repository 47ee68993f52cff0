"""file sources: formats, the segment map, the subject, each fragment's location

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 19:10:00.000000

- `sources.content_format` (TEXT for every existing source), and for a file its name, size
  and the sha256 of its bytes; `sources.conversion_notes` says what the converter did.
- `sources.subject_name`, `subject_aliases`: the person the clone is about;
  `subject_speakers`: the source's speaker labels that are theirs (for the fragment filter).
- `source_segments`: character ranges of the normalised text mapped to a page, a cue, a
  chapter, a heading or a speaker's turn.
- `fragments.speaker`, `mixes_speakers`, `page_first`, `page_last`, `time_start_ms`,
  `time_end_ms`, `chapter`: the fragment's location, derived from its span when stored.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FORMATS = "'TEXT', 'MARKDOWN', 'VTT', 'SRT', 'HTML', 'PDF', 'DOCX', 'EPUB'"
_KINDS = "'PAGE', 'CUE', 'CHAPTER', 'HEADING', 'TURN'"


def _json_list(name: str) -> sa.Column:
    return sa.Column(name, postgresql.JSONB(), nullable=False,
                     server_default=sa.text("'[]'::jsonb"))


def upgrade() -> None:
    op.add_column("sources", sa.Column("content_format", sa.String(16), nullable=False,
                                       server_default="TEXT"))
    op.create_check_constraint("ck_sources_content_format", "sources",
                               f"content_format IN ({_FORMATS})")
    op.add_column("sources", sa.Column("original_file_name", sa.String(255), nullable=True))
    op.add_column("sources", sa.Column("original_sha256", sa.String(64), nullable=True))
    op.create_index("ix_sources_original_sha256", "sources", ["original_sha256"])
    op.add_column("sources", sa.Column("original_bytes", sa.BigInteger(), nullable=True))
    op.add_column("sources", _json_list("conversion_notes"))
    op.add_column("sources", sa.Column("subject_name", sa.String(200), nullable=True))
    op.add_column("sources", _json_list("subject_aliases"))
    op.add_column("sources", _json_list("subject_speakers"))

    op.create_table(
        "source_segments",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("source_id", sa.BigInteger(),
                  sa.ForeignKey("sources.id", ondelete="CASCADE"), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("char_start", sa.Integer(), nullable=False),
        sa.Column("char_end", sa.Integer(), nullable=False),
        sa.Column("page", sa.Integer(), nullable=True),
        sa.Column("time_start_ms", sa.BigInteger(), nullable=True),
        sa.Column("time_end_ms", sa.BigInteger(), nullable=True),
        sa.Column("speaker", sa.String(200), nullable=True),
        sa.Column("heading", sa.Text(), nullable=True),
        sa.CheckConstraint(f"kind IN ({_KINDS})", name="ck_source_segments_kind"),
        sa.CheckConstraint("char_start >= 0 AND char_end >= char_start",
                           name="ck_source_segments_range"),
        sa.CheckConstraint(
            "time_start_ms IS NULL OR (time_start_ms >= 0 AND time_end_ms >= time_start_ms)",
            name="ck_source_segments_times"),
        sa.UniqueConstraint("source_id", "ordinal", name="uq_source_segments_ordinal"),
    )
    op.create_index("ix_source_segments_place", "source_segments",
                    ["source_id", "kind", "char_start"])

    op.add_column("fragments", sa.Column("speaker", sa.String(200), nullable=True))
    op.add_column("fragments", sa.Column("mixes_speakers", sa.Boolean(), nullable=False,
                                         server_default=sa.false()))
    op.add_column("fragments", sa.Column("page_first", sa.Integer(), nullable=True))
    op.add_column("fragments", sa.Column("page_last", sa.Integer(), nullable=True))
    op.add_column("fragments", sa.Column("time_start_ms", sa.BigInteger(), nullable=True))
    op.add_column("fragments", sa.Column("time_end_ms", sa.BigInteger(), nullable=True))
    op.add_column("fragments", sa.Column("chapter", sa.Text(), nullable=True))


def downgrade() -> None:
    for column in ("chapter", "time_end_ms", "time_start_ms", "page_last", "page_first",
                   "mixes_speakers", "speaker"):
        op.drop_column("fragments", column)
    op.drop_index("ix_source_segments_place", table_name="source_segments")
    op.drop_table("source_segments")
    for column in ("subject_speakers", "subject_aliases", "subject_name", "conversion_notes",
                   "original_bytes"):
        op.drop_column("sources", column)
    op.drop_index("ix_sources_original_sha256", table_name="sources")
    for column in ("original_sha256", "original_file_name"):
        op.drop_column("sources", column)
    op.drop_constraint("ck_sources_content_format", "sources")
    op.drop_column("sources", "content_format")
