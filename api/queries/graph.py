"""Graph queries: full-text search, tags, relationship suggestions, fragment coverage."""

from __future__ import annotations

import strawberry
from strawberry import relay

from api.errors import public
from api.ids import parse_id
from api.types.graph import (
    FragmentCoverage,
    FragmentSearchConnection,
    FragmentSearchHit,
    RelationshipSuggestion,
    Tag,
)
from api.types.processing import Fragment, FragmentFilter, prefetch_sources
from db import graph
from db.keyset import validate_page
from db.search import (
    check_query,
    fragment_with_language,
    lexical_candidates,
    search_fragments,
)
from db.sources import SourceRepository
from domain.errors import DomainError, FieldIssue, InvalidInput, NotFound
from domain.relationships import Passage, content_words, suggest

MAX_TAGS_LISTED = 500
MAX_SUGGESTIONS = 50
CANDIDATE_POOL = 200  # lexical candidates ranked by the index before the finer scoring
ANCHOR_WORDS = 32  # distinct content words of the anchor that look for candidates


def _text_argument(value: str | None, name: str, max_len: int) -> str | None:
    if value is None or not value.strip():
        return None
    problem = None
    if len(value) > max_len:
        problem = f"must be at most {max_len} characters"
    elif "\x00" in value:
        problem = "must not contain NUL characters"
    else:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            problem = "must be valid Unicode (no lone surrogates)"
    if problem:
        raise InvalidInput([FieldIssue((name,), problem)])
    return value.strip()


async def _suggestions(info: strawberry.Info, fragment_id: int,
                       limit: int) -> list[RelationshipSuggestion]:
    async with info.context.runtime.read() as session:
        found = await fragment_with_language(session, fragment_id)
        if found is None:
            raise NotFound("Fragment", fragment_id, ("fragmentId",))
        anchor, language = found
        words = [w for w in dict.fromkeys(content_words(anchor.content)) if len(w) > 2]
        pool = await lexical_candidates(session, anchor, words[:ANCHOR_WORDS], CANDIDATE_POOL)
    rows = {row.id: row for row, _ in pool}
    proposals = suggest(
        Passage(anchor.id or 0, anchor.source_id, anchor.content, language),
        [Passage(row.id or 0, row.source_id, row.content, lang) for row, lang in pool],
        limit=limit)
    return [RelationshipSuggestion(fragment=Fragment.from_row(rows[p.candidate_id]),
                                   relationship_type=p.relationship_type, score=p.score,
                                   similarity=round(p.similarity, 2), cues=list(p.cues))
            for p in proposals]


@strawberry.type
class GraphQueries:
    @strawberry.field(description='Fragments matching a web-search query ("a phrase", or, '
                                  "-word), best ranked first, with highlighted snippets.")
    async def search_fragments(self, info: strawberry.Info, query: str,
                               first: int | None = None, after: str | None = None,
                               filter: FragmentFilter | None = None) -> FragmentSearchConnection:
        try:
            text = check_query(query)
            page = validate_page(first, after, None, None)
            spec = filter.to_spec() if filter else None
            async with info.context.runtime.read() as session:
                result = await search_fragments(session, text, spec, page.first or 0, after)
        except DomainError as exc:
            raise public(exc) from None
        await prefetch_sources(info, [hit.row for hit in result.hits], "edges", "node",
                               "fragment")
        edges = [relay.Edge(cursor=hit.cursor, node=FragmentSearchHit(  # type: ignore[type-var]
            rank=hit.rank, snippet=hit.snippet, fragment=Fragment.from_row(hit.row)))
            for hit in result.hits]
        return FragmentSearchConnection(
            edges=edges, total_count=result.total_count,
            page_info=relay.PageInfo(
                has_next_page=result.has_next_page,
                has_previous_page=result.has_previous_page,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None))

    @strawberry.field(description="Tags with usage counts, most used first.")
    async def tags(self, info: strawberry.Info, name_contains: str | None = None,
                   category: str | None = None, first: int = 100) -> list[Tag]:
        try:
            if not 1 <= first <= MAX_TAGS_LISTED:
                raise InvalidInput.single(("first",), f"must be between 1 and {MAX_TAGS_LISTED}")
            needle = _text_argument(name_contains, "nameContains", 100)
            wanted_category = _text_argument(category, "category", 50)
        except DomainError as exc:
            raise public(exc) from None
        async with info.context.runtime.read() as session:
            rows = await graph.list_tags(session, name_contains=needle and needle.lower(),
                                         category=wanted_category, limit=first)
        return [Tag.from_row(row, usage) for row, usage in rows]

    @strawberry.field(description="Fragments of other sources worth linking to this one "
                                  "(lexical similarity plus contradiction cues), best first.")
    async def suggest_relationships(self, info: strawberry.Info, fragment_id: strawberry.ID,
                                    first: int = 10) -> list[RelationshipSuggestion]:
        try:
            anchor_id = parse_id(fragment_id, "Fragment", ("fragmentId",))
            if not 1 <= first <= MAX_SUGGESTIONS:
                raise InvalidInput.single(("first",), f"must be between 1 and {MAX_SUGGESTIONS}")
            return await _suggestions(info, anchor_id, first)
        except DomainError as exc:
            raise public(exc) from None

    @strawberry.field(description="A source's fragments per category (v_fragment_coverage); "
                                  "null when the source does not exist.")
    async def fragment_coverage(self, info: strawberry.Info,
                                source_id: strawberry.ID) -> FragmentCoverage | None:
        try:
            wanted = parse_id(source_id, "Source", ("sourceId",))
        except DomainError as exc:
            raise public(exc) from None
        async with info.context.runtime.read() as session:
            if await SourceRepository(session).get(wanted) is None:
                return None
            rows = await graph.fragment_coverage(session, wanted)
        return FragmentCoverage.from_rows(wanted, rows)
