"""Tags: created on first use, bulk and idempotent tagging, usage counts, filtering by tag."""

from __future__ import annotations

from typing import Any

import pytest

from api.ids import to_global
from tests.support.graph_data import count_rows, seed_source

TAG = """
mutation($input: TagFragmentsInput!) { tagFragments(input: $input) { __typename
  ... on TagFragmentsPayload { added tags { name category usageCount }
                               fragments { id tags { name } } }
  ... on ValidationError { message fieldErrors { field message } }
  ... on NotFound { message kind id field } } }
"""

UNTAG = """
mutation($input: UntagFragmentsInput!) { untagFragments(input: $input) { __typename
  ... on UntagFragmentsPayload { removed fragments { id tags { name } } }
  ... on ValidationError { message fieldErrors { field message } }
  ... on NotFound { message field } } }
"""

TAGS = """
query($contains: String, $category: String, $first: Int! = 100) {
  tags(nameContains: $contains, category: $category, first: $first) {
    id name category usageCount } }
"""


def gid(fragment_id: int) -> str:
    return to_global("Fragment", fragment_id)


async def tag(gql: Any, ids: list[Any], tags: list[str], **extra: Any) -> dict[str, Any]:
    body = await gql(TAG, {"input": {"fragmentIds": ids, "tags": tags, **extra}})
    return body["data"]["tagFragments"]  # type: ignore[no-any-return]


async def test_tagging_creates_tags_on_first_use_and_returns_the_fragments(gql: Any,
                                                                           db: Any) -> None:
    # Given
    seeded = await seed_source(db, ["I trust my team.", "I plan every week."])
    ids = [gid(i) for i in seeded.fragment_ids]
    # When
    result = await tag(gql, ids, ["  Trust ", "Work   Habits"], category="theme")
    # Then
    assert result["__typename"] == "TagFragmentsPayload"
    assert result["added"] == 4
    assert result["tags"] == [{"name": "trust", "category": "theme", "usageCount": 2},
                              {"name": "work habits", "category": "theme", "usageCount": 2}]
    assert [f["id"] for f in result["fragments"]] == ids
    assert all([t["name"] for t in f["tags"]] == ["trust", "work habits"]
               for f in result["fragments"])


async def test_tagging_twice_adds_nothing_and_keeps_the_first_category(gql: Any,
                                                                       db: Any) -> None:
    # Given
    seeded = await seed_source(db, ["I trust my team."])
    ids = [gid(seeded.fragment_ids[0])]
    await tag(gql, ids, ["trust"], category="theme")
    # When
    again = await tag(gql, ids + ids, ["TRUST", "trust"], category="other")
    # Then
    assert again["added"] == 0
    assert again["tags"] == [{"name": "trust", "category": "theme", "usageCount": 1}]
    assert await count_rows(db, "fragment_tags") == 1


async def test_untagging_removes_links_and_is_idempotent(gql: Any, db: Any) -> None:
    # Given
    seeded = await seed_source(db, ["I trust my team.", "I plan every week."])
    ids = [gid(i) for i in seeded.fragment_ids]
    await tag(gql, ids, ["trust", "planning"])
    # When
    first = (await gql(UNTAG, {"input": {"fragmentIds": ids, "tags": ["trust", "unknown"]}})
             )["data"]["untagFragments"]
    second = (await gql(UNTAG, {"input": {"fragmentIds": ids, "tags": ["trust"]}})
              )["data"]["untagFragments"]
    # Then
    assert first["removed"] == 2 and second["removed"] == 0
    assert all(f["tags"] == [{"name": "planning"}] for f in second["fragments"])
    tags = (await gql(TAGS))["data"]["tags"]
    assert [(t["name"], t["usageCount"]) for t in tags] == [("planning", 2), ("trust", 0)]


async def test_tags_query_orders_by_usage_and_filters(gql: Any, db: Any) -> None:
    # Given
    seeded = await seed_source(db, ["One.", "Two.", "Three."])
    ids = [gid(i) for i in seeded.fragment_ids]
    await tag(gql, ids, ["family"], category="life")
    await tag(gql, ids[:1], ["family business"], category="work")
    await tag(gql, ids[:2], ["faith"], category="life")
    # When
    everything = (await gql(TAGS))["data"]["tags"]
    life = (await gql(TAGS, {"category": "life"}))["data"]["tags"]
    named = (await gql(TAGS, {"contains": "FAMILY"}))["data"]["tags"]
    top = (await gql(TAGS, {"first": 1}))["data"]["tags"]
    # Then
    assert [(t["name"], t["usageCount"]) for t in everything] == [
        ("family", 3), ("faith", 2), ("family business", 1)]
    assert [t["name"] for t in life] == ["family", "faith"]
    assert [t["name"] for t in named] == ["family", "family business"]
    assert [t["name"] for t in top] == ["family"]


