"""SQLModel tables: the whole relational model of MMOS (docs/ARCHITECTURE.md, "Storage")."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlmodel import Field, SQLModel

from domain import model as m
from domain.documents import ContentFormat, SegmentKind

MONEY = sa.Numeric(18, 8)


def _values(enum_cls: type[Any]) -> str:
    return ", ".join(f"'{member.value}'" for member in enum_cls)


def _check(column: str, enum_cls: type[Any], name: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(f"{column} IN ({_values(enum_cls)})", name=name)


def _now_column(**kw: Any) -> Any:
    return sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now(), **kw)


def _money(nullable: bool = False) -> Any:
    if nullable:
        return sa.Column(MONEY, nullable=True)
    return sa.Column(MONEY, nullable=False, server_default="0")


def _jsonb(default: str = "'{}'::jsonb") -> Any:
    return sa.Column(pg.JSONB, nullable=False, server_default=sa.text(default))


class SourceRow(SQLModel, table=True):
    __tablename__ = "sources"
    __table_args__ = (
        _check("source_type", m.SourceType, "ck_sources_type"),
        _check("quality", m.SourceQuality, "ck_sources_quality"),
        _check("extraction_priority", m.ExtractionPriority, "ck_sources_priority"),
        _check("status", m.SourceStatus, "ck_sources_status"),
        _check("content_format", ContentFormat, "ck_sources_content_format"),
        sa.Index("ix_sources_listing", "created_at", "id"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True))
    source_code: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    title: str = Field(sa_column=sa.Column(sa.String(500), nullable=False))
    source_type: str = Field(sa_column=sa.Column(sa.String(32), nullable=False, index=True))
    quality: str = Field(sa_column=sa.Column(sa.String(16), nullable=False, index=True))
    extraction_priority: str = Field(sa_column=sa.Column(sa.String(16), nullable=False, index=True))
    status: str = Field(sa_column=sa.Column(sa.String(16), nullable=False, server_default="pending", index=True))
    content: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    content_sha256: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    word_count: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    char_count: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    language: str = Field(sa_column=sa.Column(sa.String(16), nullable=False, server_default="en", index=True))
    author: str | None = Field(default=None, sa_column=sa.Column(sa.String(300)))
    url: str | None = Field(default=None, sa_column=sa.Column(sa.String(2000)))
    source_date: date | None = Field(default=None, sa_column=sa.Column(sa.Date))
    notes: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    # How the content arrived (domain.documents.ContentFormat) and, for a file, its name and
    # the sha256 of its bytes; `content` is always the normalised text offsets refer to.
    content_format: str = Field(default="TEXT", sa_column=sa.Column(sa.String(16), nullable=False, server_default="TEXT"))
    original_file_name: str | None = Field(default=None, sa_column=sa.Column(sa.String(255)))
    original_sha256: str | None = Field(default=None, sa_column=sa.Column(sa.String(64), index=True))
    original_bytes: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    conversion_notes: list[str] = Field(default_factory=list, sa_column=_jsonb("'[]'::jsonb"))
    # The person the clone is about, and the speaker labels of the source that are theirs
    # (derived from the name, the aliases and the labelled turns; kept for the fragment filter).
    subject_name: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    subject_aliases: list[str] = Field(default_factory=list, sa_column=_jsonb("'[]'::jsonb"))
    subject_speakers: list[str] = Field(default_factory=list, sa_column=_jsonb("'[]'::jsonb"))
    created_at: datetime | None = Field(default=None, sa_column=_now_column())
    updated_at: datetime | None = Field(default=None, sa_column=_now_column())


class SourceSegmentRow(SQLModel, table=True):
    """Where a character range of a source's normalised text came from (DESIGN §17)."""

    __tablename__ = "source_segments"
    __table_args__ = (
        _check("kind", SegmentKind, "ck_source_segments_kind"),
        sa.CheckConstraint("char_start >= 0 AND char_end >= char_start", name="ck_source_segments_range"),
        sa.CheckConstraint("time_start_ms IS NULL OR (time_start_ms >= 0 AND time_end_ms >= time_start_ms)", name="ck_source_segments_times"),
        sa.UniqueConstraint("source_id", "ordinal", name="uq_source_segments_ordinal"),
        sa.Index("ix_source_segments_place", "source_id", "kind", "char_start"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True))
    source_id: int = Field(sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("sources.id", ondelete="CASCADE"), nullable=False))
    ordinal: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    kind: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    char_start: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    char_end: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    page: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    time_start_ms: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    time_end_ms: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    speaker: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    heading: str | None = Field(default=None, sa_column=sa.Column(sa.Text))


