"""Full-text search over fragments: the stored `search_vector`, ranked, with highlighted snippets.

Each fragment's vector is built with its source's configuration (`search_config`: english,
portuguese or simple). A query is parsed with web-search syntax (`"exact phrase"`, `or`,
`-excluded`) once per configuration, and a fragment matches the query parsed with its own
configuration. Each branch is `search_config = X AND search_vector @@ query_X`, so the planner
answers the whole match with bitmap scans of the GIN index `ix_fragments_search`.

`websearch_to_tsquery` accepts any text without a syntax error; the length and NUL checks
are the caller's (see `check_query`). Results are ordered by rank (`ts_rank_cd`, normalised
to 0..1) then id; the cursor carries both, plus a fingerprint of the query and filter so that a
cursor of one search is refused by another.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import json
import math
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import DOUBLE_PRECISION
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from db.fragments import FragmentFilterSpec, apply_fragment_filter
from db.tables import FragmentRow, RelationshipRow, SourceRow
from domain.errors import FieldIssue, InvalidInput

_F = FragmentRow.__table__.c  # type: ignore[attr-defined]
_S = SourceRow.__table__.c  # type: ignore[attr-defined]
_R = RelationshipRow.__table__.c  # type: ignore[attr-defined]

CONFIGS = ("english", "portuguese", "simple")
MAX_QUERY_CHARS = 500
# ts_rank_cd normalisation: divide by 1 + log(length) (1), then map to rank/(rank+1) (32).
RANK_NORMALISATION = 1 | 32
# Private-use characters mark matches; the snippet is HTML-escaped, then they become <mark>.
_OPEN, _CLOSE = "\ue000", "\ue001"
HEADLINE_OPTIONS = (f"StartSel={_OPEN}, StopSel={_CLOSE}, MaxWords=40, MinWords=15, "
                    'ShortWord=2, MaxFragments=2, FragmentDelimiter=" … "')


@dataclass(slots=True)
class SearchHit:
    """One matching fragment with its rank, its snippet and its cursor."""

    row: FragmentRow
    rank: float
    snippet: str
    cursor: str


@dataclass(slots=True)
class SearchPage:
    """A page of hits, best first."""

    hits: list[SearchHit]
    has_next_page: bool
    has_previous_page: bool
    total_count: int


def check_query(text: str, path: tuple[str, ...] = ("query",)) -> str:
    """The query trimmed; empty, overlong, NUL-bearing or non-Unicode text is bad input."""
    text = text.strip()
    problem = None
    if not text:
        problem = "must contain at least one word"
    elif len(text) > MAX_QUERY_CHARS:
        problem = f"has {len(text)} characters; the limit is {MAX_QUERY_CHARS}"
    elif "\x00" in text:
        problem = "must not contain NUL characters"
    else:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            problem = "must be valid Unicode (no lone surrogates)"
    if problem:
        raise InvalidInput([FieldIssue(path, problem)])
    return text


def _regconfig(name: str) -> Any:
    assert name in CONFIGS  # a fixed name, never client text
    return sa.literal_column(f"'{name}'::regconfig")


class _Parsed:
    """The query text parsed once per configuration (SQL expressions)."""

    def __init__(self, text: str) -> None:
        query = sa.bindparam("search_query", value=text, type_=sa.Text)
        self.by_config = {name: sa.func.websearch_to_tsquery(_regconfig(name), query)
                          for name in CONFIGS}

    def match(self) -> Any:
        """One indexable branch per configuration."""
        return sa.or_(*(sa.and_(_F.search_config == _regconfig(name),
                                _F.search_vector.op("@@")(tsquery))
                        for name, tsquery in self.by_config.items()))

    def own(self) -> Any:
        """The query parsed with each row's configuration."""
        whens = [(_F.search_config == _regconfig(name), tsquery)
                 for name, tsquery in self.by_config.items() if name != "simple"]
        return sa.case(*whens, else_=self.by_config["simple"])

    def rank(self) -> Any:
        raw = sa.func.ts_rank_cd(_F.search_vector, self.own(), RANK_NORMALISATION)
        return sa.cast(raw, DOUBLE_PRECISION)

    def headline(self) -> Any:
        return sa.func.ts_headline(_F.search_config, _F.content, self.own(),
                                   sa.literal(HEADLINE_OPTIONS, sa.Text))


def _fingerprint(text: str, flt: FragmentFilterSpec | None) -> str:
    return hashlib.sha256(f"{text}\x1f{flt!r}".encode()).hexdigest()[:12]


