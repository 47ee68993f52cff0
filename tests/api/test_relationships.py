"""Relationships between fragments: link, see both directions, unlink, suggestions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from api.ids import to_global
from tests.support.graph_data import count_rows, seed_source

RELATE = """
mutation($input: RelateFragmentsInput!) { relateFragments(input: $input) { __typename
  ... on RelateFragmentsPayload { relationship { id relationshipType confidence notes createdBy
        fragment { id } relatedFragment { id } } }
  ... on ValidationError { message fieldErrors { field message } }
  ... on NotFound { message field }
  ... on Conflict { message field existingId } } }
"""

UNRELATE = """
mutation($input: UnrelateFragmentsInput!) { unrelateFragments(input: $input) { __typename
  ... on UnrelateFragmentsPayload { count removed { relationshipType } }
  ... on ValidationError { message fieldErrors { field message } }
  ... on NotFound { message field } } }
"""

RELATIONS = """
query($id: ID!) { node(id: $id) { ... on Fragment {
  relationships { direction relationship { relationshipType }
                  otherFragment { id content } } } } }
"""

SUGGEST = """
query($id: ID!, $first: Int) { suggestRelationships(fragmentId: $id, first: $first) {
  relationshipType score similarity cues fragment { id content } } }
"""


def gid(fragment_id: int) -> str:
    return to_global("Fragment", fragment_id)


async def relate(gql: Any, a: int, b: int, kind: str = "SUPPORTS",
                 **extra: Any) -> dict[str, Any]:
    body = await gql(RELATE, {"input": {"fragmentId": gid(a), "relatedFragmentId": gid(b),
                                        "relationshipType": kind, **extra}})
    return body["data"]["relateFragments"]  # type: ignore[no-any-return]


async def two_fragments(db: Any) -> tuple[int, int]:
    first = await seed_source(db, ["I always trust my team."])
    second = await seed_source(db, ["I never trust my team."])
    return first.fragment_ids[0], second.fragment_ids[0]


async def test_relating_returns_the_relationship_with_both_ends(gql: Any, db: Any) -> None:
    # Given
    a, b = await two_fragments(db)
    # When
    result = await relate(gql, a, b, "CONTRADICTS", confidence=0.8, notes=" polarity ")
    # Then
    assert result["__typename"] == "RelateFragmentsPayload"
    relationship = result["relationship"]
    assert relationship["relationshipType"] == "CONTRADICTS"
    assert relationship["confidence"] == 0.8 and relationship["notes"] == "polarity"
    assert relationship["createdBy"] == "local"
    assert relationship["fragment"]["id"] == gid(a)
    assert relationship["relatedFragment"]["id"] == gid(b)


async def test_both_fragments_list_the_link_with_its_direction(gql: Any, db: Any) -> None:
    # Given
    a, b = await two_fragments(db)
    await relate(gql, a, b, "ELABORATES")
    # When
    from_a = (await gql(RELATIONS, {"id": gid(a)}))["data"]["node"]["relationships"]
    from_b = (await gql(RELATIONS, {"id": gid(b)}))["data"]["node"]["relationships"]
    # Then
    assert from_a == [{"direction": "OUTGOING", "relationship": {"relationshipType":
                       "ELABORATES"}, "otherFragment": {"id": gid(b),
                                                        "content": "I never trust my team."}}]
    assert from_b == [{"direction": "INCOMING", "relationship": {"relationshipType":
                       "ELABORATES"}, "otherFragment": {"id": gid(a),
                                                        "content": "I always trust my team."}}]


async def test_same_pair_and_type_twice_is_a_conflict(gql: Any, db: Any) -> None:
    # Given
    a, b = await two_fragments(db)
    first = await relate(gql, a, b, "SUPPORTS")
    # When
    again = await relate(gql, a, b, "SUPPORTS")
    # Then
    assert again["__typename"] == "Conflict"
    assert again["field"] == "input.relationshipType"
    assert to_global("Relationship", int(again["existingId"])) == first["relationship"]["id"]
    assert await count_rows(db, "fragment_relationships") == 1


async def test_symmetric_types_are_one_link_per_pair_in_either_direction(gql: Any,
                                                                         db: Any) -> None:
    # Given
    a, b = await two_fragments(db)
    await relate(gql, a, b, "CONTRADICTS")
    # When
    reverse_contradiction = await relate(gql, b, a, "CONTRADICTS")
    reverse_dependency = await relate(gql, b, a, "DEPENDS_ON")
    other_type = await relate(gql, a, b, "RELATED_TO")
    # Then
    assert reverse_contradiction["__typename"] == "Conflict"
    assert reverse_dependency["__typename"] == "RelateFragmentsPayload"
    assert other_type["__typename"] == "RelateFragmentsPayload"
    assert await count_rows(db, "fragment_relationships") == 3


async def test_a_fragment_cannot_relate_to_itself(gql: Any, db: Any) -> None:
    # Given
    a, _ = await two_fragments(db)
    # When
    result = await relate(gql, a, a)
    # Then
    assert result["__typename"] == "ValidationError"
    assert result["fieldErrors"] == [{
        "field": "input.relatedFragmentId",
        "message": "must differ from fragmentId: a fragment cannot relate to itself"}]
    assert await count_rows(db, "fragment_relationships") == 0


async def test_unknown_fragment_is_not_found_and_nothing_is_written(gql: Any, db: Any) -> None:
    # Given
    a, _ = await two_fragments(db)
    # When
    result = await relate(gql, a, 424242)
    # Then
    assert result == {"__typename": "NotFound", "message": "Fragment 424242 not found",
                      "field": "input.relatedFragmentId"}
    assert await count_rows(db, "fragment_relationships") == 0


@pytest.mark.parametrize(("extra", "field", "message"), [
    ({"confidence": 1.5}, "input.confidence", "must be between 0 and 1"),
    ({"confidence": -0.1}, "input.confidence", "must be between 0 and 1"),
    ({"notes": "n" * 2001}, "input.notes", "has 2001 characters; the limit is 2000"),
])
async def test_bad_link_details_are_validation_errors(gql: Any, db: Any, extra: dict[str, Any],
                                                      field: str, message: str) -> None:
    # Given
    a, b = await two_fragments(db)
    # When
    result = await relate(gql, a, b, **extra)
    # Then
    assert result["__typename"] == "ValidationError"
    assert result["fieldErrors"] == [{"field": field, "message": message}]
    assert await count_rows(db, "fragment_relationships") == 0


async def test_unknown_relationship_type_is_refused_before_anything_runs(gql: Any,
                                                                         db: Any) -> None:
    # Given
    a, b = await two_fragments(db)
    # When
    body = await gql(RELATE, {"input": {"fragmentId": gid(a), "relatedFragmentId": gid(b),
                                        "relationshipType": "LOVES"}}, expect_errors=True)
    # Then
    assert "LOVES" in body["errors"][0]["message"]
    assert "RelationshipType" in body["errors"][0]["message"]
    assert await count_rows(db, "fragment_relationships") == 0


async def test_unrelate_by_id_and_by_pair(gql: Any, db: Any) -> None:
    # Given
    a, b = await two_fragments(db)
    supports = (await relate(gql, a, b, "SUPPORTS"))["relationship"]["id"]
    await relate(gql, a, b, "CONTRADICTS")
    await relate(gql, a, b, "ELABORATES")
    # When
    by_id = (await gql(UNRELATE, {"input": {"relationshipId": supports}})
             )["data"]["unrelateFragments"]
    by_reverse_pair = (await gql(UNRELATE, {"input": {
        "fragmentId": gid(b), "relatedFragmentId": gid(a), "relationshipType": "CONTRADICTS"}})
    )["data"]["unrelateFragments"]
    again = (await gql(UNRELATE, {"input": {"fragmentId": gid(b), "relatedFragmentId": gid(a),
                                            "relationshipType": "CONTRADICTS"}})
             )["data"]["unrelateFragments"]
    # Then
    assert by_id == {"__typename": "UnrelateFragmentsPayload", "count": 1,
                     "removed": [{"relationshipType": "SUPPORTS"}]}
    assert by_reverse_pair["removed"] == [{"relationshipType": "CONTRADICTS"}]
    assert again["count"] == 0
    remaining = (await gql(RELATIONS, {"id": gid(a)}))["data"]["node"]["relationships"]
    assert [r["relationship"]["relationshipType"] for r in remaining] == ["ELABORATES"]


@pytest.mark.parametrize(("given", "typename", "field"), [
    ({"relationshipId": to_global("Relationship", 999)}, "NotFound", "input.relationshipId"),
    ({"relationshipId": "1", "fragmentId": "1"}, "ValidationError", "input.relationshipId"),
    ({"fragmentId": "1"}, "ValidationError", "input"),
    ({}, "ValidationError", "input"),
    ({"relationshipId": to_global("Fragment", 1)}, "ValidationError", "input.relationshipId"),
])
async def test_bad_unrelate_input_gets_a_clear_answer(gql: Any, db: Any, given: dict[str, Any],
                                                      typename: str, field: str) -> None:
    # Given
    a, b = await two_fragments(db)
    await relate(gql, a, b)
    # When
    result = (await gql(UNRELATE, {"input": given}))["data"]["unrelateFragments"]
    # Then
    assert result["__typename"] == typename
    fields = [result.get("field")] + [e["field"] for e in result.get("fieldErrors", [])]
    assert field in fields
    assert await count_rows(db, "fragment_relationships") == 1


async def test_suggestions_come_from_other_sources_with_contradiction_cues(gql: Any,
                                                                           db: Any) -> None:
    # Given
    anchor = await seed_source(db, ["I always trust my team to make the hard calls.",
                                    "I trust my team to make the hard calls quickly."])
    other = await seed_source(db, ["I never trust my team to make the hard calls.",
                                   "My garden needs water in the summer."])
    later = await seed_source(db, ["I used to trust my team to make the hard calls."])
    # When
    found = (await gql(SUGGEST, {"id": gid(anchor.fragment_ids[0])}))["data"][
        "suggestRelationships"]
    # Then
    by_id = {s["fragment"]["id"]: s for s in found}
    assert gid(anchor.fragment_ids[1]) not in by_id  # same source
    assert gid(other.fragment_ids[1]) not in by_id  # nothing in common
    contradiction = by_id[gid(other.fragment_ids[0])]
    assert contradiction["relationshipType"] == "CONTRADICTS"
    assert "negation" in contradiction["cues"]
    assert by_id[gid(later.fragment_ids[0])]["relationshipType"] == "EVOLVES_FROM"
    assert found[0]["fragment"]["id"] == gid(other.fragment_ids[0])


async def test_portuguese_contradiction_is_suggested(gql: Any, db: Any) -> None:
    # Given
    anchor = await seed_source(db, ["Eu sempre confio na minha equipe."], language="pt-BR")
    other = await seed_source(db, ["Eu nunca confio na minha equipe."], language="pt-BR")
    # When
    found = (await gql(SUGGEST, {"id": gid(anchor.fragment_ids[0])}))["data"][
        "suggestRelationships"]
    # Then
    assert [s["fragment"]["id"] for s in found] == [gid(other.fragment_ids[0])]
    assert found[0]["relationshipType"] == "CONTRADICTS"
    assert "antonyms:nunca/sempre" in found[0]["cues"]


async def test_linked_fragments_are_not_suggested_again(gql: Any, db: Any) -> None:
    # Given
    a, b = await two_fragments(db)
    await relate(gql, b, a, "CONTRADICTS")
    # When
    found = (await gql(SUGGEST, {"id": gid(a)}))["data"]["suggestRelationships"]
    # Then
    assert found == []


@pytest.mark.parametrize(("variables", "message"), [
    ({"id": to_global("Fragment", 31337)}, "Fragment 31337 not found"),
    ({"id": "x"}, "fragmentId: is not a valid Fragment ID"),
    ({"id": "1", "first": 0}, "first: must be between 1 and 50"),
])
async def test_bad_suggestion_requests_get_clear_errors(gql: Any, db: Any,
                                                        variables: dict[str, Any],
                                                        message: str) -> None:
    # Given
    await two_fragments(db)
    # When
    body = await gql(SUGGEST, variables, expect_errors=True)
    # Then
    assert body["errors"][0]["message"] == message


async def test_concurrent_links_of_one_pair_store_exactly_one(gql: Any, db: Any) -> None:
    # Given
    a, b = await two_fragments(db)
    # When: both directions of a symmetric type at once
    results = await asyncio.gather(*(relate(gql, *pair, "CONTRADICTS")
                                     for pair in [(a, b), (b, a)] * 4))
    # Then
    kinds = sorted(r["__typename"] for r in results)
    assert kinds == ["Conflict"] * 7 + ["RelateFragmentsPayload"]
    assert await count_rows(db, "fragment_relationships") == 1