class ModelRow(SQLModel, table=True):
    """The model catalog: a LiteLLM model string with pricing and limits."""

    __tablename__ = "models"
    __table_args__ = (
        sa.CheckConstraint("input_cost_per_million IS NULL OR input_cost_per_million >= 0", name="ck_models_in_price"),
        sa.CheckConstraint("output_cost_per_million IS NULL OR output_cost_per_million >= 0", name="ck_models_out_price"),
        sa.CheckConstraint("batch_discount IS NULL OR (batch_discount >= 0 AND batch_discount < 1)", name="ck_models_batch_discount"),
        sa.CheckConstraint("(rpm IS NULL OR rpm > 0) AND (tpm IS NULL OR tpm > 0) AND (max_concurrency IS NULL OR max_concurrency > 0)", name="ck_models_limits"),
        sa.CheckConstraint("(cache_read_cost_per_million IS NULL OR cache_read_cost_per_million >= 0) AND (cache_write_cost_per_million IS NULL OR cache_write_cost_per_million >= 0)", name="ck_models_cache_prices"),
    )

    name: str = Field(sa_column=sa.Column(sa.String(100), primary_key=True))
    litellm_model: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    api_base: str | None = Field(default=None, sa_column=sa.Column(sa.String(500)))
    api_key_env: str | None = Field(default=None, sa_column=sa.Column(sa.String(100)))
    input_cost_per_million: Decimal | None = Field(default=None, sa_column=_money(nullable=True))
    output_cost_per_million: Decimal | None = Field(default=None, sa_column=_money(nullable=True))
    cache_read_cost_per_million: Decimal | None = Field(default=None, sa_column=_money(nullable=True))
    cache_write_cost_per_million: Decimal | None = Field(default=None, sa_column=_money(nullable=True))
    batch_discount: Decimal | None = Field(default=None, sa_column=sa.Column(sa.Numeric(5, 4), nullable=True))
    rpm: int | None = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    tpm: int | None = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    max_concurrency: int | None = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    price_source: str = Field(sa_column=sa.Column(sa.String(16), nullable=False, server_default="none"))
    context_window: int = Field(sa_column=sa.Column(sa.Integer, nullable=False, server_default="8192"))
    max_output_tokens: int = Field(sa_column=sa.Column(sa.Integer, nullable=False, server_default="4096"))
    enabled: bool = Field(sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.true()))
    is_local: bool = Field(sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.false()))
    notes: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    created_at: datetime | None = Field(default=None, sa_column=_now_column())
    updated_at: datetime | None = Field(default=None, sa_column=_now_column())


class BatchRow(SQLModel, table=True):
    """One processing run of one model over one or more sources, with a frozen config."""

    __tablename__ = "processing_batches"
    __table_args__ = (
        _check("status", m.BatchStatus, "ck_batches_status"),
        sa.CheckConstraint(f"strategy IS NULL OR strategy IN ({_values(m.Strategy)})", name="ck_batches_strategy"),
        sa.Index("ix_batches_listing", "created_at", "id"),
        sa.CheckConstraint("mode IN ('interactive', 'batch')", name="ck_batches_mode"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True))
    group_id: str = Field(sa_column=sa.Column(sa.String(36), nullable=False, index=True))
    model_name: str = Field(sa_column=sa.Column(sa.String(100), sa.ForeignKey("models.name"), nullable=False, index=True))
    status: str = Field(sa_column=sa.Column(sa.String(16), nullable=False, server_default="queued", index=True))
    strategy: str | None = Field(default=None, sa_column=sa.Column(sa.String(16)))
    mode: str = Field(default="interactive", sa_column=sa.Column(sa.String(16), nullable=False, server_default="interactive"))
    config: dict[str, Any] = Field(default_factory=dict, sa_column=_jsonb())
    forecast: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(pg.JSONB, nullable=True))
    decisions: list[Any] = Field(default_factory=list, sa_column=_jsonb("'[]'::jsonb"))
    budget_usd: Decimal | None = Field(default=None, sa_column=_money(nullable=True))
    spent_usd: Decimal = Field(default=Decimal(0), sa_column=_money())
    reserved_usd: Decimal = Field(default=Decimal(0), sa_column=_money())
    event_seq: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    error_message: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    created_at: datetime | None = Field(default=None, sa_column=_now_column())
    started_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True)))
    completed_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True)))