def encode_cursor(fingerprint: str, rank: float, row_id: int) -> str:
    """An opaque cursor after the hit (rank, id) of one search."""
    raw = json.dumps({"o": "RANK", "q": fingerprint, "k": [rank, row_id]},
                     separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, fingerprint: str) -> tuple[float, int]:
    """(rank, id) from a cursor of this very search; anything else is bad input."""
    bad = InvalidInput.single(("after",), "is not a valid cursor for this search")
    if len(cursor) > 1000:
        raise bad
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        rank, row_id = data["k"]
        valid = (data["o"] == "RANK" and data["q"] == fingerprint
                 and isinstance(rank, int | float) and not isinstance(rank, bool)
                 and math.isfinite(rank)
                 and isinstance(row_id, int) and not isinstance(row_id, bool)
                 and -(2**63) <= row_id < 2**63)
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeError):
        raise bad from None
    if not valid:
        raise bad
    return float(rank), row_id


def render_snippet(raw: str) -> str:
    """HTML-escaped headline with matches wrapped in <mark>…</mark>."""
    return html.escape(raw, quote=False).replace(_OPEN, "<mark>").replace(_CLOSE, "</mark>")


def search_statement(text: str, flt: FragmentFilterSpec | None, limit: int,
                     after: tuple[float, int] | None = None) -> sa.Select[Any]:
    """The page query: rank the matches, keep `limit` after the cursor, headline only those."""
    parsed = _Parsed(text)
    rank = parsed.rank()
    ranked = apply_fragment_filter(
        sa.select(_F.id.label("hit_id"), rank.label("rank")).where(parsed.match()), flt)
    if after is not None:
        bound_rank, bound_id = after
        ranked = ranked.where(sa.or_(rank < bound_rank,
                                     sa.and_(rank == bound_rank, _F.id > bound_id)))
    page = ranked.order_by(rank.desc(), _F.id.asc()).limit(limit).subquery("page")
    return (sa.select(FragmentRow, page.c.rank, parsed.headline().label("snippet"))
            .join(page, _F.id == page.c.hit_id)
            .options(defer(FragmentRow.search_vector))  # type: ignore[arg-type]
            .order_by(page.c.rank.desc(), page.c.hit_id.asc()))


def count_statement(text: str, flt: FragmentFilterSpec | None) -> sa.Select[Any]:
    """How many fragments match in all."""
    return apply_fragment_filter(
        sa.select(sa.func.count()).select_from(FragmentRow).where(_Parsed(text).match()), flt)


async def search_fragments(session: AsyncSession, text: str, flt: FragmentFilterSpec | None,
                           first: int, after: str | None) -> SearchPage:
    """One page of fragments matching `text` (checked with `check_query`), best first."""
    fingerprint = _fingerprint(text, flt)
    bound = decode_cursor(after, fingerprint) if after else None
    rows = (await session.execute(search_statement(text, flt, first + 1, bound))).all()
    more = len(rows) > first
    hits = [SearchHit(row=row[0], rank=row.rank, snippet=render_snippet(row.snippet),
                      cursor=encode_cursor(fingerprint, row.rank, row[0].id))
            for row in rows[:first]]
    total = (await session.execute(count_statement(text, flt))).scalar_one()
    return SearchPage(hits=hits, has_next_page=more, has_previous_page=bound is not None,
                      total_count=int(total))


async def fragment_with_language(session: AsyncSession,
                                 fragment_id: int) -> tuple[FragmentRow, str] | None:
    """A fragment and its source's language."""
    row = (await session.execute(
        sa.select(FragmentRow, _S.language).join(SourceRow, _S.id == _F.source_id)
        .where(_F.id == fragment_id).options(defer(FragmentRow.search_vector))  # type: ignore[arg-type]
    )).first()
    return (row[0], row[1]) if row is not None else None


async def lexical_candidates(session: AsyncSession, anchor: FragmentRow, words: list[str],
                             limit: int) -> list[tuple[FragmentRow, str]]:
    """Fragments of other sources sharing any of `words`, best ranked first, not yet linked to
    the anchor; each with its source's language. Uses the search index like a search does."""
    if not words:
        return []
    parsed = _Parsed(" or ".join(words))
    linked = sa.exists().where(sa.or_(
        sa.and_(_R.fragment_id == anchor.id, _R.related_fragment_id == _F.id),
        sa.and_(_R.fragment_id == _F.id, _R.related_fragment_id == anchor.id)))
    rows = await session.execute(
        sa.select(FragmentRow, _S.language).join(SourceRow, _S.id == _F.source_id)
        .where(parsed.match(), _F.source_id != anchor.source_id, ~linked)
        .order_by(parsed.rank().desc(), _F.id).limit(limit)
        .options(defer(FragmentRow.search_vector)))  # type: ignore[arg-type]
    return [(row[0], row[1]) for row in rows.all()]