async def test_tag_is_a_node(gql: Any, db: Any) -> None:
    # Given
    seeded = await seed_source(db, ["One."])
    await tag(gql, [gid(seeded.fragment_ids[0])], ["family"])
    tag_id = (await gql(TAGS))["data"]["tags"][0]["id"]
    # When
    node = (await gql("query($id: ID!) { node(id: $id) { ... on Tag { name usageCount } } }",
                      {"id": tag_id}))["data"]["node"]
    # Then
    assert node == {"name": "family", "usageCount": 1}


async def test_fragments_filter_by_any_of_the_tags(gql: Any, db: Any) -> None:
    # Given
    seeded = await seed_source(db, ["One.", "Two.", "Three."])
    ids = [gid(i) for i in seeded.fragment_ids]
    await tag(gql, ids[:1], ["family"])
    await tag(gql, ids[1:2], ["work"])
    # When
    found = (await gql("""query($tags: [String!]) { fragments(filter: {tags: $tags}) {
        totalCount edges { node { id } } } }""", {"tags": ["Family", "work"]})
             )["data"]["fragments"]
    # Then
    assert found["totalCount"] == 2
    assert sorted(e["node"]["id"] for e in found["edges"]) == sorted(ids[:2])


async def test_unknown_fragment_is_not_found_and_nothing_is_written(gql: Any, db: Any) -> None:
    # Given
    seeded = await seed_source(db, ["One."])
    # When
    result = await tag(gql, [gid(seeded.fragment_ids[0]), gid(999_999)], ["family"])
    # Then
    assert result == {"__typename": "NotFound", "message": "Fragment 999999 not found",
                      "kind": "Fragment", "id": "999999", "field": "input.fragmentIds.1"}
    assert await count_rows(db, "tags") == 0
    assert await count_rows(db, "fragment_tags") == 0


@pytest.mark.parametrize(("ids", "tags", "field", "message"), [
    ([], ["x"], "input.fragmentIds", "must name at least one fragment"),
    (["1"], [], "input.tags", "must name at least one tag"),
    (["1"], ["   "], "input.tags.0", "must not be empty"),
    (["1"], ["x" * 101], "input.tags.0", "has 101 characters; the limit is 100"),
    (["1"], ["t"] * 51, "input.tags", "has 51 items; the limit is 50"),
    (["1"] * 501, ["x"], "input.fragmentIds", "has 501 items; the limit is 500"),
    (["U291cmNlOjE="], ["x"], "input.fragmentIds.0", "is a Source ID, expected a Fragment ID"),
    (["not an id"], ["x"], "input.fragmentIds.0", "is not a valid Fragment ID"),
])
async def test_bad_tagging_input_is_a_validation_error(gql: Any, db: Any, ids: list[str],
                                                       tags: list[str], field: str,
                                                       message: str) -> None:
    # Given
    await seed_source(db, ["One."])
    # When
    result = await tag(gql, ids, tags)
    # Then
    assert result["__typename"] == "ValidationError"
    assert {"field": field, "message": message} in result["fieldErrors"]
    assert await count_rows(db, "tags") == 0


async def test_nul_escape_in_a_tag_literal_is_refused_before_execution(gql: Any,
                                                                       db: Any) -> None:
    # Given
    await seed_source(db, ["One."])
    # When: the escape passes the JSON-level checks; validation refuses the literal
    body = await gql(
        'mutation { tagFragments(input: {fragmentIds: ["1"], tags: ["ok", "a\\u0000b"]}) {'
        " __typename ... on ValidationError { fieldErrors { field message } } } }",
        expect_errors=True)
    # Then
    assert body["data"] is None
    assert "must not contain a NUL character" in body["errors"][0]["message"]
    assert await count_rows(db, "tags") == 0


async def test_tags_query_refuses_a_nul_in_its_arguments(gql: Any, db: Any) -> None:
    # When
    body = await gql('{ tags(nameContains: "a\\u0000") { name } }', expect_errors=True)
    # Then
    assert "must not contain a NUL character" in body["errors"][0]["message"]