class RunRow(SQLModel, table=True):
    """One source inside one batch."""

    __tablename__ = "source_processing"
    __table_args__ = (
        _check("status", m.RunStatus, "ck_runs_status"),
        sa.UniqueConstraint("batch_id", "source_id", name="uq_runs_batch_source"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True))
    batch_id: int = Field(sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("processing_batches.id", ondelete="CASCADE"), nullable=False, index=True))
    source_id: int = Field(sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("sources.id", ondelete="CASCADE"), nullable=False, index=True))
    model_name: str = Field(sa_column=sa.Column(sa.String(100), nullable=False, index=True))
    status: str = Field(sa_column=sa.Column(sa.String(24), nullable=False, server_default="pending", index=True))
    attempts: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    chunk_count: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    chunks_done: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    fragment_count: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    grounded_count: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    input_tokens: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    output_tokens: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    cost_usd: Decimal = Field(default=Decimal(0), sa_column=_money())
    cached_input_tokens: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    cache_write_tokens: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    list_cost_usd: Decimal = Field(default=Decimal(0), sa_column=_money())
    cache_saved_usd: Decimal = Field(default=Decimal(0), sa_column=_money())
    batch_saved_usd: Decimal = Field(default=Decimal(0), sa_column=_money())
    llm_calls: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    latency_ms: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    chunks_failed: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    repair_calls: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    repair_cost_usd: Decimal = Field(default=Decimal(0), sa_column=_money())
    answers_read: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    answers_strict: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    version: int = Field(default=1, sa_column=sa.Column(sa.Integer, nullable=False, server_default="1"))
    reprocessed_from_id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("source_processing.id", ondelete="SET NULL"), index=True))
    error_message: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=_jsonb())
    created_at: datetime | None = Field(default=None, sa_column=_now_column())
    started_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True)))
    completed_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True)))


class FragmentRow(SQLModel, table=True):
    """One MIU with its exact span in the source and its provenance."""

    __tablename__ = "fragments"
    __table_args__ = (
        _check("grounding", m.Grounding, "ck_fragments_grounding"),
        _check("verification_status", m.VerificationStatus, "ck_fragments_verification"),
        _check("category", m.Category, "ck_fragments_category"),
        _check("fragment_type", m.FragmentType, "ck_fragments_type"),
        sa.CheckConstraint("relevance BETWEEN 1 AND 10", name="ck_fragments_relevance"),
        sa.CheckConstraint("confidence >= 0 AND confidence <= 1", name="ck_fragments_confidence"),
        sa.CheckConstraint("char_start IS NULL OR (char_start >= 0 AND char_end >= char_start)", name="ck_fragments_span"),
        sa.UniqueConstraint("run_id", "chunk_index", "ordinal", name="uq_fragments_run_chunk_ordinal"),
        sa.Index("ix_fragments_source_span", "source_id", "char_start"),
        sa.Index("ix_fragments_run_span", "run_id", "char_start"),
        sa.Index("ix_fragments_listing", "created_at", "id"),
        # The listing's default order (POSITION): without it every page sorts all fragments.
        sa.Index("ix_fragments_position", sa.text("coalesce(char_start, -1)"), "id"),
        sa.Index("ix_fragments_search", "search_vector", postgresql_using="gin"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True))
    fragment_code: str = Field(sa_column=sa.Column(sa.String(32), nullable=False, unique=True))
    run_id: int = Field(sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("source_processing.id", ondelete="CASCADE"), nullable=False))
    batch_id: int = Field(sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("processing_batches.id", ondelete="CASCADE"), nullable=False, index=True))
    source_id: int = Field(sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("sources.id", ondelete="CASCADE"), nullable=False, index=True))
    model_name: str = Field(sa_column=sa.Column(sa.String(100), nullable=False, index=True))
    chunk_index: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    ordinal: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    content: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    quote: str = Field(sa_column=sa.Column(sa.Text, nullable=False, server_default=""))
    char_start: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    char_end: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    grounding: str = Field(sa_column=sa.Column(sa.String(16), nullable=False, index=True))
    grounding_score: float = Field(sa_column=sa.Column(sa.Float, nullable=False, server_default="0"))
    category: str = Field(sa_column=sa.Column(sa.String(24), nullable=False, index=True))
    subcategory: str | None = Field(default=None, sa_column=sa.Column(sa.String(100)))
    fragment_type: str = Field(sa_column=sa.Column(sa.String(24), nullable=False, index=True))
    context: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    insight: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    relevance: int = Field(sa_column=sa.Column(sa.SmallInteger, nullable=False))
    confidence: float = Field(sa_column=sa.Column(sa.Float, nullable=False))
    is_complete: bool = Field(sa_column=sa.Column(sa.Boolean, nullable=False))
    has_clean_boundaries: bool = Field(sa_column=sa.Column(sa.Boolean, nullable=False))
    parse_notes: list[str] = Field(default_factory=list, sa_column=_jsonb("'[]'::jsonb"))
    # Where the span came from, derived from the source's segments when the fragment is stored.
    speaker: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    mixes_speakers: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.false()))
    page_first: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    page_last: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    time_start_ms: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    time_end_ms: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    chapter: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    raw_record: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(pg.JSONB, nullable=True))
    verification_status: str = Field(sa_column=sa.Column(sa.String(16), nullable=False, server_default="unverified", index=True))
    verified_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    verified_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True)))
    search_config: str = Field(sa_column=sa.Column(pg.REGCONFIG, nullable=False, server_default=sa.text("'simple'::regconfig")))
    search_vector: Any = Field(
        default=None,
        sa_column=sa.Column(
            pg.TSVECTOR,
            sa.Computed("to_tsvector(search_config, coalesce(content, '') || ' ' || coalesce(quote, ''))", persisted=True),
        ),
    )
    created_at: datetime | None = Field(default=None, sa_column=_now_column())


