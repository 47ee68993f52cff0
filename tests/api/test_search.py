"""Full-text search over fragments: language-aware, ranked, highlighted, paged, hostile-proof."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from db.search import CONFIGS
from domain.sources import search_config_for
from tests.support.graph_data import seed_source

SEARCH = """
query Search($q: String!, $first: Int, $after: String, $filter: FragmentFilter) {
  searchFragments(query: $q, first: $first, after: $after, filter: $filter) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage endCursor }
    edges { cursor node { rank snippet fragment { id content category } } }
  }
}
"""


async def search(gql: Any, q: str, **variables: Any) -> dict[str, Any]:
    body = await gql(SEARCH, {"q": q, **variables})
    return body["data"]["searchFragments"]  # type: ignore[no-any-return]


def contents(result: dict[str, Any]) -> list[str]:
    return [edge["node"]["fragment"]["content"] for edge in result["edges"]]


async def test_english_query_matches_inflected_forms_by_stemming(gql: Any, db: Any) -> None:
    # Given
    await seed_source(db, ["I was running every morning before work.",
                           "She cooks dinner for the family."], language="en")
    # When
    result = await search(gql, "runs")
    # Then
    assert contents(result) == ["I was running every morning before work."]
    assert result["totalCount"] == 1


async def test_portuguese_fragments_are_searched_with_portuguese_stemming(gql: Any,
                                                                          db: Any) -> None:
    # Given
    await seed_source(db, ["Eu corria todas as manhãs antes do trabalho.",
                           "Ela cozinha o jantar para a família."], language="pt-BR")
    # When
    result = await search(gql, "cozinhar")
    # Then
    assert contents(result) == ["Ela cozinha o jantar para a família."]


async def test_sources_in_other_languages_use_the_simple_configuration(gql: Any,
                                                                       db: Any) -> None:
    # Given
    await seed_source(db, ["Ich schwimme jeden Tag im See."], language="de")
    # When
    exact, inflected = await search(gql, "schwimme"), await search(gql, "schwimmen")
    # Then
    assert contents(exact) == ["Ich schwimme jeden Tag im See."]
    assert inflected["totalCount"] == 0


async def test_more_occurrences_rank_higher_and_ranks_descend(gql: Any, db: Any) -> None:
    # Given
    await seed_source(db, ["Trust matters, trust builds teams, trust is earned daily.",
                           "Trust matters at work.",
                           "Weather was fine that day."])
    # When
    result = await search(gql, "trust")
    # Then
    ranks = [edge["node"]["rank"] for edge in result["edges"]]
    assert contents(result)[0].startswith("Trust matters, trust builds")
    assert ranks == sorted(ranks, reverse=True)
    assert all(0 < rank < 1 for rank in ranks)


async def test_snippet_highlights_matches_and_escapes_markup(gql: Any, db: Any) -> None:
    # Given
    await seed_source(db, ["I trust people who say 5 < 6 & mean it <script>x</script>."])
    # When
    result = await search(gql, "trust")
    # Then
    snippet = result["edges"][0]["node"]["snippet"]
    assert "<mark>trust</mark>" in snippet
    assert "5 &lt; 6 &amp; mean" in snippet
    assert "<script>" not in snippet


async def test_quoted_phrase_requires_adjacent_words(gql: Any, db: Any) -> None:
    # Given
    await seed_source(db, ["Hard work beats talent.", "Work is hard, talent fades."])
    # When
    result = await search(gql, '"hard work"')
    # Then
    assert contents(result) == ["Hard work beats talent."]


async def test_or_widens_and_minus_excludes(gql: Any, db: Any) -> None:
    # Given
    await seed_source(db, ["I love the sea.", "I love the mountains.", "I fear the sea."])
    # When
    either = await search(gql, "mountains or fear")
    without = await search(gql, "love -mountains")
    # Then
    assert sorted(contents(either)) == ["I fear the sea.", "I love the mountains."]
    assert contents(without) == ["I love the sea."]


async def test_pages_cover_every_hit_once_in_rank_order(gql: Any, db: Any) -> None:
    # Given: equal ranks for many rows make the id tie-breaker matter
    texts = [f"Family comes first {'family ' * (i % 3)}note {i}." for i in range(23)]
    await seed_source(db, texts)
    # When
    seen: list[tuple[float, str]] = []
    after = None
    while True:
        page = await search(gql, "family", first=5, after=after)
        seen += [(e["node"]["rank"], e["node"]["fragment"]["id"]) for e in page["edges"]]
        assert page["pageInfo"]["hasPreviousPage"] == (after is not None)
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    # Then
    assert len(seen) == 23 == len({fragment_id for _, fragment_id in seen})
    assert [rank for rank, _ in seen] == sorted((rank for rank, _ in seen), reverse=True)
    assert page["totalCount"] == 23


async def test_filter_narrows_the_search(gql: Any, db: Any) -> None:
    # Given
    await seed_source(db, ["My father taught me patience.", "Patience is a habit I trained."],
                      category=["biographical", "behavioral"])
    # When
    result = await search(gql, "patience", filter={"categories": ["BEHAVIORAL"]})
    # Then
    assert contents(result) == ["Patience is a habit I trained."]


async def test_cursor_of_another_search_is_refused(gql: Any, db: Any) -> None:
    # Given
    await seed_source(db, ["Trust first.", "Trust again.", "Trust always."])
    page = await search(gql, "trust", first=1)
    # When
    body = await gql(SEARCH, {"q": "again", "after": page["pageInfo"]["endCursor"]},
                     expect_errors=True)
    # Then
    assert body["errors"][0]["message"] == "after: is not a valid cursor for this search"


async def test_stop_words_only_find_nothing(gql: Any, db: Any) -> None:
    # Given
    await seed_source(db, ["The sea and the sky."])
    # When
    result = await search(gql, "the and")
    # Then
    assert result["totalCount"] == 0 and result["edges"] == []


def _forged_cursor(payload: Any) -> str:
    raw = json.dumps(payload).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


HOSTILE_QUERIES = [
    "'; DROP TABLE fragments; --",
    "trust & | ! ( ) :* <-> <2>",
    "\"unbalanced quote",
    "\\\\ backslash \\' quote",
    "-",
    "or or or",
    "!!!",
    "a:*",
    "(((((((((trust",
    "trust" + " OR trust" * 50,
    "😀 emoji 💥",
    "ção ñ ß İ",
    "x" * 500,
    "\u202e right-to-left override",
    "%_*?",
    "$1 $2",
]


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
async def test_hostile_query_strings_answer_data_not_errors(gql: Any, db: Any,
                                                            query: str) -> None:
    # Given
    await seed_source(db, ["I trust people who keep promises."])
    # When
    result = await search(gql, query)
    # Then
    assert isinstance(result["totalCount"], int)


BAD_QUERIES = [
    ("", "query: must contain at least one word"),
    ("   ", "query: must contain at least one word"),
    ("x" * 501, "query: has 501 characters; the limit is 500"),
]


@pytest.mark.parametrize(("query", "message"), BAD_QUERIES)
async def test_unusable_query_strings_get_a_clear_error(gql: Any, db: Any, query: str,
                                                        message: str) -> None:
    # When
    body = await gql(SEARCH, {"q": query}, expect_errors=True)
    # Then
    assert body["data"] is None
    assert body["errors"][0]["message"] == message
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize(("literal", "message"), [
    ('"a\\u0000b"', "string values must not contain a NUL character (\\u0000)"),
    ('"a\\ud800b"', "Syntax Error: Invalid Unicode escape sequence: '\\ud800'."),
])
async def test_nul_and_lone_surrogates_in_literals_get_a_clear_error(gql: Any, db: Any,
                                                                     literal: str,
                                                                     message: str) -> None:
    # When: escapes inside the GraphQL document pass the JSON-level checks
    body = await gql("{ searchFragments(query: " + literal + ") { totalCount } }",
                     expect_errors=True)
    # Then
    assert body["errors"][0]["message"] == message


@pytest.mark.parametrize("cursor", [
    "not-a-cursor",
    _forged_cursor({"o": "RANK", "q": "x", "k": [0.5, 1]}),
    _forged_cursor({"o": "RANK", "k": ["NaN", 1]}),
    _forged_cursor([1, 2]),
    "€€€",
    "A" * 2000,
])
async def test_forged_cursors_are_bad_input(gql: Any, db: Any, cursor: str) -> None:
    # When
    body = await gql(SEARCH, {"q": "trust", "after": cursor}, expect_errors=True)
    # Then
    assert body["errors"][0]["message"] == "after: is not a valid cursor for this search"


async def test_page_size_is_capped(gql: Any, db: Any) -> None:
    # When
    body = await gql(SEARCH, {"q": "trust", "first": 101}, expect_errors=True)
    # Then
    assert body["errors"][0]["message"] == "first: must be between 0 and 100 (got 101)"


@pytest.mark.parametrize("language", ["en", "en-GB", "pt", "pt-BR", "es", "de", "fr", "ja", "x"])
def test_every_source_language_maps_to_a_configuration_the_search_queries(language: str) -> None:
    # A fragment stored with another configuration would never match any search.
    assert search_config_for(language) in CONFIGS
