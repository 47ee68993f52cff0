"""Vocabulary of MMOS: enumerations and small value objects shared by every layer."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class SourceType(enum.StrEnum):
    INTERVIEW = "interview"
    PODCAST = "podcast"
    VIDEO = "video"
    BOOK = "book"
    ARTICLE = "article"
    SOCIAL_MEDIA = "social_media"
    EMAIL = "email"
    DOCUMENT = "document"
    OBSERVATION = "observation"
    CONVERSATION = "conversation"
    PRESENTATION = "presentation"
    WORKSHOP = "workshop"
    WEBINAR = "webinar"
    LECTURE = "lecture"
    DOCUMENTARY = "documentary"


class SourceQuality(enum.StrEnum):
    PRIMARY = "primary"
    SECONDARY = "secondary"
    TERTIARY = "tertiary"


class ExtractionPriority(enum.StrEnum):
    CRITICAL = "critical"
    VERY_HIGH = "very_high"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        """Higher runs first."""
        return {"critical": 50, "very_high": 40, "high": 30, "medium": 20, "low": 10}[self.value]


class SourceStatus(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    PROCESSED = "processed"
    FAILED = "failed"


class FragmentType(enum.StrEnum):
    DIRECT_QUOTE = "direct_quote"
    PARAPHRASE = "paraphrase"
    DESCRIPTION = "description"
    EXAMPLE = "example"
    PATTERN = "pattern"
    ANECDOTE = "anecdote"
    ANALYSIS = "analysis"
    SYNTHESIS = "synthesis"


class Category(enum.StrEnum):
    BIOGRAPHICAL = "biographical"
    COGNITIVE = "cognitive"
    COMMUNICATIVE = "communicative"
    BEHAVIORAL = "behavioral"
    VALUES_BELIEFS = "values_beliefs"
    SOCIAL = "social"
    EMOTIONAL = "emotional"
    META_COGNITIVE = "meta_cognitive"
    GENERAL = "general"

    @property
    def code(self) -> str:
        """The CAT part of a fragment code FRAG_<CAT>_<NNN>."""
        return _CATEGORY_CODES[self]

    @classmethod
    def parse(cls, raw: str | None) -> Category:
        """Map a model's free-form category label onto the taxonomy (GENERAL when unknown)."""
        if not raw:
            return cls.GENERAL
        key = "".join(ch for ch in raw.lower() if ch.isalnum())
        for alias, category in _CATEGORY_ALIASES.items():
            if key == alias or key.startswith(alias):
                return category
        return cls.GENERAL


_CATEGORY_CODES = {
    Category.BIOGRAPHICAL: "BIO",
    Category.COGNITIVE: "COG",
    Category.COMMUNICATIVE: "COM",
    Category.BEHAVIORAL: "BEH",
    Category.VALUES_BELIEFS: "VAL",
    Category.SOCIAL: "SOC",
    Category.EMOTIONAL: "EMO",
    Category.META_COGNITIVE: "META",
    Category.GENERAL: "GEN",
}

_CATEGORY_ALIASES = {
    "bio": Category.BIOGRAPHICAL,
    "metacog": Category.META_COGNITIVE,
    "meta": Category.META_COGNITIVE,
    "cog": Category.COGNITIVE,
    "com": Category.COMMUNICATIVE,
    "beh": Category.BEHAVIORAL,
    "val": Category.VALUES_BELIEFS,
    "belief": Category.VALUES_BELIEFS,
    "soc": Category.SOCIAL,
    "emo": Category.EMOTIONAL,
}


class RelationshipType(enum.StrEnum):
    SUPPORTS = "supports"
    CONTRADICTS = "contradicts"
    ELABORATES = "elaborates"
    EVOLVES_FROM = "evolves_from"
    RELATED_TO = "related_to"
    DEPENDS_ON = "depends_on"
    CONFLICTS_WITH = "conflicts_with"


class Grounding(enum.StrEnum):
    EXACT = "exact"
    FUZZY = "fuzzy"
    UNGROUNDED = "ungrounded"


class VerificationStatus(enum.StrEnum):
    UNVERIFIED = "unverified"
    VERIFIED = "verified"
    REJECTED = "rejected"
    NEEDS_REVIEW = "needs_review"


class BatchStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class RunStatus(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    WAITING_BUDGET = "waiting_budget"
    STOPPED_COST_LIMIT = "stopped_cost_limit"


class JobStatus(enum.StrEnum):
    WAITING = "waiting"
    CLAIMED = "claimed"
    WAITING_BUDGET = "waiting_budget"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobKind(enum.StrEnum):
    EXTRACT_RUN = "extract_run"


class Strategy(enum.StrEnum):
    PROGRESSIVE = "progressive"
    AGGRESSIVE = "aggressive"
    CONSERVATIVE = "conservative"


class ConfidenceBand(enum.StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    QUESTIONABLE = "questionable"

    @classmethod
    def of(cls, confidence: float) -> ConfidenceBand:
        if confidence >= 0.8:
            return cls.HIGH
        if confidence >= 0.6:
            return cls.MEDIUM
        if confidence >= 0.4:
            return cls.LOW
        return cls.QUESTIONABLE


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open character span [start, end) in a source's content (code point indices)."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start:
            raise ValueError(f"invalid span [{self.start}, {self.end})")

    @property
    def length(self) -> int:
        return self.end - self.start

    def overlap(self, other: Span) -> int:
        return max(0, min(self.end, other.end) - max(self.start, other.start))

    def iou(self, other: Span) -> float:
        inter = self.overlap(other)
        union = self.length + other.length - inter
        return inter / union if union else 0.0