class FragmentCodeCounterRow(SQLModel, table=True):
    """Next number per category code, advanced with UPDATE … RETURNING (never MAX()+1)."""

    __tablename__ = "fragment_code_counters"

    category_code: str = Field(sa_column=sa.Column(sa.String(8), primary_key=True))
    last_value: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))


class TagRow(SQLModel, table=True):
    __tablename__ = "tags"

    id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True))
    name: str = Field(sa_column=sa.Column(sa.String(100), nullable=False, unique=True))
    category: str | None = Field(default=None, sa_column=sa.Column(sa.String(50)))
    created_at: datetime | None = Field(default=None, sa_column=_now_column())


class FragmentTagRow(SQLModel, table=True):
    __tablename__ = "fragment_tags"

    fragment_id: int = Field(sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("fragments.id", ondelete="CASCADE"), primary_key=True))
    tag_id: int = Field(sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True))
    created_at: datetime | None = Field(default=None, sa_column=_now_column())


class RelationshipRow(SQLModel, table=True):
    __tablename__ = "fragment_relationships"
    __table_args__ = (
        _check("relationship_type", m.RelationshipType, "ck_relationships_type"),
        sa.CheckConstraint("fragment_id <> related_fragment_id", name="ck_relationships_not_self"),
        sa.CheckConstraint("confidence >= 0 AND confidence <= 1", name="ck_relationships_confidence"),
        sa.UniqueConstraint("fragment_id", "related_fragment_id", "relationship_type", name="uq_relationships_pair_type"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True))
    fragment_id: int = Field(sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("fragments.id", ondelete="CASCADE"), nullable=False, index=True))
    related_fragment_id: int = Field(sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("fragments.id", ondelete="CASCADE"), nullable=False, index=True))
    relationship_type: str = Field(sa_column=sa.Column(sa.String(24), nullable=False))
    confidence: float = Field(sa_column=sa.Column(sa.Float, nullable=False, server_default="1"))
    notes: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    created_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    created_at: datetime | None = Field(default=None, sa_column=_now_column())


class VerificationEventRow(SQLModel, table=True):
    """Audit trail of every verification decision."""

    __tablename__ = "verification_events"
    __table_args__ = (_check("decision", m.VerificationStatus, "ck_verification_decision"),)

    id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True))
    fragment_id: int = Field(sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("fragments.id", ondelete="CASCADE"), nullable=False, index=True))
    decision: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    previous_status: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    reviewer: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    notes: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    created_at: datetime | None = Field(default=None, sa_column=_now_column())


