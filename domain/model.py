"""Vocabulary of MMOS: enumerations and small value objects shared by every layer."""

from __future__ import annotations

import enum
import functools
import re
import unicodedata
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


_NOT_ALNUM = re.compile(r"[\W_]+")  # \w is str.isalnum() plus "_"


@functools.lru_cache(maxsize=4096)
def label_key(raw: str) -> str:
    """A label reduced for matching: accents stripped, case folded, letters and digits only.

    "Valores & Crenças", "values-and-beliefs" and "VALUES_BELIEFS" differ only in what this drops
    or keeps ("valorescrencas", "valuesandbeliefs", "valuesbeliefs"); the alias tables hold keys.
    Cached: answers repeat the same few labels and field names in every fragment.
    """
    return _NOT_ALNUM.sub("", unicodedata.normalize("NFKD", raw).casefold())


class FragmentType(enum.StrEnum):
    DIRECT_QUOTE = "direct_quote"
    PARAPHRASE = "paraphrase"
    DESCRIPTION = "description"
    EXAMPLE = "example"
    PATTERN = "pattern"
    ANECDOTE = "anecdote"
    ANALYSIS = "analysis"
    SYNTHESIS = "synthesis"

    @classmethod
    def lookup(cls, raw: str | None) -> FragmentType | None:
        """The taxonomy's type for a model's label in any case, spelling or in Portuguese; None
        when the label is empty or unknown."""
        key = label_key((raw or "")[:_MAX_LABEL_CHARS])
        if not key:
            return None
        found = _FRAGMENT_TYPE_ALIASES.get(key)
        if found is None and key.endswith("s"):
            # English plurals: "examples", "patterns" (Portuguese ones are in the table).
            found = _FRAGMENT_TYPE_ALIASES.get(key[:-1])
        return found

    @classmethod
    def parse(cls, raw: str | None) -> FragmentType:
        """Map a model's fragment type label onto the taxonomy (PARAPHRASE when empty/unknown)."""
        return cls.lookup(raw) or cls.PARAPHRASE


# Exact label keys (label_key): no prefix matching, which once read "comportamental" as
# communicative. Everything domain/extraction.py's fragment_type_of knew is here.
_FRAGMENT_TYPE_ALIASES: dict[str, FragmentType] = {
    **{member.value.replace("_", ""): member for member in FragmentType},
    "quote": FragmentType.DIRECT_QUOTE,
    "quotation": FragmentType.DIRECT_QUOTE,
    "directquotation": FragmentType.DIRECT_QUOTE,
    "citation": FragmentType.DIRECT_QUOTE,
    "verbatim": FragmentType.DIRECT_QUOTE,
    "story": FragmentType.ANECDOTE,
    "stories": FragmentType.ANECDOTE,
    "habit": FragmentType.PATTERN,
    "summary": FragmentType.SYNTHESIS,
    # Portuguese (MMOS v5 documents): accents are stripped by label_key.
    "citacaodireta": FragmentType.DIRECT_QUOTE,
    "citacao": FragmentType.DIRECT_QUOTE,
    "citacoes": FragmentType.DIRECT_QUOTE,
    "parafrase": FragmentType.PARAPHRASE,
    "descricao": FragmentType.DESCRIPTION,
    "descricoes": FragmentType.DESCRIPTION,
    "exemplo": FragmentType.EXAMPLE,
    "padrao": FragmentType.PATTERN,
    "padroes": FragmentType.PATTERN,
    "anedota": FragmentType.ANECDOTE,
    "analise": FragmentType.ANALYSIS,
    "sintese": FragmentType.SYNTHESIS,
    "resumo": FragmentType.SYNTHESIS,
}
# Labels are short; a longer one is cut before matching (a model may send anything).
_MAX_LABEL_CHARS = 100


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
    def lookup(cls, raw: str | None) -> Category | None:
        """The taxonomy's category for a model's label in any case or spelling, by its code
        (BIO…) or its Portuguese name; None when the label is empty or unknown."""
        key = label_key((raw or "")[:_MAX_LABEL_CHARS])
        if not key:
            return None
        found = _CATEGORY_ALIASES.get(key)
        if found is not None:
            return found
        for stem, category in _CATEGORY_STEMS:
            if key.startswith(stem):
                return category
        return None

    @classmethod
    def parse(cls, raw: str | None) -> Category:
        """Map a model's free-form category label onto the taxonomy (GENERAL when empty/unknown)."""
        return cls.lookup(raw) or cls.GENERAL


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

# Exact label keys first: the values, the codes, English and Portuguese names (DESIGN §16).
_CATEGORY_ALIASES: dict[str, Category] = {
    **{member.value.replace("_", ""): member for member in Category},
    **{code.lower(): member for member, code in _CATEGORY_CODES.items()},
    "biography": Category.BIOGRAPHICAL,
    "biografico": Category.BIOGRAPHICAL,
    "cognition": Category.COGNITIVE,
    "cognitivo": Category.COGNITIVE,
    "communication": Category.COMMUNICATIVE,
    "comunicativo": Category.COMMUNICATIVE,
    "comunicacional": Category.COMMUNICATIVE,
    "behavior": Category.BEHAVIORAL,
    "behaviour": Category.BEHAVIORAL,
    "behavioural": Category.BEHAVIORAL,
    "comportamental": Category.BEHAVIORAL,
    "values": Category.VALUES_BELIEFS,
    "beliefs": Category.VALUES_BELIEFS,
    "valuesandbeliefs": Category.VALUES_BELIEFS,
    "valoresecrencas": Category.VALUES_BELIEFS,
    "valorescrencas": Category.VALUES_BELIEFS,
    "emotion": Category.EMOTIONAL,
    "emocional": Category.EMOTIONAL,
    "metacognition": Category.META_COGNITIVE,
    "metacognitivo": Category.META_COGNITIVE,
    "geral": Category.GENERAL,
}

# Then stems, long enough to be unambiguous ("com" alone once caught "comportamental");
# "metacog" is tried before "cogni" only for clarity: a key starts with one or the other.
_CATEGORY_STEMS: tuple[tuple[str, Category], ...] = (
    ("metacog", Category.META_COGNITIVE),
    ("biogra", Category.BIOGRAPHICAL),
    ("cogni", Category.COGNITIVE),
    ("communic", Category.COMMUNICATIVE),
    ("comunic", Category.COMMUNICATIVE),
    ("behav", Category.BEHAVIORAL),
    ("comport", Category.BEHAVIORAL),
    ("value", Category.VALUES_BELIEFS),
    ("valor", Category.VALUES_BELIEFS),
    ("belief", Category.VALUES_BELIEFS),
    ("crenc", Category.VALUES_BELIEFS),
    ("soci", Category.SOCIAL),
    ("emoti", Category.EMOTIONAL),
    ("emoc", Category.EMOTIONAL),
)


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
    # Finished with some chunks failed (unreadable answers): its fragments and costs stand.
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"
    SKIPPED = "skipped"
    WAITING_BUDGET = "waiting_budget"
    STOPPED_COST_LIMIT = "stopped_cost_limit"


# Runs that finished with results: measured, compared and reported.
FINISHED_RUN = (RunStatus.COMPLETED.value, RunStatus.COMPLETED_WITH_ERRORS.value)


class JobStatus(enum.StrEnum):
    WAITING = "waiting"
    CLAIMED = "claimed"
    WAITING_BUDGET = "waiting_budget"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobKind(enum.StrEnum):
    EXTRACT_RUN = "extract_run"
    CANCEL_PROVIDER_BATCH = "cancel_provider_batch"


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