class ModelPerformanceRow(SQLModel, table=True):
    """Measured quality, cost and speed of one run against the reference in force."""

    __tablename__ = "model_performance"

    id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True))
    run_id: int = Field(sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("source_processing.id", ondelete="CASCADE"), nullable=False, unique=True))
    source_id: int = Field(sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("sources.id", ondelete="CASCADE"), nullable=False, index=True))
    batch_id: int = Field(sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("processing_batches.id", ondelete="CASCADE"), nullable=False))
    model_name: str = Field(sa_column=sa.Column(sa.String(100), nullable=False, index=True))
    source_type: str = Field(sa_column=sa.Column(sa.String(32), nullable=False, index=True))
    reference_kind: str = Field(sa_column=sa.Column(sa.String(24), nullable=False))
    reference_model: str | None = Field(default=None, sa_column=sa.Column(sa.String(100)))
    quality_score: float = Field(sa_column=sa.Column(sa.Float, nullable=False))
    quality_low: float = Field(sa_column=sa.Column(sa.Float, nullable=False))
    quality_high: float = Field(sa_column=sa.Column(sa.Float, nullable=False))
    provisional: bool = Field(sa_column=sa.Column(sa.Boolean, nullable=False))
    grounded_rate: float = Field(sa_column=sa.Column(sa.Float, nullable=False))
    miu_rate: float = Field(sa_column=sa.Column(sa.Float, nullable=False))
    precision: float | None = Field(default=None, sa_column=sa.Column(sa.Float))
    recall: float | None = Field(default=None, sa_column=sa.Column(sa.Float))
    f1: float | None = Field(default=None, sa_column=sa.Column(sa.Float))
    coverage: float = Field(sa_column=sa.Column(sa.Float, nullable=False))
    mean_relevance: float = Field(sa_column=sa.Column(sa.Float, nullable=False))
    fragment_count: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    grounded_fragment_count: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    cost_usd: Decimal = Field(sa_column=_money())
    cost_per_fragment: Decimal | None = Field(default=None, sa_column=_money(nullable=True))
    cost_per_1k_chars: Decimal | None = Field(default=None, sa_column=_money(nullable=True))
    latency_ms: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    computed_at: datetime | None = Field(default=None, sa_column=_now_column())
    is_reference: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.false()))
    reference_run_id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))
    chunk_tallies: list[Any] = Field(default_factory=list, sa_column=_jsonb("'[]'::jsonb"))
    vs_reference: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(pg.JSONB, nullable=True))
    span_metrics: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(pg.JSONB, nullable=True))
    unverified_score: float | None = Field(default=None, sa_column=sa.Column(sa.Float, nullable=True))
    unverified_kind: str | None = Field(default=None, sa_column=sa.Column(sa.String(24), nullable=True))


class ReferenceFragmentRow(SQLModel, table=True):
    """A fragment a team made by hand or with a chat model, imported as reference data."""

    __tablename__ = "reference_fragments"
    __table_args__ = (
        sa.UniqueConstraint("source_id", "external_id", name="uq_reference_fragments_id"),
        sa.CheckConstraint("grounding IN ('exact', 'fuzzy', 'ungrounded')", name="ck_reference_fragments_grounding"),
        sa.CheckConstraint("verification_status IN ('verified', 'needs_review')", name="ck_reference_fragments_verification"),
        _check("category", m.Category, "ck_reference_fragments_category"),
        sa.CheckConstraint("char_start IS NULL OR (char_start >= 0 AND char_end >= char_start)", name="ck_reference_fragments_span"),
        sa.CheckConstraint("relevance IS NULL OR relevance BETWEEN 1 AND 10", name="ck_reference_fragments_relevance"),
        sa.Index("ix_reference_fragments_span", "source_id", "char_start"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True))
    source_id: int = Field(sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("sources.id", ondelete="CASCADE"), nullable=False))
    external_id: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    content: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    char_start: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    char_end: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    grounding: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    grounding_score: float = Field(default=0.0, sa_column=sa.Column(sa.Float, nullable=False, server_default="0"))
    closest_start: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    closest_end: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    category: str = Field(sa_column=sa.Column(sa.String(24), nullable=False))
    fragment_type: str = Field(sa_column=sa.Column(sa.String(24), nullable=False))
    relevance: int | None = Field(default=None, sa_column=sa.Column(sa.SmallInteger, nullable=True))
    context: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    insight: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    tags: list[str] = Field(default_factory=list, sa_column=_jsonb("'[]'::jsonb"))
    location: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    source_label: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    metadata_: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column("metadata", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")))
    raw_record: dict[str, Any] = Field(default_factory=dict, sa_column=_jsonb())
    verification_status: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    reviewer: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    provenance_file: str | None = Field(default=None, sa_column=sa.Column(sa.String(500)))
    imported_at: datetime | None = Field(default=None, sa_column=_now_column())
    updated_at: datetime | None = Field(default=None, sa_column=_now_column())


class JobRow(SQLModel, table=True):
    """A durable unit of scheduled work; the broker message only carries its id."""

    __tablename__ = "processing_queue"
    __table_args__ = (
        _check("status", m.JobStatus, "ck_jobs_status"),
        _check("kind", m.JobKind, "ck_jobs_kind"),
        sa.Index("ix_jobs_claim", "status", sa.text("priority DESC"), "available_at", "id"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True))
    kind: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    run_id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("source_processing.id", ondelete="CASCADE"), index=True))
    batch_id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("processing_batches.id", ondelete="CASCADE"), index=True))
    priority: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    status: str = Field(sa_column=sa.Column(sa.String(16), nullable=False, server_default="waiting"))
    attempts: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    max_attempts: int = Field(default=3, sa_column=sa.Column(sa.Integer, nullable=False, server_default="3"))
    lease_owner: str | None = Field(default=None, sa_column=sa.Column(sa.String(100)))
    lease_expires_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True)))
    available_at: datetime | None = Field(default=None, sa_column=_now_column())
    message_sent_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True)))
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=_jsonb())
    error_message: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    created_at: datetime | None = Field(default=None, sa_column=_now_column())
    updated_at: datetime | None = Field(default=None, sa_column=_now_column())


class BudgetDayRow(SQLModel, table=True):
    """Spend counters of one UTC day; reservations are one conditional UPDATE against them."""

    __tablename__ = "budget_days"
    __table_args__ = (
        sa.CheckConstraint("spent_usd >= 0 AND reserved_usd >= 0", name="ck_budget_days_non_negative"),
    )

    day: date = Field(sa_column=sa.Column(sa.Date, primary_key=True))
    spent_usd: Decimal = Field(default=Decimal(0), sa_column=_money())
    reserved_usd: Decimal = Field(default=Decimal(0), sa_column=_money())
    updated_at: datetime | None = Field(default=None, sa_column=_now_column())


class LedgerRow(SQLModel, table=True):
    """One provider call's money: reserved before, settled (or released) after."""

    __tablename__ = "budget_ledger"
    __table_args__ = (
        sa.CheckConstraint("status IN ('reserved', 'settled', 'released')", name="ck_ledger_status"),
        sa.Index("ix_ledger_open", "status", "expires_at"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True))
    day: date = Field(sa_column=sa.Column(sa.Date, nullable=False, index=True))
    batch_id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("processing_batches.id", ondelete="SET NULL"), index=True))
    run_id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("source_processing.id", ondelete="SET NULL"), index=True))
    job_id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    model_name: str = Field(sa_column=sa.Column(sa.String(100), nullable=False, index=True))
    call_kind: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    status: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    reserved_usd: Decimal = Field(sa_column=_money())
    actual_usd: Decimal = Field(default=Decimal(0), sa_column=_money())
    input_tokens: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    output_tokens: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    cached_input_tokens: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    cache_write_tokens: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    list_cost_usd: Decimal = Field(default=Decimal(0), sa_column=_money())
    cache_saved_usd: Decimal = Field(default=Decimal(0), sa_column=_money())
    batch_saved_usd: Decimal = Field(default=Decimal(0), sa_column=_money())
    outcome: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    created_at: datetime | None = Field(default=None, sa_column=_now_column())
    settled_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True)))
    expires_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))


class ProviderBatchRow(SQLModel, table=True):
    """One submission of some of a run's chunks to a provider's batch API (durable, resumable)."""

    __tablename__ = "provider_batches"
    __table_args__ = (
        sa.CheckConstraint("status IN ('submitting', 'submitted', 'collected', 'abandoned')", name="ck_provider_batches_status"),
        sa.Index("ix_provider_batches_run", "run_id", "status"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True))
    run_id: int = Field(sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("source_processing.id", ondelete="CASCADE"), nullable=False))
    idempotency_key: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    status: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    provider: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    provider_batch_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    provider_status: str | None = Field(default=None, sa_column=sa.Column(sa.String(32)))
    input_file_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    output_file_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    error_file_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    chunks: list[Any] = Field(default_factory=list, sa_column=_jsonb("'[]'::jsonb"))
    reservations: dict[str, Any] = Field(default_factory=dict, sa_column=_jsonb())
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    polls: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    created_at: datetime | None = Field(default=None, sa_column=_now_column())
    updated_at: datetime | None = Field(default=None, sa_column=_now_column())


class SettingRow(SQLModel, table=True):
    """Operator-set values: daily budget, fragment cost limit, quality thresholds and weights."""

    __tablename__ = "settings"

    key: str = Field(sa_column=sa.Column(sa.String(100), primary_key=True))
    value: Any = Field(sa_column=sa.Column(pg.JSONB, nullable=False))
    updated_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    updated_at: datetime | None = Field(default=None, sa_column=_now_column())


class BatchEventRow(SQLModel, table=True):
    """Progress events of a batch, gap-free `seq` per batch (the durable side of the bus)."""

    __tablename__ = "batch_events"

    batch_id: int = Field(sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("processing_batches.id", ondelete="CASCADE"), primary_key=True))
    seq: int = Field(sa_column=sa.Column(sa.BigInteger, primary_key=True))
    kind: str = Field(sa_column=sa.Column(sa.String(24), nullable=False))
    run_id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=_jsonb())
    created_at: datetime | None = Field(default=None, sa_column=_now_column())


class WorkerRow(SQLModel, table=True):
    """Heartbeats of worker processes (queue status shows the workers seen)."""

    __tablename__ = "workers"

    worker_id: str = Field(sa_column=sa.Column(sa.String(100), primary_key=True))
    hostname: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    pid: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    # What the worker can call (domain/preflight.py `WorkerReach.to_json`); `[]` until its
    # first report.
    providers: Any = Field(default_factory=list, sa_column=_jsonb("'[]'::jsonb"))
    started_at: datetime | None = Field(default=None, sa_column=_now_column())
    last_seen_at: datetime | None = Field(default=None, sa_column=_now_column())


class ApiKeyRow(SQLModel, table=True):
    """API keys, stored as hashes only."""

    __tablename__ = "api_keys"
    __table_args__ = (sa.CheckConstraint("role IN ('viewer', 'editor', 'operator')", name="ck_api_keys_role"),)

    id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True))
    name: str = Field(sa_column=sa.Column(sa.String(100), nullable=False))
    prefix: str = Field(sa_column=sa.Column(sa.String(16), nullable=False, unique=True))
    key_hash: str = Field(sa_column=sa.Column(sa.String(128), nullable=False))
    role: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    created_at: datetime | None = Field(default=None, sa_column=_now_column())
    revoked_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True)))
    last_used_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True)))


class RunChunkRow(SQLModel, table=True):
    """Progress of one chunk of a run: a done chunk is never paid for twice."""

    __tablename__ = "run_chunks"

    run_id: int = Field(sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("source_processing.id", ondelete="CASCADE"), primary_key=True))
    chunk_index: int = Field(sa_column=sa.Column(sa.Integer, primary_key=True))
    char_start: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    char_end: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    status: str = Field(sa_column=sa.Column(sa.String(16), nullable=False, server_default="done"))
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    fragment_count: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    input_tokens: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    output_tokens: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    cost_usd: Decimal = Field(default=Decimal(0), sa_column=_money())
    latency_ms: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    llm_calls: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    completed_at: datetime | None = Field(default=None, sa_column=_now_column())


class RunAnswerRow(SQLModel, table=True):
    """A model's raw answer to one call, compressed: a run can be read again from these after
    a parser or grounder upgrade without paying the provider again."""

    __tablename__ = "run_answers"
    __table_args__ = (
        sa.CheckConstraint("call_kind IN ('extract', 'repair')", name="ck_run_answers_kind"),
        sa.Index("ix_run_answers_run_chunk", "run_id", "chunk_index", "part", "id"),
        sa.Index("ix_run_answers_created", "created_at"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True))
    run_id: int = Field(sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("source_processing.id", ondelete="CASCADE"), nullable=False))
    chunk_index: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    part: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    call_kind: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    char_start: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    char_end: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    finish_reason: str | None = Field(default=None, sa_column=sa.Column(sa.String(32)))
    readable: bool = Field(sa_column=sa.Column(sa.Boolean, nullable=False))
    strict: bool = Field(sa_column=sa.Column(sa.Boolean, nullable=False))
    problem: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    body: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))
    body_chars: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    superseded: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.false()))
    created_at: datetime | None = Field(default=None, sa_column=_now_column())
